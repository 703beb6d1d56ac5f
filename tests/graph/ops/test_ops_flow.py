"""Control flow compiled into the model: ``cond``, ``while_loop``, ``call`` and
``Graph.add_subgraph``, against Python/numpy; closures over graph values; the errors."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import shared_session, tt
from test_ops_numeric import check, run

from max.dtype import DType
from max.graph import DeviceRef, Dim, Graph, Weight, ops

CPU = DeviceRef.CPU()


def _collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def test_while_loop_runs_a_data_dependent_count_with_a_nested_cond() -> None:
    # Collatz: the trip count depends on the input; the body's cond picks a branch per step.
    def forward(n):
        def pred(v, steps):
            return v != 1

        def body(v, steps):
            (nxt,) = ops.cond(v % 2 == 0, [v.type], lambda: v // 2, lambda: v * 3 + 1)
            return [nxt, steps + 1]

        return ops.while_loop([n, ops.constant(0, DType.int64, CPU)], pred, body)

    model = shared_session().load(Graph("collatz", forward, input_types=[tt(DType.int64)]))
    for n in (1, 2, 6, 7, 27, 97):
        v, steps = (o.to_numpy() for o in model.execute(np.array(n, np.int64)))
        assert int(v) == 1 and int(steps) == _collatz_steps(n), n


def test_cond_selects_the_branch_on_input_data() -> None:
    def forward(x):
        pred = ops.sum(x, axis=0).reshape([]) > 0
        return ops.cond(pred, [x.type, tt(DType.int32, 2)],
                        lambda: [x * 2, ops.constant(np.array([1, 2], np.int32), DType.int32, CPU)],
                        lambda: [-x, ops.constant(np.array([3, 4], np.int32), DType.int32, CPU)])

    model = shared_session().load(Graph("sel", forward, input_types=[tt(DType.float32, 4)]))
    for x in (np.array([1, -2, 3, 0.5], np.float32), np.array([-1, -2, 3, 0], np.float32)):
        a, b = (o.to_numpy() for o in model.execute(x))
        if x.sum() > 0:
            check(a, x * 2), check(b, np.array([1, 2], np.int32))
        else:
            check(a, -x), check(b, np.array([3, 4], np.int32))


def test_symbolic_dims_through_branches_and_loops() -> None:
    # Carried tensors of a symbolic length; the loop runs `k` times (a graph input captured by
    # the predicate), the branch uses a graph input captured through two levels.
    def forward(x, k, flip):
        def body(i, acc):
            (acc,) = ops.cond(flip, [acc.type], lambda: acc * 2.0 + x, lambda: acc - x)
            return [i + 1, acc]

        _, acc = ops.while_loop([ops.constant(0, DType.int32, CPU), x],
                                lambda i, acc: i < k, body)
        return acc

    types = [tt(DType.float32, "n", 3), tt(DType.int32), tt(DType.bool)]
    g = Graph("sym", forward, input_types=types)
    assert list(g.output_types[0].shape) == [Dim("n"), Dim(3)]
    model = shared_session().load(g)
    for rows, k, flip in ((2, 3, True), (5, 0, False), (1, 4, False), (0, 2, True)):
        x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
        acc = x.copy()
        for _ in range(k):
            acc = acc * 2 + x if flip else acc - x
        (got,) = model.execute(x, np.array(k, np.int32), np.array(flip))
        check(got.to_numpy(), acc)


def test_call_a_subgraph_twice_with_different_inputs() -> None:
    with Graph("caller", input_types=[tt(DType.float32, "n"), tt(DType.float32, "n")]) as g:
        sub = g.add_subgraph("affine", lambda v: [v * 3.0 + 1.0, ops.sum(v, axis=0)],
                             input_types=[tt(DType.float32, "n")])
        a, b = g.inputs
        y1, s1 = ops.call(sub, a)
        y2, s2 = ops.call(sub, b)
        g.output(y1 - y2, s1, s2)
    model = shared_session().load(g)
    a = np.array([1, 2, 3], np.float32)
    b = np.array([0.5, -1, 4], np.float32)
    d, s1, s2 = (o.to_numpy() for o in model.execute(a, b))
    check(d, (a * 3 + 1) - (b * 3 + 1)), check(s1, a.sum(keepdims=True))
    check(s2, b.sum(keepdims=True))


def test_call_inside_a_branch_and_cond_without_results() -> None:
    def forward(x):
        sub = Graph.current.add_subgraph("sq", lambda v: v * v, input_types=[x.type])
        ops.cond(x.reshape([]) > 0, None, lambda: None, lambda: None)
        (y,) = ops.cond(x.reshape([]) > 0, [x.type], lambda: ops.call(sub, x)[0], lambda: x)
        return y

    (got,) = run(forward, [tt(DType.float32, 1)], np.array([3], np.float32))
    check(got, np.array([9], np.float32))
    (got,) = run(forward, [tt(DType.float32, 1)], np.array([-3], np.float32))
    check(got, np.array([-3], np.float32))


def test_while_loop_single_value_and_python_scalars() -> None:
    # The reference's example: a body may return one value directly.
    def forward(limit):
        x = ops.constant(0, DType.int32, CPU)
        return ops.while_loop(x, lambda x: x < limit, lambda x: x + 1)

    (got,) = run(forward, [tt(DType.int32)], np.array(10, np.int32))
    check(got, np.array(10, np.int32))


def _graph_functions(g: Graph) -> list[str]:
    return [op.operation.attributes["sym_name"].value for op in g._module.body.operations]


@pytest.mark.parametrize("case, match", [
    ("then types", r"cond: then_fn returned \[float32\[2\]\], out_types are \[int32\[2\]\]"),
    ("else arity", r"cond: else_fn returned \[\], out_types are"),
    ("float pred", r"cond: pred must be a bool scalar"),
    ("vector pred", r"cond: pred must be a bool scalar"),
])
def test_cond_errors_name_the_op(case: str, match: str) -> None:
    with Graph("bad", input_types=[tt(DType.float32, 2), tt(DType.int32, 2)]) as g:
        x, i = g.inputs
        pred = ops.constant(True, DType.bool, CPU)
        with pytest.raises(ValueError, match=match):
            if case == "then types":
                ops.cond(pred, [i.type], lambda: x, lambda: i)
            elif case == "else arity":
                ops.cond(pred, [x.type], lambda: x, lambda: None)
            elif case == "float pred":
                ops.cond(ops.constant(1.0, DType.float32, CPU), [x.type], lambda: x, lambda: x)
            else:
                ops.cond(x > 0, [x.type], lambda: x, lambda: x)
        assert _graph_functions(g) == ["bad"]  # a refused op leaves no subgraph behind


def test_while_loop_and_call_errors_name_the_op() -> None:
    with Graph("bad", input_types=[tt(DType.int32), tt(DType.float32, 2)]) as g:
        i, x = g.inputs
        with pytest.raises(ValueError, match="while_loop: initial_values must be non-empty"):
            ops.while_loop([], lambda: i < 1, lambda: [])
        with pytest.raises(ValueError, match=r"while_loop: predicate returned \[int32\[\]\], "
                                             r"expected one bool scalar"):
            ops.while_loop(i, lambda i: i + 1, lambda i: i)
        with pytest.raises(ValueError, match=r"while_loop: body returned \[.*\], the loop "
                                             r"carries"):
            ops.while_loop([i, x], lambda i, x: i < 3, lambda i, x: [i + 1])
        with pytest.raises(ValueError, match=r"while_loop: body returned"):
            ops.while_loop(i, lambda i: i < 3, lambda i: ops.cast(i, DType.int64))
        assert _graph_functions(g) == ["bad"]
        sub = g.add_subgraph("s", lambda v: v + 1, input_types=[tt(DType.int32)])
        with pytest.raises(ValueError, match=r"call: subgraph 's' takes \[int32\[\]\], got \[\]"):
            ops.call(sub)
        with pytest.raises(ValueError, match=r"call: subgraph 's' takes"):
            ops.call(sub, i, i)
        with pytest.raises(ValueError, match=r"call: subgraph 's' takes"):
            ops.call(sub, x)
        other = Graph("other", lambda v: v, input_types=[tt(DType.int32)])
        with pytest.raises(ValueError, match=r"call: 'other' is not a subgraph of graph 'bad'"):
            ops.call(other, i)
        with pytest.raises(ValueError, match=r"add_subgraph: .* already has a function named"):
            g.add_subgraph("s", lambda v: v, input_types=[tt(DType.int32)])
        g.output(ops.call(sub, i)[0])


def test_ir_holds_subgraph_functions_referred_to_by_symbol() -> None:
    def forward(x, p):
        return ops.cond(p, [x.type], lambda: x + 1.0, lambda: x)

    g = Graph("ir", forward, input_types=[tt(DType.float32, "n"), tt(DType.bool)])
    text = str(g)
    assert '"mo.cond"' in text and "then_fn = @ir_cond_then" in text
    assert "func.func private @ir_cond_then(%arg0: !mo.tensor<f32, [\"n\"]" in text
    # the subgraphs are not entry points: the model has the graph's inputs and outputs only
    model = shared_session().load(g)
    assert len(model.input_metadata) == 2 and len(model.output_metadata) == 1
    x = np.array([1, 2], np.float32)
    check(model.execute(x, np.array(True))[0].to_numpy(), x + 1)


def test_branch_may_use_a_symbol_bound_by_another_graph_input() -> None:
    # The then branch captures nothing: `k` is bound by the graph's input only.
    def forward(p, y):
        two = ops.constant(2.0, DType.float32, CPU)
        (z,) = ops.cond(p, [y.type], lambda: ops.broadcast_to(two, ["k"]), lambda: y)
        return z

    g = Graph("sym2", forward, input_types=[tt(DType.bool), tt(DType.float32, "k")])
    model = shared_session().load(g)
    y = np.array([1, 2, 3], np.float32)
    check(model.execute(np.array(True), y)[0].to_numpy(), np.full(3, 2, np.float32))
    check(model.execute(np.array(False), y)[0].to_numpy(), y)


def test_runtime_check_in_a_taken_branch_raises_and_an_untaken_one_does_not() -> None:
    # The gather's index check lives inside the scf.if region; its flag leaves the region
    # through a cell and reaches the checks buffer.
    def forward(p, x, i):
        (y,) = ops.cond(p, [tt(DType.float32, 1)],
                        lambda: ops.gather(x, i, axis=0), lambda: x[:1])
        return y

    g = Graph("chk", forward, input_types=[tt(DType.bool), tt(DType.float32, 4),
                                           tt(DType.int64, 1)])
    model = shared_session().load(g)
    x = np.arange(4, dtype=np.float32) + 10
    bad, good = np.array([7], np.int64), np.array([-2], np.int64)
    check(model.execute(np.array(False), x, bad)[0].to_numpy(), x[:1])
    with pytest.raises(IndexError, match=r"mo\.gather: index out of range for axis 0 of size 4"):
        model.execute(np.array(True), x, bad)
    check(model.execute(np.array(True), x, good)[0].to_numpy(), x[good])
    check(model.execute(np.array(False), x, bad)[0].to_numpy(), x[:1])


def test_runtime_check_in_a_loop_body_on_a_later_iteration_and_nested() -> None:
    # cond inside while inside cond: the loop gathers x[idx[i]] for i < k; one bad index at
    # position j fails only when the loop reaches it (k > j) and the outer branch is taken.
    def forward(p, x, idx, k):
        def loop():
            def body(i, acc):
                (v,) = ops.cond(i >= 0, [tt(DType.float32, 1)],
                                lambda: ops.gather(x, ops.gather(idx, i.reshape([1]), axis=0),
                                                   axis=0),
                                lambda: x[:1])
                return [i + 1, acc + v]

            _, acc = ops.while_loop([ops.constant(0, DType.int64, CPU),
                                     ops.constant(np.zeros(1, np.float32), DType.float32, CPU)],
                                    lambda i, acc: i < k, body)
            return acc

        (y,) = ops.cond(p, [tt(DType.float32, 1)], loop, lambda: x[:1] * 0.0)
        return y

    g = Graph("chk_loop", forward, input_types=[tt(DType.bool), tt(DType.float32, 4),
                                                tt(DType.int64, 3), tt(DType.int64)])
    model = shared_session().load(g)
    x = np.array([1, 2, 4, 8], np.float32)
    idx = np.array([0, 3, 9], np.int64)  # idx[2] is out of range for x
    for steps in (0, 1, 2):
        (got,) = model.execute(np.array(True), x, idx, np.array(steps, np.int64))
        check(got.to_numpy(), np.array([x[idx[:steps]].sum()], np.float32))
    with pytest.raises(IndexError, match=r"mo\.gather: index out of range for axis 0 of size 4"):
        model.execute(np.array(True), x, idx, np.array(3, np.int64))
    check(model.execute(np.array(False), x, idx, np.array(3, np.int64))[0].to_numpy(),
          np.zeros(1, np.float32))
    # The loop's own index (i = 3) into idx is out of range too.
    with pytest.raises(IndexError, match=r"mo\.gather: index out of range for axis 0 of size 3"):
        model.execute(np.array(True), x, idx, np.array(4, np.int64))
    (got,) = model.execute(np.array(True), x, idx, np.array(2, np.int64))  # still usable
    check(got.to_numpy(), np.array([9], np.float32))


def test_runtime_check_in_a_called_subgraph() -> None:
    with Graph("chk_call", input_types=[tt(DType.float32, 4), tt(DType.int64, 1)]) as g:
        x, i = g.inputs
        sub = g.add_subgraph("pick", lambda a, b: ops.gather(a, b, axis=0),
                             input_types=[x.type, i.type])
        g.output(*ops.call(sub, x, i))
    model = shared_session().load(g)
    x = np.arange(4, dtype=np.float32)
    check(model.execute(x, np.array([3], np.int64))[0].to_numpy(), x[[3]])
    with pytest.raises(IndexError, match=r"mo\.gather: index out of range for axis 0 of size 4"):
        model.execute(x, np.array([4], np.int64))


def test_a_value_leaked_out_of_a_body_is_refused() -> None:
    leaked = []

    def then_fn(x):
        leaked.append(x * 2.0)
        return x

    with Graph("leak", input_types=[tt(DType.float32, 2), tt(DType.bool)]) as g:
        x, p = g.inputs
        ops.cond(p, [x.type], lambda: then_fn(x), lambda: x)
        with pytest.raises(ValueError, match="inside a cond/while_loop body is used outside"):
            leaked[0] + 1.0
        with pytest.raises(ValueError, match="inside another cond/while_loop body is used"):
            ops.cond(p, [x.type], lambda: leaked[0], lambda: x)
        with pytest.raises(ValueError, match="inside a cond/while_loop body is used outside"):
            g.output(leaked[0])


def test_a_weight_used_only_inside_a_branch_is_bound_at_load() -> None:
    # The weight's op goes into the graph's own block (where the compiler binds weights),
    # and the branch captures it; it once stayed in the branch and failed to compile.
    w = Weight("scale", DType.float32, [3], CPU)

    def forward(x, p):
        return ops.cond(p, [x.type], lambda: x * w, lambda: x)[0]

    g = Graph("branch_weight", forward, input_types=[tt(DType.float32, 3), tt(DType.bool)])
    scale = np.array([1, 2, 3], np.float32)
    model = shared_session().load(g, weights_registry={"scale": scale})
    x = np.array([1, 1, 2], np.float32)
    check(model.execute(x, np.array(True))[0].to_numpy(), x * scale)
    check(model.execute(x, np.array(False))[0].to_numpy(), x)
