"""Parsing untrusted MLIR (text or bytecode) without risking the calling process.

The bindings are an assertion-enabled build: some corrupt bytecode aborts the process inside
the reader instead of raising. :func:`check_parses` parses the data in a child process first;
only data that parsed and verified there is parsed in-process.

Run as ``python -m max.dialects.mo.safe_parse < FILE``: exit 0 if the input parses and verifies,
1 with the error on stderr otherwise.
"""

from __future__ import annotations

import signal
import subprocess
import sys

BYTECODE_MAGIC = b"ML\xefR"


def check_parses(data: bytes, *, what: str = "input", timeout: float = 120.0) -> None:
    """Raises ValueError unless ``data`` parses and verifies as an MO module."""
    if not data.startswith(BYTECODE_MAGIC):
        try:
            data.decode()
        except UnicodeDecodeError:
            raise ValueError(f"{what}: neither MLIR bytecode nor UTF-8 MLIR text") from None
    proc = subprocess.run(
        [sys.executable, "-m", "max.dialects.mo.safe_parse"],
        input=data, capture_output=True, timeout=timeout,
    )
    if proc.returncode == 0:
        return
    message = proc.stderr.decode(errors="replace").strip().splitlines()
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise ValueError(f"{what}: corrupt MLIR (the parser crashed with {name})")
    detail = message[-1] if message else f"exit code {proc.returncode}"
    raise ValueError(f"{what}: cannot parse MLIR: {detail}")


def parse(data: bytes, context):  # noqa: ANN001, ANN201 - mlir types imported lazily
    """Parses MLIR text or bytecode in ``context``; ir.MLIRError/ValueError on bad input."""
    from mlir import ir

    with context, ir.Location.unknown():
        module = ir.Module.parse(data if data.startswith(BYTECODE_MAGIC) else data.decode())
        module.operation.verify()
    return module


def _main() -> int:
    from max.dialects.mo import make_context

    data = sys.stdin.buffer.read()
    try:
        parse(data, make_context())
    except Exception as e:  # report any failure as one line for the parent
        print(" ".join(str(e).split()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
