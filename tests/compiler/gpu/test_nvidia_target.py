"""The NVIDIA target as data: registered stages, the targets registry, max-opt replaying its
stages, the launches it builds (grid and block sizes), and the errors it raises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gpu_helpers import gpu_graph
from mlir import ir
from mlir.passmanager import PassManager

from max.compiler import max_opt
from max.compiler.lowering import lower_to_linalg
from max.compiler.passes.registry import all_passes, split_element
from max.compiler.targets import targets
from max.compiler.targets.cpu import CPU
from max.compiler.targets.nvidia import NVIDIA, NvidiaDescription
from max.dialects.mo import make_context
from max.dtype import DType
from max.graph import ops

F32 = DType.float32


def test_registry_finds_every_target() -> None:
    assert targets["cpu"] is CPU and targets["nvidia"] is NVIDIA
    assert list(targets) == ["cpu", "nvidia", "amd"]
    with pytest.raises(KeyError, match="unknown target 'tpu'"):
        targets["tpu"]


def test_every_stage_is_registered_or_upstream() -> None:
    ours = all_passes()
    elements = NVIDIA.pipeline(**NvidiaDescription(arch="sm_80").options())
    for element in elements:
        name, options = split_element(element)
        if name in ours:
            ours[name].parse_options(options or "")
        else:
            with make_context():
                PassManager.parse(f"builtin.module({element})")
    names = [split_element(e)[0] for e in elements]
    # Tensors of scalars built on the device first; then the front is the CPU target's
    # (without its tensor schedule), same names, same order.
    cpu_names = [split_element(e)[0] for e in CPU.pipeline(schedule=False)]
    assert names[0] == "mo-gpu-from-elements" and names[1:6] == cpu_names[:5]
    assert "mo-nvvm-attach{arch=sm_80 features=+ptx80}" in elements
    assert elements[-1] == "gpu-module-to-binary{format=isa}"
    plain = [split_element(e)[0] for e in NVIDIA.pipeline(schedule=False)]
    assert "mo-gpu-schedule" not in plain and "mo-record-fallbacks" in plain


def _lowered(fn, specs) -> str:
    g = gpu_graph(fn, specs)
    with make_context():
        m = ir.Module.parse(str(g._module))
        lower_to_linalg(m)
        return str(m)


def _launches(fn, specs, **options) -> list[tuple[int, int, bool]]:
    """(blocks, threads, uses workgroup memory) of each gpu.launch after the schedule."""
    with make_context():
        m = ir.Module.parse(_lowered(fn, specs))
        NVIDIA.run(m, until="mo-gpu-map-loops", **{**NvidiaDescription().options(), **options})
        text = str(m)
    consts = {name: int(v) for name, v in
              re.findall(r"(%c\w*) = arith.constant (\d+) : index", text)}
    found = []
    for m_ in re.finditer(r"gpu.launch blocks\([^)]*\) in \(%\w+ = (%\w+), [^)]*\) "
                          r"threads\([^)]*\) in \(%\w+ = (%\w+), [^)]*\)( workgroup)?", text):
        found.append((consts[m_.group(1)], consts[m_.group(2)], bool(m_.group(3))))
    return found


def test_launch_sizes() -> None:
    # softmax over 64 rows of 1000: one block of 256 threads per row (shared memory).
    assert _launches(lambda x: ops.softmax(x), [(F32, (64, 1000))]) == [(64, 256, True)]
    # An elementwise op: 64 * 1000 / 4 = 16000 vectors, 63 blocks of 256 threads.
    assert _launches(lambda x: ops.exp(x), [(F32, (64, 1000))]) == [(63, 256, False)]
    # Short rows (64): scalar loads, so that 64 threads share a row, not 16 vectors.
    assert _launches(lambda x: ops.sum(x, axis=-1), [(F32, (10, 64))]) == [(10, 64, True)]
    # A big elementwise op: the grid stops at max_blocks, the loop strides over the rest.
    big = _launches(lambda x: x * 2.0, [(F32, (4096, 4096))], max_blocks=100)
    assert big == [(100, 256, False)]


def test_max_opt_replays_the_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = gpu_graph(lambda x: ops.softmax(x), [(F32, (8, 256))])
    src = tmp_path / "g.mlir"
    src.write_text(str(g._module))
    out = tmp_path / "out.mlir"
    rc = max_opt.main([str(src), "--target=nvidia{arch=sm_80}", "--print-ir-after-all",
                       "-o", str(out)])
    assert rc == 0
    dumps = re.findall(r"IR Dump After (\S+)", capsys.readouterr().err)
    schedule = [split_element(e)[0] for e in NVIDIA.pipeline()].index("mo-gpu-schedule")
    assert dumps[0] == "mo-to-linalg-if-mo"
    assert "mo-gpu-schedule{block=256" in dumps[schedule + 1]
    assert len(dumps) == len(NVIDIA.pipeline()) + 1
    text = out.read_text()
    assert "gpu.binary" in text and 'chip = "sm_80"' in text
    assert max_opt.main([str(src), "--target=tpu"]) == 1
    assert "unknown target 'tpu' (targets: cpu, nvidia, amd)" in capsys.readouterr().err


def test_max_opt_stage_by_stage_equals_one_run(tmp_path: Path) -> None:
    """Each stage replayed from the previous stage's file gives what one run gives."""
    text = _lowered(lambda x, y: ops.sum(ops.relu(x + y), axis=-1),
                    [(F32, (16, 256)), (F32, (16, 256))])
    options = NvidiaDescription().options()
    with make_context() as ctx:
        whole = ir.Module.parse(text, ctx)
        NVIDIA.run(whole, until="mo-gpu-merge-modules", **options)
        want = str(whole)
    path = tmp_path / "stage0.mlir"
    path.write_text(text)
    elements = NVIDIA.pipeline(**options)
    last = [split_element(e)[0] for e in elements].index("mo-gpu-merge-modules")
    for i, element in enumerate(elements[:last + 1]):
        out = tmp_path / f"stage{i + 1}.mlir"
        assert max_opt.main([str(path), "--no-verify",
                             f"--pass-pipeline=builtin.module({element})", "-o", str(out)]) == 0
        path = out
    assert path.read_text().rstrip("\n") == want.rstrip("\n")


def test_description_options() -> None:
    assert NvidiaDescription().options() == {
        "arch": "sm_90", "features": "+ptx80", "block": 256, "reduce_block": 256,
        "max_blocks": 132 * 8}
    assert NvidiaDescription(arch="sm_80", blocks_per_sm=4).options()["max_blocks"] == 108 * 4


def test_unsupported_arch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"unsupported NVIDIA arch 'sm_75' \(supported: "
                                         r"sm_90, sm_90a, sm_80\)"):
        NvidiaDescription(arch="sm_75")
    with pytest.raises(ValueError, match="block=100 must be a multiple of 32"):
        NvidiaDescription(block=100)


@pytest.mark.parametrize("name", ["encoder", "minilm", "conv2d", "depthwise_separable"])
def test_model_shaped_graphs_compile(name: str, tmp_path: Path) -> None:
    """The benchmarks' encoder block, all-MiniLM-L6-v2 (12 layers' weights given at load,
    symbolic batch and sequence, token-id checks) and convolutions placed on a GPU compile
    for sm_90; what falls back to plain loops is recorded."""
    import sys

    root = str(Path(__file__).resolve().parents[3])
    if root not in sys.path:  # benchmarks/ is a folder of the repository, not of the package
        sys.path.insert(0, root)
    from benchmarks import graphs

    from max.compiler.worker import compile_to_dir

    build = graphs.GRAPHS[{"depthwise_separable": "dwsep"}.get(name, name)]
    text = str(build().graph._module).replace('"cpu:0"', '"gpu:0"')
    record = compile_to_dir(text.encode(), "nvidia", {"arch": "sm_90"}, tmp_path)
    # Every matmul is tiled (the attention's too: 32-wide heads, MiniLM's symbolic sequence
    # as N or K). Plain loops, recorded: MiniLM's token-id checks' full reductions and its
    # mean pooling over the sequence.
    # The convolutions are plain kernels (their window read at affine indices), recorded.
    allowed = {"encoder": set(), "minilm": {
        "gather (linalg.generic)", "reduce_sum (linalg.generic)",
        "layer_norm+mul+reduce_sum (linalg.generic)"},
        "conv2d": {"conv2d (linalg.conv_2d_nhwc_hwcf)"},
        "depthwise_separable": {"conv2d (linalg.conv_2d_nhwc_hwcf)",
                  "conv2d (linalg.depthwise_conv_2d_nhwc_hwc)"}}[name]
    assert set(record.fallbacks) <= allowed
