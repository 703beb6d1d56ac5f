"""An LLVM module's functions split into parts that ``opt`` and ``llc`` compile in parallel.

``opt`` and ``llc`` run on one core; a model's module is many functions (the entry, each
serial kernel outlined by ``mo-outline-kernels``, each threaded kernel outlined by OpenMP), so
the work splits by function. :func:`plan` parses the module's top-level definitions from its
text and balances the functions over the parts by their length in lines (largest first, each
into the lightest part); each part is then ``llvm-extract``-ed out of the whole module, given
to ``opt`` with everything that is not a symbol of the module internalized (``llvm-extract``
leaves every constant it copies visible), and to ``llc``; the objects are linked together.

What may be in two parts and what must be in one:

* private/internal **constants** are copied into each part that reads them (read-only, never
  compared by address in our code) and internalized there;
* **functions** are defined in one part and declared in the others; ``llvm-extract`` turns
  the local ones hidden (not exported from the shared object);
* ``linkonce``/``weak`` functions (helpers that any object may define) go into every part;
* **mutable globals** and exported symbols (a profile's counters) are defined in part 0 only
  and kept visible.

Anything else the plan does not know (aliases, ifuncs, quoted or numbered names, unnamed mutable
globals, comdats) makes :func:`plan` return None, and the module is compiled whole: the
result is the same, only the compile is serial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# A part below this many lines of function bodies is not worth two more processes (~20 ms).
MIN_PART_LINES = 1500

_NAME = r"[-a-zA-Z$._][-a-zA-Z$._0-9]*"
_DEFINE = re.compile(rf"^define ([^@]*)@({_NAME})\(", re.M)
_GLOBAL = re.compile(rf"^@({_NAME}|\d+) = ([^\n]*)$", re.M)
_UNSUPPORTED = re.compile(r'^(@"|define [^@]*@"|@[^=\n]* = [^\n]*\b(alias|ifunc)\b|\$)', re.M)
_LOCAL = ("private", "internal")
_SHARED = ("linkonce", "linkonce_odr", "weak", "weak_odr")


@dataclass(frozen=True)
class Part:
    """One process's share: the functions it defines, the globals it owns."""

    functions: tuple[str, ...]
    globals: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    parts: tuple[Part, ...]
    public: tuple[str, ...]  # symbols kept visible in every part (all others internalized)


def _words(text: str) -> set[str]:
    return set(text.split())


def _function_lines(llvm_ir: str) -> list[tuple[str, set[str], int]]:
    """(name, words before the name, lines) of every function definition."""
    found = []
    for m in _DEFINE.finditer(llvm_ir):
        end = llvm_ir.find("\n}", m.end())
        end = len(llvm_ir) if end < 0 else end
        found.append((m.group(2), _words(m.group(1)), llvm_ir.count("\n", m.start(), end) + 1))
    return found


def plan(llvm_ir: str, parts: int) -> Plan | None:
    """How to compile ``llvm_ir`` in ``parts`` parallel parts, or None: compile it whole
    (one part would do, or the module holds something the split does not handle)."""
    if parts < 2 or _UNSUPPORTED.search(llvm_ir):
        return None
    functions = _function_lines(llvm_ir)
    if len(functions) != len(re.findall(r"^define ", llvm_ir, re.M)):
        return None  # a definition the pattern does not read (a numbered or quoted name)
    shared = [name for name, words, _ in functions if words & set(_SHARED)]
    split = sorted(((lines, name) for name, words, lines in functions
                    if not words & set(_SHARED)), reverse=True)
    total = sum(lines for lines, _ in split)
    parts = min(parts, total // MIN_PART_LINES, len(split))
    if parts < 2:
        return None
    owned: list[str] = []
    public: list[str] = [name for name, _, _ in functions]
    for m in _GLOBAL.finditer(llvm_ir):
        name, rest = m.group(1), m.group(2)
        words = _words(rest.split("[", 1)[0].split("(", 1)[0])
        local, constant = bool(words & set(_LOCAL)), "constant" in words
        if local and constant:
            continue  # copied into each part that reads it
        if name.isdigit():
            return None  # an unnamed global that must stay one: cannot be named to the tools
        if words & {"external", "extern_weak"}:
            continue  # a declaration (a definition's external linkage is not written)
        owned.append(name)
        public.append(name)
    loads = [0] * parts
    bins: list[list[str]] = [[] for _ in range(parts)]
    for lines, name in split:  # largest first, each into the lightest part
        i = loads.index(min(loads))
        loads[i] += lines
        bins[i].append(name)
    return Plan(tuple(Part(tuple(b + shared), tuple(owned if i == 0 else ()))
                      for i, b in enumerate(bins)), tuple(public))


def commands(plan: Plan, module: Path, tmp: Path, *, tools: dict[str, str], level: int,
             target: list[str], passes: str | None = None) -> list[tuple[list[list[str]], Path]]:
    """Per part, the commands that make its object from ``module`` (``llvm-extract``,
    ``opt`` with the internalization, ``llc -O{level}``), and the object's path.
    ``tools``: the path of each of the three; ``target``: ``-mtriple``/``-mcpu`` flags;
    ``passes``: opt's pipeline after the internalization (default ``default<O{level}>``)."""
    public = tmp / "public.txt"
    public.write_text("".join(f"{name}\n" for name in plan.public))
    out = []
    for i, part in enumerate(plan.parts):
        bc, opt_bc, obj = (tmp / f"part{i}{ext}" for ext in (".bc", ".opt.bc", ".o"))
        out.append(([
            [tools["llvm-extract"], "--keep-const-init", *(f"--func={f}" for f in part.functions),
             *(f"--glob={g}" for g in part.globals), str(module), "-o", str(bc)],
            [tools["opt"], f"-passes=internalize,{passes or f'default<O{level}>'}",
             f"-internalize-public-api-file={public}", *target, str(bc), "-o", str(opt_bc)],
            [tools["llc"], f"-O{level}", *target, "-relocation-model=pic", "-filetype=obj",
             str(opt_bc), "-o", str(obj)],
        ], obj))
    return out


__all__ = ["MIN_PART_LINES", "Part", "Plan", "commands", "plan"]
