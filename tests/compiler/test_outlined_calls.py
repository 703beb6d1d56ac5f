"""A subgraph called more than once is one function (compiler/lowering/call.py), compiled once:
the calls must compute what the inlined body computes (numpy here), write into the caller's
buffers, keep the body's runtime checks, bind each call's weights (``ops.call(prefix=)``,
``Module.build_subgraph``) and give those weights the load-time layouts the body reads."""

from __future__ import annotations

import numpy as np
import pytest
from mlir import ir

from max.compiler.lowering import lower_to_linalg
from max.compiler.lowering.call import plan_calls
from max.compiler.targets import cpu as cpu_target
from max.dialects.mo import make_context
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Dim, Graph, TensorType, Weight, ops
from max.nn import Linear, Module

CPU = DeviceRef.CPU()
H = 48

pytestmark = pytest.mark.usefixtures("schedule_debug")


def _t(*dims: object, dtype: DType = DType.float32) -> TensorType:
    return TensorType(dtype, list(dims), CPU)


def _block(x, w, b, g):
    """layer_norm(x + gelu(layer_norm(x) @ w + b)): a layer's shape of work (matmul, rows,
    epilogue), and two layer norms of one shape, whose inits CSE would make one."""
    zero = ops.constant(np.zeros(H, np.float32), DType.float32, CPU)
    h = ops.layer_norm(x, g, zero, 1e-5)
    return ops.layer_norm(x + ops.gelu(h @ w + b), g, zero, 1e-5)


def _np_layer_norm(x, g):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * g


def _np_block(x, w, b, g):
    from math import erf, sqrt

    x = x.astype(np.float64)
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / sqrt(2))))
    return _np_layer_norm(x + gelu(_np_layer_norm(x, g) @ w + b), g)


def _lowered(g: Graph, outline: bool = True) -> ir.Module:
    """The graph's module after mo-to-linalg, in a context of its own."""
    module = ir.Module.parse(str(g._module), make_context())
    lower_to_linalg(module, outline_calls=outline)
    return module


def _functions(module: ir.Module) -> list[str]:
    return [ir.StringAttr(op.operation.attributes["sym_name"]).value
            for op in module.body.operations]


def _stack(layers: int) -> Graph:
    x_type = _t(Dim("batch"), "seq", H)
    per_layer = [_t(H, H), _t(H), _t(H)]
    with Graph("stack", input_types=[x_type] + per_layer * layers) as g:
        sub = g.add_subgraph("layer", _block, input_types=[x_type] + per_layer)
        x = g.inputs[0]
        for i in range(layers):
            (x,) = ops.call(sub, x, *g.inputs[1 + 3 * i: 4 + 3 * i])
        g.output(x)
    return g


def _params(rng: np.random.Generator, layers: int) -> list[np.ndarray]:
    out = []
    for _ in range(layers):
        out += [(rng.standard_normal((H, H)) / 7).astype(np.float32),
                rng.standard_normal(H).astype(np.float32),
                (1 + rng.standard_normal(H) / 4).astype(np.float32)]
    return out


def test_a_subgraph_called_three_times_is_one_function_with_three_calls() -> None:
    module = _lowered(_stack(3))
    # the body on tensors, and the function on memrefs that calls (and will inline) it
    assert sorted(_functions(module)) == ["__mo_sub_layer", "__mo_sub_layer__impl", "stack"]
    text = str(module)
    assert text.count("call @__mo_sub_layer(") == 3 and text.count("no_inline") == 3
    # destination-passing: the function writes each result into its out argument
    assert "bufferization.materialize_in_destination" in text
    # the GPU targets inline every call: no function of the subgraph is left
    assert _functions(_lowered(_stack(3), outline=False)) == ["stack"]


def test_a_users_function_named_like_ours_keeps_its_name() -> None:
    t = _t("n")
    with Graph("names", input_types=[t]) as g:
        s = g.add_subgraph("s", lambda v: v * 2.0, input_types=[t])
        taken = g.add_subgraph("__mo_sub_s", lambda v: v + 1.0, input_types=[t])
        (x,) = g.inputs
        a = ops.call(s, ops.call(s, x)[0])[0]
        g.output(ops.call(taken, ops.call(taken, a)[0])[0])
    assert sorted(f for f in _functions(_lowered(g)) if not f.endswith("__impl")) == [
        "__mo_sub___mo_sub_s", "__mo_sub_s_", "names"]
    x = np.array([1, -2], np.float32)
    got = InferenceSession(num_threads=1).load(g).execute(x)[0].to_numpy()
    np.testing.assert_array_equal(got, x * 4 + 2)


def test_a_subgraph_called_once_is_inlined() -> None:
    assert _functions(_lowered(_stack(1))) == ["stack"]


def test_the_function_survives_the_cpu_pipeline_with_no_result_crossing_a_call() -> None:
    module = _lowered(_stack(4))
    with module.context:
        cpu_target.CPU.run(module, until="mo-outline-kernels", threads=2)
    text = str(module)
    # the caller allocates each call's results: no allocation is returned, so deallocation
    # needs no aliasing checks at run time; the body on tensors was inlined into the function
    assert "dealloc_helper" not in text and "__impl" not in text
    assert text.count("call @__mo_sub_layer(") == 4
    signature = text.split("func.func private @__mo_sub_layer(")[1].split("{")[0]
    assert "->" not in signature, signature


@pytest.mark.parametrize("layers, threads", [(2, 1), (2, 2), (5, 2)])
def test_repeated_calls_match_numpy(layers: int, threads: int) -> None:
    rng = np.random.default_rng(layers)
    params = _params(rng, layers)
    session = InferenceSession(num_threads=threads)
    model = session.load(_stack(layers))
    assert model._record.fallbacks == ()
    for batch, seq in ((2, 5), (1, 33), (3, 64)):  # the symbolic dims pass into the body
        x = rng.standard_normal((batch, seq, H)).astype(np.float32)
        want = x.astype(np.float64)
        for i in range(layers):
            want = _np_block(want, *params[3 * i: 3 * i + 3])
        (got,) = model.execute(x, *params)
        np.testing.assert_allclose(got.to_numpy(), want, rtol=2e-4, atol=2e-4)


def _gather_graph() -> Graph:
    with Graph("picks", input_types=[_t("n", 4), _t(2, dtype=DType.int64),
                                     _t(2, dtype=DType.int64)]) as g:
        sub = g.add_subgraph("pick", lambda v, i: ops.gather(v, i, axis=0) * 2.0,
                             input_types=[_t("n", 4), _t(2, dtype=DType.int64)])
        x, i, j = g.inputs
        (a,) = ops.call(sub, x, i)
        (b,) = ops.call(sub, x, j)
        g.output(a + b)
    return g


def test_the_body_runtime_checks_are_the_callers() -> None:
    model = InferenceSession(num_threads=1).load(_gather_graph())
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    i, j = np.array([0, 2]), np.array([1, 1])
    (got,) = model.execute(x, i, j)
    np.testing.assert_array_equal(got.to_numpy(), x[i] * 2 + x[j] * 2)
    # an index out of range in either call is the gather's error, not a wrong answer
    with pytest.raises(IndexError, match=r"mo.gather: index out of range"):
        model.execute(x, i, np.array([1, 3]))
    with pytest.raises(IndexError, match=r"mo.gather: index out of range"):
        model.execute(x, np.array([-4, 0]), j)


def test_nested_subgraphs_each_called_twice() -> None:
    t = _t("n")
    with Graph("nested", input_types=[t, t]) as g:
        inner = g.add_subgraph("inner", lambda v: ops.exp(v) - v * 0.5, input_types=[t])
        outer = g.add_subgraph("outer", lambda v: ops.call(inner, ops.call(inner, v)[0])[0] + 1.0,
                               input_types=[t])
        a, b = g.inputs
        g.output(ops.call(outer, a)[0], ops.call(outer, b)[0])
    assert sorted(_functions(_lowered(g))) == ["__mo_sub_inner", "__mo_sub_inner__impl",
                                               "__mo_sub_outer", "__mo_sub_outer__impl",
                                               "nested"]

    def f(v):
        for _ in range(2):
            v = np.exp(v) - v * 0.5
        return v + 1

    a = np.linspace(-1, 1, 37).astype(np.float32)
    b = np.linspace(-2, 0.5, 37).astype(np.float32)
    got = [o.to_numpy() for o in InferenceSession(num_threads=1).load(g).execute(a, b)]
    np.testing.assert_allclose(got[0], f(a.astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(got[1], f(b.astype(np.float64)), rtol=1e-5)


_SEGMENTS = ("operandSegmentSizes = array<i32: 1" + ", 0" * 15 + ">, "
             "resultSegmentSizes = array<i32: 1" + ", 0" * 15 + ">")


def test_subgraphs_called_from_subgraphs_and_from_branches_are_functions() -> None:
    # inner is called twice inside outer's body, outer twice from the graph, mid once in
    # each branch of a cond: each is one function.
    t = _t("n")
    with Graph("tops", input_types=[t, _t(dtype=DType.bool)]) as g:
        inner = g.add_subgraph("inner", lambda v: v * 2.0, input_types=[t])
        outer = g.add_subgraph("outer", lambda v: ops.call(inner, ops.call(inner, v)[0])[0],
                               input_types=[t])
        mid = g.add_subgraph("mid", lambda v: v + 1.0, input_types=[t])
        x, p = g.inputs
        (y,) = ops.call(outer, ops.call(outer, x)[0])
        (z,) = ops.cond(p, [t], lambda: ops.call(mid, y)[0], lambda: ops.call(mid, x)[0])
        g.output(z)
    module = ir.Module.parse(str(g._module), make_context())
    # (and the cond's two branches: every cond/while body is a function of its own)
    assert plan_calls(module) == frozenset({"inner", "outer", "mid", "tops_cond_then",
                                            "tops_cond_else"})
    x = np.linspace(-1, 1, 5).astype(np.float32)
    model = InferenceSession(num_threads=1).load(g)
    for flag in (True, False):
        want = x * 16 + 1 if flag else x + 1
        np.testing.assert_allclose(model.execute(x, np.array(flag))[0].to_numpy(), want)


@pytest.mark.parametrize("arg, result, planned", [
    ('!mo.tensor<f32, ["n"], "cpu:0">', '!mo.tensor<f32, ["n", 2], "cpu:0">', True),
    # only the body could size the caller's destination
    ('!mo.tensor<f32, ["n"], "cpu:0">', '!mo.tensor<f32, ["k"], "cpu:0">', False),
    # a buffer's loads and stores are ordered with the caller's: inlined
    ('!mo.buffer<f32, ["n"], "cpu:0">', '!mo.tensor<f32, ["n"], "cpu:0">', False),
])
def test_which_subgraphs_become_functions(arg: str, result: str, planned: bool) -> None:
    call = f'"mo.call"(%a) {{callee = @s, {_SEGMENTS}}} : ({arg}) -> {result}'
    text = (f"module {{ func.func @g(%a: {arg}) -> ({result}, {result}) attributes {{mo.graph}} {{"
            f" %0 = {call}\n %1 = {call}\n return %0, %1 : {result}, {result} }}\n"
            f" func.func private @s({arg}) -> {result} }}")
    module = ir.Module.parse(text, make_context())
    assert plan_calls(module) == (frozenset({"s"}) if planned else frozenset())


class _Ffn(Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = Linear(H, 2 * H, DType.float32, CPU, has_bias=True)
        self.down = Linear(2 * H, H, DType.float32, CPU)

    def __call__(self, x):
        return x + self.down(ops.relu(self.up(x)))


class _Stack(Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        from max.nn import LayerList

        self.layers = LayerList([_Ffn() for _ in range(n)])

    def __call__(self, x):
        sub = self.layers[0].build_subgraph("ffn", [x.type], weight_prefix="layers.0.")
        for i in range(len(self.layers)):
            (x,) = ops.call(sub, x, prefix=f"layers.{i}.")
        return x


def test_build_subgraph_binds_each_layers_weights_by_prefix() -> None:
    n = 4
    model = _Stack(n)
    rng = np.random.default_rng(7)
    state = {k: (rng.standard_normal(v.shape) / 8).astype(np.float32)
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    g = Graph("ffn_stack", model, input_types=[_t("rows", H)])
    text = str(g)
    assert text.count('"mo.call"') == n and text.count("mo.constant_external") == 3 * n
    compiled = InferenceSession(num_threads=2).load(g, weights_registry=state)
    record = compiled._record
    assert sorted(w.name for w in record.weights) == sorted(state)
    # every layer's B operand is read as prepacked panels, as in the inlined graph
    layouts = dict(zip((w.name for w in record.weights), record.weight_layouts, strict=True))
    assert all(layouts[f"layers.{i}.up.weight"] and layouts[f"layers.{i}.down.weight"]
               for i in range(n)), layouts
    x = rng.standard_normal((37, H)).astype(np.float32)
    want = x.astype(np.float64)
    for i in range(n):
        p = f"layers.{i}."
        h = np.maximum(want @ state[p + "up.weight"].T + state[p + "up.bias"], 0)
        want = want + h @ state[p + "down.weight"].T
    (got,) = compiled.execute(x)
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-4, atol=1e-4)


def test_subgraph_weights_bind_by_name_and_bad_prefixes_are_errors() -> None:
    w = Weight("scale", DType.float32, [3], CPU)
    t = _t(3)
    with Graph("named", input_types=[t]) as g:
        sub = g.add_subgraph("scaled", lambda v: v * w, input_types=[t])
        (x,) = g.inputs
        with pytest.raises(TypeError, match=r"call: prefix must be a str, got int"):
            ops.call(sub, x, prefix=3)  # type: ignore[arg-type]
        y = ops.call(sub, x)[0]  # prefix "": the caller's weight of the same name
        z = ops.call(sub, y, prefix="b.")[0]
        g.output(z)
    scale, other = np.array([1, 2, 3], np.float32), np.array([4, 5, 6], np.float32)
    model = InferenceSession(num_threads=1).load(g, weights_registry={"scale": scale,
                                                                      "b.scale": other})
    x = np.array([1, 1, 2], np.float32)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), x * scale * other)
    with pytest.raises(ValueError, match=r"b\.scale"):
        InferenceSession(num_threads=1).load(g, weights_registry={"scale": scale})


@pytest.mark.usefixtures("no_profile_table_at_exit")
def test_a_profiled_model_times_each_layers_kernels(tmp_path, monkeypatch) -> None:
    # The profile times the entry's kernels: profiled, the calls are inlined, so each
    # layer's matmul is a row of its own instead of one opaque call per layer.
    monkeypatch.setenv("MAX_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MAX_PROFILE_KERNELS", "1")
    layers = 3
    model = InferenceSession(num_threads=1).load(_stack(layers))
    matmuls = [k for k in model._record.kernels if "matmul" in k.label]
    assert len(matmuls) == layers, model._record.kernels
    rng = np.random.default_rng(3)
    params = _params(rng, layers)
    x = rng.standard_normal((2, 9, H)).astype(np.float32)
    want = x.astype(np.float64)
    for i in range(layers):
        want = _np_block(want, *params[3 * i: 3 * i + 3])
    np.testing.assert_allclose(model.execute(x, *params)[0].to_numpy(), want, rtol=2e-4,
                               atol=2e-4)


def test_a_call_in_a_branch_binds_its_weights_in_the_bodys_layout() -> None:
    # The body reads its weights as prepacked panels: every call's weights must be stored so,
    # those a call inside a cond region passes too (else that branch would multiply by
    # scrambled weights).
    model = _Ffn()
    rng = np.random.default_rng(11)
    local = {k: (rng.standard_normal(v.shape) / 8).astype(np.float32)
             for k, v in model.state_dict().items()}
    model.load_state_dict(local)
    state = {f"{p}{k}": v * s for p, s in (("a.", 1.0), ("b.", -0.5)) for k, v in local.items()}

    def forward(x, flag):
        sub = model.build_subgraph("ffn", [x.type])
        (y,) = ops.call(sub, x, prefix="a.")
        (z,) = ops.cond(flag, [y.type], lambda: ops.call(sub, y, prefix="b.")[0], lambda: y)
        return z

    g = Graph("branchy", forward, input_types=[_t("rows", H), _t(dtype=DType.bool)])
    assert "ffn" in plan_calls(ir.Module.parse(str(g._module), make_context()))
    compiled = InferenceSession(num_threads=2).load(g, weights_registry=state)
    assert compiled._record.fallbacks == ()  # the body is scheduled, the branch's call too
    layouts = dict(zip((w.name for w in compiled._record.weights),
                       compiled._record.weight_layouts, strict=True))
    assert all(layouts[p + w] for p in ("a.", "b.") for w in ("up.weight", "down.weight")), \
        layouts

    def ffn(v, p):
        h = np.maximum(v @ state[p + "up.weight"].T + state[p + "up.bias"], 0)
        return v + h @ state[p + "down.weight"].T

    x = rng.standard_normal((40, H)).astype(np.float32)
    y = ffn(x.astype(np.float64), "a.")
    for flag, want in ((True, ffn(y, "b.")), (False, y)):
        (got,) = compiled.execute(x, np.array(flag))
        np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-4, atol=1e-4)


def test_a_weight_outside_the_prefix_is_shared_by_every_call() -> None:
    # As MAX's build_subgraph: only the weights under weight_prefix are per-call
    # placeholders; another (a table every layer reads) keeps its own name.
    shared = Weight("shared.scale", DType.float32, [H], CPU)

    class Scaled(Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = Linear(H, H, DType.float32, CPU)

        def __call__(self, x):
            return self.proj(x) * shared

    class Two(Module):
        def __init__(self) -> None:
            super().__init__()
            from max.nn import LayerList

            self.layers = LayerList([Scaled(), Scaled()])

        def __call__(self, x):
            sub = self.layers[0].build_subgraph("scaled", [x.type], weight_prefix="layers.0.")
            for i in range(2):
                (x,) = ops.call(sub, x, prefix=f"layers.{i}.")
            return x

    model = Two()
    rng = np.random.default_rng(5)
    state = {k: (rng.standard_normal(v.shape) / 6).astype(np.float32)
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    g = Graph("shared_weight", model, input_types=[_t("rows", H)])
    scale = (1 + rng.standard_normal(H) / 4).astype(np.float32)
    weights = {**state, "shared.scale": scale}
    compiled = InferenceSession(num_threads=1).load(g, weights_registry=weights)
    assert sorted(w.name for w in compiled._record.weights) == sorted(weights)
    x = rng.standard_normal((9, H)).astype(np.float32)
    want = x.astype(np.float64)
    for i in range(2):
        want = (want @ state[f"layers.{i}.proj.weight"].T) * scale
    np.testing.assert_allclose(compiled.execute(x)[0].to_numpy(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rows", [0, 1, 70])
def test_mixed_dtypes_several_results_and_pass_through(rows: int) -> None:
    # Results of four dtypes (one a reduction, one an input returned as it is, twice):
    # each call writes its own buffers, whatever the body returns.
    ti, tf = _t("n", 3, dtype=DType.int32), _t("n", 3, dtype=DType.float16)

    def body(a, b):
        s = ops.cast(a, DType.float16) + b
        return [s, ops.sum(a, axis=0), s > 1.0, ops.argmax(b, axis=1), b, b]

    with Graph("mixed", input_types=[ti, tf, ti, tf]) as g:
        sub = g.add_subgraph("mix", body, input_types=[ti, tf])
        a, b, c, d = g.inputs
        g.output(*ops.call(sub, a, b), *ops.call(sub, c, d), *ops.call(sub, a, d))
    rng = np.random.default_rng(rows)
    a, c = (rng.integers(-5, 5, (rows, 3)).astype(np.int32) for _ in range(2))
    b, d = (rng.standard_normal((rows, 3)).astype(np.float16) for _ in range(2))

    def ref(x, y):
        s = x.astype(np.float16) + y
        return [s, x.sum(0, keepdims=True), s > 1.0, np.argmax(y, axis=1)[:, None] if rows
                else np.zeros((0, 1), np.int64), y, y]

    model = InferenceSession(num_threads=2).load(g)
    got = [o.to_numpy() for o in model.execute(a, b, c, d)]
    for k, (o, w) in enumerate(zip(got, ref(a, b) + ref(c, d) + ref(a, d), strict=True)):
        assert o.shape == w.shape, (k, o.shape, w.shape)
        np.testing.assert_array_equal(o.astype(np.float64), w.astype(np.float64), err_msg=str(k))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_loop_body_is_a_scheduled_function(threads: int) -> None:
    # x <- tanh(x @ w) until the counter reaches n: the body's matmul is scheduled (in the
    # loop's region it was plain loops), the carried buffers change every iteration.
    rng = np.random.default_rng(threads)
    w = (rng.standard_normal((H, H)) / 7).astype(np.float32)

    def forward(x, n):
        i = ops.constant(0, DType.int32, CPU)
        wc = ops.constant(w, DType.float32, CPU)
        _, y = ops.while_loop([i, x], lambda i, x: i < n,
                              lambda i, x: [i + 1, ops.tanh(x @ wc)])
        return y

    g = Graph("loop_body", forward, input_types=[_t("rows", H), _t(dtype=DType.int32)])
    module = ir.Module.parse(str(g._module), make_context())
    assert plan_calls(module) == frozenset({"loop_body_while_body"})
    model = InferenceSession(num_threads=threads).load(g)
    # the matmul and tanh are scheduled; what stays plain loops is the loop's own: its
    # scalar condition and counter, and the copies of the carried values
    assert not [f for f in model._record.fallbacks if "matmul" in f or "tanh" in f], \
        model._record.fallbacks
    x = rng.standard_normal((19, H)).astype(np.float32)
    for n in (0, 1, 7):
        want = x.astype(np.float64)
        for _ in range(n):
            want = np.tanh(want @ w)
        got = model.execute(x, np.array(n, np.int32))[0].to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_the_options_choose_what_is_outlined() -> None:
    t = _t("n")
    with Graph("opts", input_types=[t, _t(dtype=DType.bool)]) as g:
        sub = g.add_subgraph("twice", lambda v: v * 2.0, input_types=[t])
        x, p = g.inputs
        (y,) = ops.call(sub, ops.call(sub, x)[0])
        g.output(ops.cond(p, [t], lambda: y + 1.0, lambda: y)[0])
    module = ir.Module.parse(str(g._module), make_context())
    branches = {"opts_cond_then", "opts_cond_else"}
    assert plan_calls(module) == frozenset({"twice"} | branches)
    assert plan_calls(module, calls=False) == frozenset(branches)  # a profiled model's
    assert plan_calls(module, calls=False, bodies=False) == frozenset()  # the GPU targets'
