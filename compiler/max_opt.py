"""``max-opt``: run passes over an MO module and print the result, as ``mlir-opt`` does.

    max-opt model.mlirbc --mo-canonicalize                     # print the canonicalized MO
    max-opt model.mlir --pass-pipeline='builtin.module(mo-fold,canonicalize)' -o out.mlir
    max-opt model.mlir --mo-fold --cse --emit-bytecode -o out.mlirbc
    max-opt graph.mlir --target=nvidia --print-ir-after-all     # every stage of a target
    max-opt graph.mlir --target='nvidia{arch=sm_80}' -o lowered.mlir
    max-opt --list-passes

The input is MLIR text or bytecode (recognized by its magic bytes, whatever the file is called;
``-`` reads stdin). Passes run in command-line order; each name is looked up in our registry
first (``max.compiler.passes.registry``) and otherwise handed to upstream MLIR, options included
(``--canonicalize='max-iterations=2'``, ``func.func(cse)`` inside a pipeline).
``--target=NAME[{options}]`` stands for the stages of ``targets[NAME]`` (``compiler/targets/``),
each its own step, preceded by ``mo-to-linalg`` when the module still holds MO ops. Every error
is one line ``max-opt: error: ...`` on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from mlir import ir
from mlir.passmanager import PassManager

from max.compiler.extensions import find_extensions, read_extensions
from max.compiler.kernels import KernelLibrary, use_library

BYTECODE_MAGIC = b"ML\xefR"
PROG = "max-opt"


class ToolError(Exception):
    """An error to report as one line and exit with status 1."""


@dataclass
class Step:
    """One pass to run: its name as given, and how to run it."""

    name: str
    run: Callable[[ir.Module], None]


# ---- reading and writing ----------------------------------------------------------------------


def _diagnostic_text(error: ir.MLIRError, source: str) -> str:
    """The first error diagnostic of ``error`` as ``FILE:LINE:COL: message``."""
    diagnostics = getattr(error, "error_diagnostics", None) or []
    if not diagnostics:
        return str(error).strip().splitlines()[-1]
    d = diagnostics[0]
    m = re.match(r'loc\("[^"]*":(\d+):(\d+)\)', str(d.location))
    where = f"{source}:{m.group(1)}:{m.group(2)}: " if m and m.group(1) != "0" else f"{source}: "
    return where + " ".join(d.message.split())


def read_input(path: str) -> tuple[bytes, str]:
    """The bytes of ``path`` (``-``: stdin) and the name to report it by."""
    if path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        with open(path, "rb") as f:
            return f.read(), path
    except OSError as e:
        raise ToolError(f"cannot read {path}: {e.strerror or e}") from None


def parse_module(data: bytes, source: str) -> ir.Module:
    """Parses MLIR text or bytecode (by content) into a module; the caller enters the Context."""
    if data.startswith(BYTECODE_MAGIC):
        _check_bytecode_in_child(data, source)
        asm: str | bytes = data
        kind = "bytecode"
    else:
        try:
            asm = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{source}: neither MLIR bytecode nor UTF-8 text") from None
        kind = "text"
    try:
        module = ir.Module.parse(asm)
    except ir.MLIRError as e:
        raise ToolError(f"cannot parse {kind}: {_diagnostic_text(e, source)}") from None
    except (ValueError, RuntimeError) as e:
        raise ToolError(f"cannot parse {kind} {source}: {_first_line(e)}") from None
    _verify(module, f"{source} (as read)")
    return module


def _check_bytecode_in_child(data: bytes, source: str) -> None:
    """Corrupt bytecode can abort the (assertion-enabled) reader: try it in a child first."""
    try:
        from max.dialects.mo.safe_parse import check_parses
    except ImportError:
        return
    try:
        check_parses(data, what=source)
    except ValueError as e:
        raise ToolError(" ".join(str(e).split())) from None
    except (OSError, subprocess.SubprocessError) as e:  # no child: parse in-process after all
        print(f"{PROG}: warning: cannot check {source} in a child process: {e}", file=sys.stderr)


def _verify(module: ir.Module, what: str) -> None:
    try:
        module.operation.verify()
    except ir.MLIRError as e:
        raise ToolError(f"invalid IR after {what}: {_diagnostic_text(e, '<module>')}") from None


def write_output(module: ir.Module, path: str | None, bytecode: bool) -> None:
    try:
        if path is None or path == "-":
            _write(module, sys.stdout.buffer, bytecode)
            sys.stdout.buffer.flush()
        else:
            with open(path, "wb") as f:
                _write(module, f, bytecode)
    except OSError as e:
        raise ToolError(f"cannot write {path}: {e.strerror or e}") from None


def _write(module: ir.Module, f: BinaryIO, bytecode: bool) -> None:
    if bytecode:
        module.operation.write_bytecode(f)
    else:
        f.write((str(module) + ("" if str(module).endswith("\n") else "\n")).encode())


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


# ---- passes ----------------------------------------------------------------------------------


def _our_passes() -> dict:
    from max.compiler.passes import registry

    try:
        return registry.all_passes()
    except Exception as e:  # a pass module that does not import must not hide the others
        raise ToolError(f"cannot load the pass registry: {_first_line(e)}") from None


def split_pipeline(text: str) -> list[str]:
    """Top-level elements of a pass pipeline, without a ``builtin.module(...)`` wrapper.

    ``builtin.module(mo-fold,func.func(cse),canonicalize{max-iterations=2})`` ->
    ``["mo-fold", "func.func(cse)", "canonicalize{max-iterations=2}"]``.
    """
    text = text.strip()
    m = re.fullmatch(r"builtin\.module\((.*)\)", text, re.S)
    if m:
        text = m.group(1)
    elements, depth, start, quote = [], 0, 0, ""
    for i, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
            if depth < 0:
                raise ToolError(f"unbalanced brackets in pass pipeline {text!r}")
        elif c == "," and depth == 0:
            elements.append(text[start:i].strip())
            start = i + 1
    if depth != 0 or quote:
        raise ToolError(f"unbalanced brackets in pass pipeline {text!r}")
    elements.append(text[start:].strip())
    return [e for e in elements if e]


def make_step(element: str, ours: dict) -> Step:
    """A pipeline element -> a step: our pass by name, else an upstream MLIR pass (pipeline)."""
    name = re.split(r"[({]", element, maxsplit=1)[0].strip()
    if element == LOWER_IF_MO:
        return Step(element, _lower_if_mo)
    if element in ours:
        info = ours[element]
        return Step(element, info.fn)
    if name in ours:
        from max.compiler.passes.registry import split_element

        info = ours[name]
        base, text = split_element(element)
        if base != name or text is None:
            raise ToolError(f"bad pass {element!r}: options go in braces, {name}{{key=value}}")
        try:
            options = info.parse_options(text)
        except ValueError as e:
            raise ToolError(str(e)) from None
        return Step(element, lambda module: info.fn(module, **options))
    try:
        pm = PassManager.parse(f"builtin.module({element})")
    except (ValueError, ir.MLIRError) as e:
        message = _first_line(e).removeprefix("MLIR Textual PassPipeline Parser:1:1: error: ")
        if "does not refer to a registered pass" in message:
            raise ToolError(f"unknown pass {name!r} (see --list-passes)") from None
        raise ToolError(f"bad pass {element!r}: {message}") from None

    def run_upstream(module: ir.Module) -> None:
        try:
            pm.run(module.operation)
        except ir.MLIRError as e:
            raise ToolError(f"pass {element!r} failed: {_diagnostic_text(e, '<module>')}") from None

    return Step(element, run_upstream)


def run_steps(module: ir.Module, steps: list[Step], print_after_all: bool) -> None:
    from max.compiler.passes.registry import CompilationError

    for step in steps:
        try:
            step.run(module)
        except ToolError:
            raise
        except CompilationError as e:
            raise ToolError(f"pass {step.name!r} failed: {_first_line(e)}") from None
        except ir.MLIRError as e:  # an upstream pipeline our pass ran: its diagnostic
            raise ToolError(f"pass {step.name!r} failed: {_diagnostic_text(e, '<module>')}"
                            ) from None
        except Exception as e:  # a bug in a Python pass: still one line, never a traceback
            raise ToolError(
                f"pass {step.name!r} raised {type(e).__name__}: {_first_line(e)}"
            ) from None
        _verify(module, f"pass {step.name!r}")
        if print_after_all:
            print(f"// -----// IR Dump After {step.name} //----- //", file=sys.stderr)
            print(str(module), file=sys.stderr)


# ---- command line ----------------------------------------------------------------------------

_OPTIONS_WITH_VALUE = {"-o", "--pass-pipeline", "--custom-extensions"}
# The step that lowers MO first when a --target's input is still an MO graph.
LOWER_IF_MO = "mo-to-linalg-if-mo"
_FLAGS = {"--emit-bytecode", "--print-ir-after-all", "--list-passes", "--no-verify", "-h",
          "--help"}


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separates pass flags and pipelines (kept in order, as pipeline elements) from the
    other arguments, which go to argparse."""
    rest: list[str] = []
    elements: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        option = arg.split("=", 1)[0]
        if option in ("--pass-pipeline", "--target"):
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise ToolError(f"{option} needs a value")
            elements.extend(split_pipeline(value) if option == "--pass-pipeline"
                            else target_elements(value))
        elif option in _OPTIONS_WITH_VALUE:
            rest.append(arg)
            if "=" not in arg and i + 1 < len(argv):
                i += 1
                rest.append(argv[i])
        elif arg == "--":
            rest.extend(argv[i:])
            break
        elif arg.startswith("--") and option not in _FLAGS:
            name, _, options = arg[2:].partition("=")  # mlir-opt: --pass='opt1=v opt2=w'
            elements.append(f"{name}{{{options}}}" if options else name)
        else:
            rest.append(arg)
        i += 1
    return elements, rest


def target_elements(text: str) -> list[str]:
    """``nvidia{arch=sm_80}`` -> the MO front step and that target's pipeline elements."""
    from max.compiler.passes.registry import split_element
    from max.compiler.targets import targets

    name, option_text = split_element(text)
    if name not in targets:
        raise ToolError(f"unknown target {name!r} (targets: {', '.join(targets)})")
    options: dict[str, object] = {}
    for item in (option_text or "").split():
        key, sep, value = item.partition("=")
        if not sep:
            raise ToolError(f"bad target option {item!r}: write key=value")
        options[key] = int(value) if value.isdigit() else value
    try:
        return [LOWER_IF_MO] + targets[name].pipeline(**options)
    except ValueError as e:
        raise ToolError(str(e)) from None


def _lower_if_mo(module: ir.Module) -> None:
    """Runs ``mo-to-linalg`` when any op of ``module`` is still an MO op."""
    found = False

    def visit(op: ir.Operation) -> ir.WalkResult:
        nonlocal found
        found = op.name.startswith("mo.")
        return ir.WalkResult.INTERRUPT if found else ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    if found:
        from max.compiler.passes.registry import get_pass

        get_pass("mo-to-linalg").fn(module)


def _arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Run MO and MLIR passes over a module (MLIR text or bytecode).",
        epilog="Any other --NAME[=OPTIONS] runs the pass NAME, in command-line order; "
        "see --list-passes.",
    )
    p.add_argument("input", nargs="?", default="-", help="input .mlir or .mlirbc ('-': stdin)")
    p.add_argument("-o", dest="output", default=None, help="output file (default: stdout)")
    p.add_argument("--pass-pipeline", metavar="PIPELINE", help="e.g. 'builtin.module(mo-fold,cse)'")
    p.add_argument("--target", metavar="NAME", help="run a target's stages: cpu, nvidia, "
                   "'nvidia{arch=sm_80}'")
    p.add_argument("--emit-bytecode", action="store_true", help="write MLIR bytecode")
    p.add_argument("--print-ir-after-all", action="store_true", help="dump the IR after each pass")
    p.add_argument("--list-passes", action="store_true", help="list our passes and exit")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the MO verifier on the input (it runs first by default)")
    p.add_argument("--custom-extensions", action="append", metavar="PATH", default=[],
                   help="a .mlir file (or folder of them) of custom kernels that mo.custom "
                   "ops call (repeatable)")
    return p


def list_passes() -> str:
    lines = ["Passes of max (run with --NAME or inside --pass-pipeline):"]
    for name, info in _our_passes().items():
        lines.append(f"  --{name:<24} {info.description}")
        if info.options:
            opts = " ".join(f"{k}=<{t.__name__}>" for k, t in info.options.items())
            lines.append(f"  {'':<26} options: {name}{{{opts}}}")
    lines.append("Any upstream MLIR pass is accepted by name too (--canonicalize, --cse, ...).")
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    elements, rest = split_argv(argv)
    args = _arg_parser().parse_args(rest)
    if args.list_passes:
        print(list_passes())
        return 0
    from max.dialects.mo import make_context

    context = make_context()
    with context, ir.Location.unknown():
        ours = _our_passes() if elements else {}
        steps = [make_step(e, ours) for e in elements]  # all checked before any input is read
        data, source = read_input(args.input)
        module = parse_module(data, source)
        if not args.no_verify:  # the input is untrusted: check it before any pass trusts it
            from max.dialects.mo.verify import VerificationError, verify_module

            try:
                verify_module(module, strict=False)
            except VerificationError as e:
                raise ToolError(f"{source}: {e}") from None
        with use_library(_kernels(args.custom_extensions)):
            run_steps(module, steps, args.print_ir_after_all)
        write_output(module, args.output, args.emit_bytecode)
    return 0


def _kernels(paths: list[str]) -> KernelLibrary | None:
    """The custom kernels of ``--custom-extensions`` (text: parsed here, as the input is)."""
    if not paths:
        return None
    from max.compiler.passes.registry import CompilationError

    try:
        return KernelLibrary(read_extensions(find_extensions(paths, "--custom-extensions")))
    except (CompilationError, ValueError, TypeError, NotImplementedError) as e:
        raise ToolError(_first_line(e)) from None


def main(argv: list[str] | None = None) -> int:
    from max.compiler.passes.registry import VERIFY_EACH_ENV

    # As mlir-opt: the pipelines our passes run verify after each pass (unless set to 0).
    os.environ.setdefault(VERIFY_EACH_ENV, "1")
    try:
        return run(sys.argv[1:] if argv is None else list(argv))
    except ToolError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # never a traceback from the tool
        print(f"{PROG}: error: internal error: {type(e).__name__}: {_first_line(e)}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
