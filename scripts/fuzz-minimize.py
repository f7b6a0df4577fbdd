#!/usr/bin/env python3
"""Minimises one fuzz target's committed corpus to at most FILES_MAX inputs.

`cargo fuzz cmin` keeps every input that adds a feature, which for targets of JSON
bodies is thousands of files. This keeps a bounded corpus instead: libFuzzer's set-cover
merge (`-set_cover_merge=1 -use_counters=0`) reports the features (edges, hit counts
ignored) each input covers, then a greedy set cover takes the input adding the most
uncovered features (the smaller one on a tie) until all are covered or FILES_MAX inputs
are taken. It prints the share of the corpus's features the kept inputs cover.

Usage: scripts/fuzz-minimize.py TARGET_BINARY CORPUS_DIR [FILES_MAX]   (default 300)
`make fuzz` runs it with FUZZ_GROW_CORPUS=1 (scripts/fuzz.sh).
"""

import os
import shutil
import subprocess
import sys
import tempfile


def edges_per_input(binary, corpus):
    """(path, size, set of features) of every input, from libFuzzer's merge control file
    (its FT lines: every feature of the input; its COV lines name only new ones)."""
    with tempfile.TemporaryDirectory() as scratch:
        control = os.path.join(scratch, "control")
        output = os.path.join(scratch, "out")
        os.mkdir(output)
        subprocess.run(
            [binary, "-set_cover_merge=1", "-use_counters=0",
             f"-merge_control_file={control}", output, corpus],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lines = open(control).read().split("\n")
    count = int(lines[0])
    paths = lines[2:2 + count]
    sizes, edges = {}, {}
    for line in lines[2 + count:]:
        parts = line.split()
        if parts and parts[0] == "STARTED":
            sizes[int(parts[1])] = int(parts[2])
        elif parts and parts[0] == "FT":
            edges[int(parts[1])] = set(parts[2:])
    return [(paths[index], sizes.get(index, 0), found) for index, found in edges.items()]


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    binary, corpus = sys.argv[1], sys.argv[2]
    files_max = int(sys.argv[3]) if len(sys.argv) == 4 else 300
    inputs = edges_per_input(binary, corpus)
    everything = set().union(*(found for _, _, found in inputs)) if inputs else set()
    covered, kept = set(), []
    remaining = list(inputs)
    while remaining and len(kept) < files_max:
        best = max(remaining, key=lambda item: (len(item[2] - covered), -item[1]))
        if not best[2] - covered:
            break
        kept.append(best[0])
        covered |= best[2]
        remaining.remove(best)
    # Replace the corpus with the kept inputs (copied aside first: they live in it).
    with tempfile.TemporaryDirectory() as keep:
        for path in kept:
            shutil.copy(path, keep)
        for name in os.listdir(corpus):
            os.remove(os.path.join(corpus, name))
        for name in os.listdir(keep):
            shutil.copy(os.path.join(keep, name), corpus)
    share = 100.0 * len(covered) / len(everything) if everything else 100.0
    print(f"fuzz-minimize: {corpus}: {len(inputs)} inputs -> {len(kept)}, "
          f"covering {len(covered)} of {len(everything)} features ({share:.1f} %)")


if __name__ == "__main__":
    main()
