#!/usr/bin/env python3
"""Finds circular imports between the files of each crate of the workspace.

An edge A -> B means file A names an item of file B's module: `use crate::b::...`,
`crate::b::Item` in code, `super::...` or `self::...` (resolved to the longest module
path that exists). Module declarations (`mod b;`) are not edges: a parent declares its
children; an import cycle is two files each using the other's items (a parent that
re-exports a child's item while the child uses the parent's is one).

Usage: scripts/module-cycles.py [CRATE_DIR...]   (default: every workspace member)
Prints each cycle found and exits 1 if there is any; prints a summary and exits 0
otherwise. `make test` runs it.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)::([^;]*);", re.S)
# `use child::...` and `child::Item` without an anchor name a child module (edition 2018
# paths); only counted when the first segment is a child module of the file's module.
BARE_USE = re.compile(r"\buse\s+([a-z_][a-z0-9_]*)::([^;]*);", re.S)
BARE_PATH = re.compile(r"(?<![:\w])([a-z_][a-z0-9_]*)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
ANCHORS = {"crate", "super", "self", "std", "core", "alloc"}
COMMENT = re.compile(r"//[^\n]*")


def members():
    text = open(os.path.join(ROOT, "Cargo.toml")).read()
    match = re.search(r"members\s*=\s*\[([^\]]*)\]", text)
    return [name.strip().strip('"') for name in match.group(1).split(",") if name.strip()]


def module_files(crate_dir):
    """Maps module path tuples to files for every .rs file under src/."""
    src = os.path.join(crate_dir, "src")
    modules = {}
    for directory, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, src)[:-3].split(os.sep)
            if relative[-1] in ("mod", "lib", "main"):
                relative = relative[:-1]
            if relative and relative[0] == "bin":
                continue  # binaries are separate crates
            modules[tuple(relative)] = path
    return modules


def expand_group(base, text):
    """`a::{b, c::d}` -> ['a::b', 'a::c::d'] (nested groups handled recursively)."""
    text = text.strip()
    if "{" not in text:
        return [base + text if base else text]
    head, _, rest = text.partition("{")
    body = rest[: rest.rfind("}")]
    parts, depth, current = [], 0, ""
    for char in body:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "{"
        depth -= char == "}"
        current += char
    parts.append(current)
    out = []
    for part in parts:
        if part.strip():
            out.extend(expand_group(base + head, part))
    return out


def inline_modules(text):
    """Spans (start, end, name) of inline `mod name { ... }` blocks (braces matched;
    braces inside string literals come in pairs in this code base)."""
    spans = []
    for match in re.finditer(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{", text):
        depth = 0
        for position in range(match.end() - 1, len(text)):
            if text[position] == "{":
                depth += 1
            elif text[position] == "}":
                depth -= 1
                if depth == 0:
                    spans.append((match.end(), position, match.group(1)))
                    break
    return spans


def nesting(spans, position):
    """The inline module names enclosing `position`, outermost first."""
    return [name for start, end, name in sorted(spans) if start <= position < end]


def references(text):
    """Every (anchor, path segments, inline module path) the file names; anchor
    "child" is a bare path."""
    text = COMMENT.sub("", text)
    spans = inline_modules(text)
    found = []
    for match in BARE_USE.finditer(text):
        first, rest = match.groups()
        if first in ANCHORS:
            continue
        for path in expand_group(first + "::", rest):
            path = path.split(" as ")[0].strip()
            found.append(("child", [seg for seg in path.split("::") if seg], nesting(spans, match.start())))
    for match in BARE_PATH.finditer(text):
        first, rest = match.groups()
        if first in ANCHORS:
            continue
        found.append(("child", [first] + [seg for seg in rest.split("::") if seg], nesting(spans, match.start())))
    for match in USE_GROUP.finditer(text):
        anchor, rest = match.groups()
        for path in expand_group("", rest):
            path = path.split(" as ")[0].strip()
            found.append((anchor, [seg for seg in path.split("::") if seg], nesting(spans, match.start())))
    for match in PATH.finditer(text):
        anchor, rest = match.groups()
        if rest == "::{":
            continue
        found.append((anchor, [seg for seg in rest.split("::") if seg], nesting(spans, match.start())))
    return found


def resolve(module, anchor, segments, modules, inline):
    """The file module a reference lands in. `inline` names the inline modules (not
    files) around the reference: `super` from `mod tests {}` is the file itself."""
    module = tuple(list(module) + inline)
    if anchor == "child":
        if tuple(list(module) + segments[:1]) not in modules:
            return None
        anchor = "self"
    if anchor == "crate":
        base = []
    elif anchor == "self":
        base = list(module)
    else:  # super, possibly repeated
        base = list(module[:-1])
        while segments and segments[0] == "super":
            base = base[:-1]
            segments = segments[1:]
    full = base + segments
    for length in range(len(full), -1, -1):
        if tuple(full[:length]) in modules:
            return tuple(full[:length])
    return None


def cycles_of(crate_dir):
    modules = module_files(crate_dir)
    edges = {module: set() for module in modules}
    for module, path in modules.items():
        text = open(path).read()
        for anchor, segments, inline in references(text):
            target = resolve(module, anchor, segments, modules, inline)
            if target is not None and target != module:
                edges[module].add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on_stack, components = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    sys.setrecursionlimit(10_000)
    for node in sorted(modules):
        if node not in index:
            visit(node)
    return modules, edges, components


def main():
    crates = sys.argv[1:] or members()
    total_files = 0
    bad = 0
    for crate in crates:
        crate_dir = os.path.join(ROOT, crate)
        modules, edges, components = cycles_of(crate_dir)
        total_files += len(modules)
        for component in components:
            bad += 1
            names = sorted(os.path.relpath(modules[m], ROOT) for m in component)
            print(f"{crate}: files importing each other: {', '.join(names)}")
            members_set = set(component)
            for module in sorted(component):
                for target in sorted(edges[module] & members_set):
                    print(f"    {os.path.relpath(modules[module], ROOT)} -> {os.path.relpath(modules[target], ROOT)}")
    if bad:
        print(f"module-cycles: {bad} import cycle(s) in {len(crates)} crates")
        return 1
    print(f"module-cycles: no import cycles ({total_files} files in {len(crates)} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
