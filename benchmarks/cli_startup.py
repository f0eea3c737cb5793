"""Start-up time of `wfsearch --help` and a subcommand's `--help`, against a bare interpreter.

    python benchmarks/cli_startup.py [--runs 5] [--tree OTHER_CHECKOUT]

Runs each command ``--runs`` times, interleaved (so a busy machine slows all of them alike), and
prints the median and range of the wall time; with ``--tree`` the same commands of another checkout
(e.g. the commit before the light-import change) run alongside, with the ratio of the medians.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [["--help"], ["report", "--help"], ["show", "--help"], ["run", "--help"]]


def timed(args: list[str], tree: Path | None) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else dict(os.environ)
    cmd = [sys.executable, "-c", "pass"] if args == ["python"] else [sys.executable, "-m", "wfsearch", *args]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=tree or REPO)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--tree", type=Path, default=None, help="another checkout to compare with")
    a = p.parse_args()
    trees = {"this": REPO, **({"other": a.tree.resolve()} if a.tree else {})}
    cases = [("python -c pass", ["python"], "this")] + [
        (f"{name}: wfsearch {' '.join(c)}", c, name) for c in COMMANDS for name in trees]
    times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for _ in range(a.runs):
        for label, args, name in cases:
            times[label].append(timed(args, trees[name]))
    print(f"# {a.runs} runs each, interleaved; python {sys.version.split()[0]}; load {os.getloadavg()[0]:.1f}")
    for label, _, _ in cases:
        t = times[label]
        print(f"{label:<34} median {statistics.median(t):6.3f}s  range {min(t):.3f}-{max(t):.3f}s")
    if a.tree:
        for c in COMMANDS:
            this, other = (statistics.median(times[f"{n}: wfsearch {' '.join(c)}"]) for n in ("this", "other"))
            print(f"wfsearch {' '.join(c):<16} other/this = {other / this:.1f}x")


if __name__ == "__main__":
    main()
