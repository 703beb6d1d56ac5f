"""Model.execute error paths: every one a clear Python exception, and the model still works."""

from __future__ import annotations

import numpy as np
import pytest

import graphs

F = np.float32


@pytest.fixture(scope="module")
def add(load):
    return load(graphs.ADD)


def _still_works(model):
    a = np.ones((2, 3), F)
    np.testing.assert_array_equal(model.execute(a, a)[0].to_numpy(), a * 2)


@pytest.mark.parametrize("args, match", [
    ((), r"^model 'add' expects 2 inputs, got 0$"),
    ((np.ones((2, 3), F),), r"^model 'add' expects 2 inputs, got 1$"),
    ((np.ones((2, 3), F),) * 3, r"^model 'add' expects 2 inputs, got 3$"),
])
def test_wrong_number_of_inputs(add, args, match):
    with pytest.raises(ValueError, match=match):
        add.execute(*args)
    _still_works(add)


def test_wrong_dtype(add):
    with pytest.raises(TypeError, match=r"^input 1: expected dtype float32, got float64$"):
        add.execute(np.ones((2, 3), F), np.ones((2, 3)))
    _still_works(add)


def test_wrong_rank(add):
    with pytest.raises(ValueError, match=r"^input 0: expected rank 2 \(shape \[batch, 3\]\), "
                                         r"got rank 1 \(shape \[6\]\)$"):
        add.execute(np.ones(6, F), np.ones((2, 3), F))
    _still_works(add)


def test_static_dim_mismatch(add):
    with pytest.raises(ValueError, match=r"^input 1: dim 1 expected 3, got 4 "
                                         r"\(expected shape \[batch, 3\], got \[2, 4\]\)$"):
        add.execute(np.ones((2, 3), F), np.ones((2, 4), F))
    _still_works(add)


def test_static_shape_mismatch(load):
    model = load(graphs.ADD_STATIC)
    with pytest.raises(ValueError, match=r"^input 0: dim 0 expected 2, got 5"):
        model.execute(np.ones((5, 3), F), np.ones((2, 3), F))


def test_symbol_bound_to_two_sizes(add):
    with pytest.raises(ValueError, match=r"^input 1: dim 0 binds symbol 'batch' to 5, but "
                                         r"input 0 dim 0 bound it to 2$"):
        add.execute(np.ones((2, 3), F), np.ones((5, 3), F))
    _still_works(add)


@pytest.mark.parametrize("value, match", [
    ([[1.0, 2.0, 3.0]], r"^input 0: unsupported input type builtins\.list; expected a numpy "
                        r"array, a max\.driver\.Tensor, a DLPack array or a Python scalar$"),
    ("abc", r"^input 0: unsupported input type builtins\.str"),
    (None, r"^input 0: unsupported input type builtins\.NoneType"),
])
def test_unsupported_input_type(add, value, match):
    with pytest.raises(TypeError, match=match):
        add.execute(value, np.ones((1, 3), F))
    _still_works(add)


def test_scalar_for_non_scalar_input(add):
    with pytest.raises(TypeError, match=r"^input 0: a Python float can only be passed for a "
                                         r"rank-0 input, but input 0 has shape \[batch, 3\]$"):
        add.execute(1.0, np.ones((1, 3), F))


def test_float_for_int_scalar(load):
    model = load(graphs.MUL_SCALAR)
    with pytest.raises(TypeError, match=r"^input 1: expected dtype float32, got float64$"):
        model.execute(np.float32(1), np.float64(2))


def test_keyword_errors(add):
    a = np.ones((1, 3), F)
    with pytest.raises(TypeError, match=r"^model 'add' has no input named 'z'"):
        add(a, z=a)
    with pytest.raises(ValueError, match=r"^model 'add': missing inputs input1$"):
        add(input0=a)


def test_torch_requires_grad(add):
    import torch

    t = torch.ones(1, 3, requires_grad=True)
    with pytest.raises(TypeError, match=r"^input 0: could not import Tensor through DLPack"):
        add.execute(t, np.ones((1, 3), F))
    _still_works(add)


def test_check_failure_through_engine(load):
    model = load(graphs.GATHER)
    x = np.arange(10, dtype=F).reshape(5, 2)
    np.testing.assert_array_equal(model.execute(x, np.array([4, 0]))[0].to_numpy(), x[[4, 0]])
    with pytest.raises(IndexError, match="out of bounds|index"):
        model.execute(x, np.array([1, 9]))
    np.testing.assert_array_equal(model.execute(x, np.array([2]))[0].to_numpy(), x[[2]])
