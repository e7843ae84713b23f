#!/usr/bin/env python3
"""Fails when tmuxd's modules import each other in a cycle.

A module is a file or folder under src/ (src/mail/bridge.rs is `mail::bridge`,
src/recorder/ingest.rs belongs to `recorder`): a folder's parts may use each
other, but one module using another that (directly or not) uses it back is
a cycle. Uses are `crate::a::b` paths, in `use` lines or inline.

    scripts/check-cycles.py [--graph]
"""
import pathlib
import re
import sys

if sys.argv[1:2] in (["-h"], ["--help"]):
    print(__doc__.strip())
    sys.exit(0)

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
# Folders whose files are modules of their own (mail::bridge, mail::exec).
SPLIT = {"mail"}


def module_of(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts and parts[0] in SPLIT and len(parts) > 1:
        return "::".join(parts[:2])
    return parts[0] if parts else "lib"


def known(mods, path):
    """The module a `crate::...` path names, if any."""
    segs = path.split("::")
    for n in (2, 1):
        cand = "::".join(segs[:n])
        if cand in mods:
            return cand
    return None


def main():
    files = [p for p in SRC.rglob("*.rs") if p.name not in ("lib.rs", "main.rs")]
    mods = {module_of(p) for p in files}
    edges = {m: set() for m in mods}
    for p in files:
        src = module_of(p)
        text = p.read_text()
        # Test code may reach anywhere.
        text = text.split("#[cfg(test)]")[0]
        paths = re.findall(r"crate::((?:\w+::)*\w+)", text)
        # Inside a split folder, `super::x` is a sibling: FOLDER::x.
        parts = p.relative_to(SRC).parts
        if parts[0] in SPLIT and len(parts) > 1:
            paths += [f"{parts[0]}::{x}" for x in re.findall(r"super::(\w+)", text)]
        for group in re.findall(r"use crate::(\w+)::\{([^}]*)\}", text):
            paths += [f"{group[0]}::{x.strip()}" for x in group[1].split(",")]
        for path in paths:
            dst = known(mods, path)
            if dst and dst != src:
                edges[src].add(dst)
    if "--graph" in sys.argv:
        for m in sorted(edges):
            print(f"{m} -> {', '.join(sorted(edges[m]))}")
    # Strongly connected components (Tarjan).
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    for comp in sccs:
        pairs = [f"{a} -> {b}" for a in comp for b in sorted(edges[a]) if b in comp]
        print(f"import cycle among {', '.join(comp)}: {'; '.join(pairs)}")
    if sccs:
        return 1
    print(f"no import cycles among {len(mods)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
