"""A worker's memory over many measured architectures, with and without handing freed pages back.

    python benchmarks/memory_growth.py [--archs 6] [--out benchmarks/memory_growth.txt]

One process measures ``--archs`` architectures of the held-out table's space one after another, as a
reused Ray worker or a table worker does (`measure_arch` at the spec's deployed scale, 224 px, batch 16,
peak memory included, one repeat), and prints its resident memory after each; then a second process does
the same with `wfsearch.proxy.allocator.release_memory` turned off (what a worker did before). glibc keeps
freed heap pages under `steady_allocations`, so without the release the heap grows with every
architecture's shapes.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "benchmarks" / "tables" / "quickstart-table.yaml"


def worker(n: int, release: bool) -> None:
    import torch

    torch.set_num_threads(1)
    import wfsearch.proxy.measure as measure
    from wfsearch.proxy.cache import MeasureCache
    from wfsearch.search.table import enumerate_space
    from wfsearch.space import load_spec
    from wfsearch.space.sampling import arch_from_params

    if not release:
        measure.release_memory = lambda: False
    spec = load_spec(SPEC, ["throughput.repeats=1"])
    for i, (_, params) in enumerate(enumerate_space(spec)[40:40 + n], 1):
        arch = arch_from_params(spec, params).arch
        measure.measure_arch(spec.throughput.deployed(arch), spec.throughput, cache=MeasureCache())
        rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        print(f"{'release' if release else 'kept   '} after {i} architecture(s): {rss:.0f} MiB", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", choices=["release", "kept"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.archs, args.worker == "release")
        return 0
    lines = [f"# {' '.join(['python benchmarks/memory_growth.py', *(argv if argv is not None else sys.argv[1:])])}"]
    for arm in ("release", "kept"):
        out = subprocess.run([sys.executable, __file__, "--archs", str(args.archs), "--worker", arm],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        lines += out
        first, last = (float(x.rsplit(": ", 1)[1].split()[0]) for x in (out[0], out[-1]))
        lines.append(f"{arm}: {(last - first) / max(1, len(out) - 1):+.0f} MiB per architecture after the first")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
