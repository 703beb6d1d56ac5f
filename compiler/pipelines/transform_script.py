"""The words the CPU schedules write transform-dialect scripts in, and how a script is applied.

Every schedule module (matmul, conv, layout, rows, threads, copies) builds its script as text
from these pieces, so that a handle's type, a peel's suppressed sequence or the tile marker
are spelled once. A script is ``HEADER + body + FOOTER``; :func:`apply` runs it on a module.
"""

from __future__ import annotations

import itertools

from mlir import ir
from mlir.dialects.transform import interpreter

from max.compiler.passes.registry import pass_manager

ANY = "!transform.any_op"
HEADER = "module attributes {transform.with_named_sequence} {\n" \
         "transform.named_sequence @__transform_main(%root: !transform.any_op " \
         "{transform.readonly}) {\n"
FOOTER = "  transform.yield\n}\n}\n"
# Set on an op once all its tiling succeeded (clones made by tiling and peeling keep it): only
# such ops are vectorized, since only their dynamic sizes are known to be <= the tile sizes.
TILED = "mo.tiled"
CANON = "canonicalize,cse"  # the cleanup after a script

_counter = itertools.count()


def suppress(body: str) -> str:
    """A nested sequence whose silenceable failures leave the op as it is."""
    return (f"  transform.sequence %root : {ANY} failures(suppress) {{\n"
            f"  ^bb0(%r{next(_counter)}: {ANY}):\n{body}  }}\n")


def peel_lines(loop: str, name: str) -> str:
    """The lines that peel ``loop`` (an ``scf.for`` handle): the full iterations' loop is
    ``%{name}a``, the remainder's ``%{name}b``; inside a sequence of the caller's."""
    cast = '!transform.op<"scf.for">'
    return (f"    %{name}c = transform.cast {loop} : {ANY} to {cast}\n"
            f"    %{name}a, %{name}b = transform.loop.peel %{name}c : "
            f"({cast}) -> ({ANY}, {ANY})\n")


def peel(loop: str, name: str, tag: str = "") -> str:
    """Peels ``loop``; ``tag``: an attribute put on the remainder loop (the handles do not
    leave the suppressed sequence)."""
    mark = f'    transform.annotate %{name}b "{tag}" : {ANY}\n' if tag else ""
    return suppress(peel_lines(loop, name) + mark)


def tile(target: str, name: str, sizes: list[int]) -> str:
    """Tiles ``target`` by ``sizes`` with ``scf.for`` loops: the tiled op is ``%{name}``, the
    loops ``%{name}l`` (see :func:`loop`)."""
    n = sum(1 for s in sizes if s)
    loops = f", {', '.join([ANY] * n)}" if n else ""
    return (f"    %{name}, %{name}l:{n} = transform.structured.tile_using_for {target} "
            f"tile_sizes {sizes} : ({ANY}) -> ({ANY}{loops})\n") if n > 1 else (
        f"    %{name}, %{name}l = transform.structured.tile_using_for {target} "
        f"tile_sizes {sizes} : ({ANY}) -> ({ANY}{loops})\n")


def loop(name: str, i: int, n: int) -> str:
    """The handle of loop ``i`` of the ``n`` that :func:`tile` named ``name`` made."""
    return f"%{name}l#{i}" if n > 1 else f"%{name}l"


def pad(target: str, name: str, dims: list[int], multiple: list[int] | None = None) -> str:
    """Pads the f32 matmul-shaped tile ``target`` (A, B, C) along ``dims`` to its bound (or to
    a ``multiple`` of each), zeros in: ``%{name}`` is the padded op; its A and C tiles are
    copied in and C's copied back, so the register kernel is static."""
    to = f"pad_to_multiple_of {multiple} " if multiple else ""
    return (f"    %{name}, %{name}p, %{name}c = transform.structured.pad {target} {to}{{\n"
            f"      padding_values = [0.0 : f32, 0.0 : f32, 0.0 : f32],\n"
            f"      padding_dimensions = {dims}, nofold_flags = [0, 0, 0]\n"
            f"    }} : ({ANY}) -> ({ANY}, {ANY}, {ANY})\n")


def done(handle: str) -> str:
    """Marks a fully tiled op: its dynamic dims are bounded by the tile sizes (see TILED)."""
    return f'    transform.annotate {handle} "{TILED}" : {ANY}\n'


def vectorize_script(targets: dict[int, list[int] | None]) -> str:
    """Vectorizes the ops tagged ``mo.vid = i``; a size list means masked vectorization.

    One match per ``i`` (a walk of the whole module each: one per op made the script
    quadratic in the graph's size), then each op on its own: a failure leaves only that op
    as it is."""
    s = ""
    for i, sizes in targets.items():
        vs = f" vector_sizes {sizes}" if sizes is not None else ""
        s += (f"  %v{i} = transform.structured.match attributes{{mo.vid = {i} : i64}} in %root"
              f" : ({ANY}) -> {ANY}\n"
              f"  transform.foreach %v{i} : {ANY} {{\n"
              f"  ^bb0(%v{i}o: {ANY}):\n"
              f"    transform.sequence %v{i}o : {ANY} failures(suppress) {{\n"
              f"    ^bb0(%v{i}p: {ANY}):\n"
              f"      transform.structured.vectorize %v{i}p{vs} "
              f"{{create_named_contraction, vectorize_nd_extract}} : {ANY}\n"
              f"    }}\n"
              f"    transform.yield\n"
              f"  }}\n")
    return HEADER + s + FOOTER


_VECTOR_LOWERING = f"""
  transform.apply_patterns to %f {{
    transform.apply_patterns.vector.lower_contraction lowering_strategy = "outerproduct"
    transform.apply_patterns.vector.lower_outerproduct
  }} : {ANY}
  transform.apply_patterns to %f {{
    transform.apply_patterns.vector.lower_multi_reduction lowering_strategy = "innerreduction"
  }} : {ANY}
  transform.apply_patterns to %f {{
    transform.apply_patterns.vector.lower_masked_transfers
    transform.apply_patterns.vector.transfer_permutation_patterns
    transform.apply_patterns.vector.lower_transpose
    transform.apply_patterns.vector.lower_broadcast
    transform.apply_patterns.vector.lower_shape_cast
    transform.apply_patterns.vector.lower_transfer max_transfer_rank = 1
  }} : {ANY}
"""


def _lower_vectors(where: str) -> str:
    """Transform script: redundant transfers hoisted in every function, then the vector ops
    lowered in the ops that the match condition ``where`` finds."""
    return HEADER + f"""
  %f0 = transform.structured.match ops{{["func.func"]}} in %root : ({ANY}) -> {ANY}
  %f1 = transform.structured.hoist_redundant_vector_transfers %f0 : ({ANY}) -> {ANY}
  %f = transform.structured.match {where} in %root : ({ANY}) -> {ANY}
""" + _VECTOR_LOWERING + FOOTER


# Transform script: the vector ops lowered (contract -> outer products -> FMAs, transfers to
# rank 1) in every function.
LOWER_VECTORS = _lower_vectors('ops{["func.func"]}')


def lower_vectors_in(attribute: str) -> str:
    """Transform script: :data:`LOWER_VECTORS` with its patterns applied inside the ops
    marked ``attribute`` only (its hoisting still in every function: a second one moves
    transfers the first left in loops). Each ``apply_patterns`` over a whole function folds
    every op in it, about 35 ms on MiniLM even where no pattern applies."""
    return _lower_vectors(f"attributes{{{attribute}}}")


def _transform_options() -> interpreter.TransformOptions:
    # The interpreter's expensive checks (on by default) verify every handle after every
    # transform op: a walk of the whole module each time, which made the schedule quadratic
    # in the graph's size (a 6-layer MiniLM: most of a 60-120 s compile). Our scripts are
    # generated and tested; MAX_SCHEDULE_DEBUG=1 turns the checks back on.
    from max.compiler.pipelines.stages import schedule_debug

    options = interpreter.TransformOptions()
    options.expensive_checks = schedule_debug()
    return options


def apply(module: ir.Module, script: str) -> None:
    """Runs the transform script ``script`` (its ``@__transform_main``) on ``module``."""
    t = ir.Module.parse(script)
    interpreter.apply_named_sequence(module.operation, t.body.operations[0], t,
                                     _transform_options())


def run_passes(module: ir.Module, pipeline: str) -> None:
    """Runs the pass pipeline ``pipeline`` (as ``builtin.module(...)`` holds it) on ``module``."""
    pass_manager(pipeline).run(module.operation)


__all__ = ["ANY", "CANON", "FOOTER", "HEADER", "LOWER_VECTORS", "TILED", "apply", "done",
           "lower_vectors_in", "loop", "pad", "peel", "peel_lines", "run_passes", "suppress",
           "tile", "vectorize_script"]
