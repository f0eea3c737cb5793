"""The speed goals that used to be timed assertions of the test suite, measured here (the tests keep
what they assert about behaviour): each line gives the figure, its goal and whether it is met.

    python benchmarks/timings.py [--out benchmarks/timings.txt]

- the synthetic proxy task on one core: images/s (goal >= 2000, median of 3 after a warm-up);
- the Pareto front of 20,000 and 200,000 points: the time ratio (goal < 30: N log N gives about 11x);
- the incremental hypervolume history of a 20,000-point front then 50,000 points (goal < 5 s);
- the front and hypervolume history of 10,000 trials (goal < 5 s);
- hostile specs refused by ``wfsearch validate`` (goal < 1 s for YAML alias bombs, < 5 s for the rest).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def seconds(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def synthetic_images_per_s() -> float:
    import torch

    from wfsearch.proxy.data import synthetic_images

    torch.set_num_threads(1)
    synthetic_images(100, 32, 4, seed=0)  # warm-up
    return statistics.median(2000 / seconds(lambda s=s: synthetic_images(2000, 32, 4, seed=s), 1) for s in range(3))


def front_growth() -> float:
    from wfsearch.study.front import on_front

    rng = np.random.default_rng(0)
    small, big = (rng.random((n, 2)).tolist() for n in (20_000, 200_000))
    return seconds(lambda: on_front(big, ["maximize"] * 2)) / seconds(lambda: on_front(small, ["maximize"] * 2))


def history_seconds() -> float:
    from wfsearch.study.hypervolume import HypervolumeBox

    rng = np.random.default_rng(1)
    box = HypervolumeBox.of([(0.0, 0.0), (1.0, 1.0)], ("maximize", "maximize"))
    line = [(x, 1 - x) for x in rng.permutation(np.linspace(0.0, 1.0, 20_000))]
    values = line + [tuple(v) for v in rng.random((50_000, 2))]
    return seconds(lambda: box.history(values), 1)


def study_front_seconds() -> float:
    from optuna.trial import TrialState

    from wfsearch.study import Status, TrialRecord, hypervolume_history, pareto_front

    values = np.random.default_rng(0).random((10_000, 2)).tolist()
    records = [TrialRecord(number=i, state=TrialState.COMPLETE, status=Status.OK, reason="ok", values=tuple(v),
                           arch_hash=str(i)) for i, v in enumerate(values)]
    return seconds(lambda: (pareto_front(records, ("maximize",) * 2),
                            hypervolume_history(values, ("maximize",) * 2, (0.0, 0.0))), 1)


def hostile_seconds() -> tuple[float, float]:
    """(slowest alias bomb, slowest other hostile spec) refused by `wfsearch validate`."""
    import contextlib
    import io

    from test_hostile_specs import SMOKE, alias_bomb, merge_bomb

    from wfsearch.cli import main

    def refuse(path: Path, *extra: str) -> float:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            assert main(["validate", str(path), *extra]) == 2
            return time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        refuse(d / "missing.yaml")  # the first call imports the CLI: not timed
        bombs = []
        for i, text in enumerate([alias_bomb(), alias_bomb(levels=30, width=2), merge_bomb()]):
            (d / f"bomb{i}.yaml").write_text(text)
            bombs.append(refuse(d / f"bomb{i}.yaml"))
        (d / "deep.yaml").write_text(SMOKE + "\nextra: " + "[" * 600 + "1" + "]" * 600 + "\n")
        (d / "huge.yaml").write_text(SMOKE + "\nspace2: [" + ", ".join(str(i) for i in range(2_000_000)) + "]\n")
        (d / "f0.yaml").write_text(SMOKE)
        for i in range(1, 1200):
            (d / f"f{i}.yaml").write_text(f"extends: f{i - 1}.yaml\n")
        others = [refuse(d / name) for name in ("deep.yaml", "huge.yaml", "f1199.yaml")]
        others.append(refuse(REPO / "spaces" / "smoke.yaml", "--set", "base.embed_dim=1000000000"))
    return max(bombs), max(others)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    bomb, other = hostile_seconds()
    rows = [("synthetic task, images/s on one core", synthetic_images_per_s(), ">=", 2000),
            ("front of 200,000 / of 20,000 points, time ratio", front_growth(), "<", 30),
            ("hypervolume history, 70,000 points, s", history_seconds(), "<", 5),
            ("front + hypervolume history of 10,000 trials, s", study_front_seconds(), "<", 5),
            ("validate refuses a YAML alias bomb, s (slowest)", bomb, "<", 1),
            ("validate refuses another hostile spec, s (slowest)", other, "<", 5)]
    lines = [f"# python benchmarks/timings.py on {platform.processor() or platform.machine()}, Python "
             f"{platform.python_version()}", f"{'what':<52} {'value':>10} {'goal':>9}  met"]
    for what, value, op, goal in rows:
        met = value >= goal if op == ">=" else value < goal
        lines.append(f"{what:<52} {value:>10.3f} {op + ' ' + str(goal):>9}  {'yes' if met else 'NO'}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
