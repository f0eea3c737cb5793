"""Time and peak memory of `show`, `report --no-scaling` and a resume on large studies.

A small real study (``wfsearch run spaces/smoke.yaml``, real proxy trainings) is the seed; each
large study copies its trials (states, values, parameters, every attribute) with SQL inserts until it
holds N search trials. Objective values are jittered per copy (seeded), each copy gets its own
architecture hash, and the floats of its metrics, costs and curve are scaled by a factor of its own,
so the front, the ranks and the hypervolume history face N distinct points and the readers N distinct
documents per attribute (the design and the proxy settings stay shared, as in a search that re-samples).

Each command runs in a fresh process (so start-up counts: imports, and Ray for the resume); its wall
time and the peak resident memory of that process (``wait4``) are printed. The same commands on the
seed study itself give the start-up cost, and the table shows time beyond it. A resume is
``wfsearch run`` with ``study.trials`` raised by 2 and no-op trials (``--noop``: the evaluation is
skipped; reading the study, sampling and the progress line are not).

    python benchmarks/study_scale.py [--sizes 1000 10000 50000] [--repeats 3] [--seed-study DIR]
        [--checkout OTHER_TREE [--checkout-max 10000]]  # also time another checkout, side by side
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "spaces" / "smoke.yaml"
NAME = "scale"  # the study's name (a given --seed-study keeps its own: the folder's name)
TIMEOUT_S = 600


# --------------------------------------------------------------------------- building studies
def run_seed(folder: Path, python: str) -> Path:
    """A real 6-trial smoke study at ``folder/studies/scale``."""
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "wfsearch", "run", str(SPEC), "--set", f"study.name={NAME}", "--set", "study.trials=6",
           "--no-progress"]
    subprocess.run(cmd, cwd=folder, check=True, env=_env(REPO), stdout=subprocess.DEVNULL)
    return folder / "studies" / NAME


def _rows(con: sqlite3.Connection, table: str, trial_ids: list[int]) -> list[tuple]:
    q = ",".join("?" * len(trial_ids))
    return con.execute(f"SELECT * FROM {table} WHERE trial_id IN ({q})", trial_ids).fetchall()


PER_TRIAL = ("metrics", "costs", "curve")  # attributes made distinct per copy, as each trial's own


def _scaled(value, factor: float):
    """``value`` with every float in it times ``factor`` (so that no two copies store the same document)."""
    if isinstance(value, float):
        return value * factor
    if isinstance(value, dict):
        return {k: _scaled(v, factor) for k, v in value.items()}
    if isinstance(value, list):
        return [_scaled(v, factor) for v in value]
    return value


def build_study(seed_db: Path, dest: Path, n: int, rng_seed: int = 0) -> None:
    """Copy ``seed_db`` to ``dest`` and add copies of its COMPLETE search trials until it holds ``n``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(seed_db)
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close()
    shutil.copyfile(seed_db, dest)
    con = sqlite3.connect(dest)
    study_id = con.execute("SELECT study_id FROM studies WHERE study_name = ?", (NAME,)).fetchone()[0]
    trials = con.execute("SELECT trial_id, number, state, datetime_start, datetime_complete FROM trials "
                         "WHERE study_id = ? ORDER BY number", (study_id,)).fetchall()
    complete = [t for t in trials if t[2] == "COMPLETE"]
    ids = [t[0] for t in complete]
    cols = {tab: [r[1] for r in con.execute(f"PRAGMA table_info({tab})")] for tab in
            ("trial_values", "trial_params", "trial_user_attributes", "trial_system_attributes",
             "trial_intermediate_values")}
    per = {tab: {} for tab in cols}
    for tab in cols:
        for row in _rows(con, tab, ids):
            per[tab].setdefault(row[cols[tab].index("trial_id")], []).append(row)
    rng = np.random.default_rng(rng_seed)
    next_id = con.execute("SELECT MAX(trial_id) FROM trials").fetchone()[0] + 1
    next_number = len(trials)
    batch: dict[str, list[tuple]] = {tab: [] for tab in cols}
    new_trials = []
    for k in range(n - len(trials)):
        src_id, _, state, start, complete_at = complete[k % len(complete)]
        tid, number = next_id + k, next_number + k
        new_trials.append((tid, number, study_id, state, start, complete_at))
        jitter = rng.uniform(0.7, 1.3, 8)
        for tab in cols:
            c = cols[tab]
            for row in per[tab].get(src_id, []):
                row = list(row)
                row[0] = None  # a fresh primary key
                row[c.index("trial_id")] = tid
                if tab == "trial_values":
                    row[c.index("value")] = row[c.index("value")] * jitter[row[c.index("objective")]]
                if tab == "trial_user_attributes" and row[c.index("key")] == "arch_hash":
                    row[c.index("value_json")] = json.dumps(f"{json.loads(row[c.index('value_json')])}-{k}")
                if tab == "trial_user_attributes" and row[c.index("key")] in PER_TRIAL:
                    row[c.index("value_json")] = json.dumps(_scaled(json.loads(row[c.index("value_json")]), jitter[7]))
                batch[tab].append(tuple(row))
    con.executemany("INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete) "
                    "VALUES (?, ?, ?, ?, ?, ?)", new_trials)
    for tab, rows in batch.items():
        if rows:
            con.executemany(f"INSERT INTO {tab} VALUES ({','.join('?' * len(cols[tab]))})", rows)
    con.commit()
    con.close()


# --------------------------------------------------------------------------- measuring
def _env(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree), "RAY_DEDUP_LOGS": "0"}


def measure(cmd: list[str], cwd: Path, tree: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB of the process, exit status) of one command."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = t0 + TIMEOUT_S
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            p.kill()
            pid, status, usage = os.wait4(p.pid, 0)
            return float("inf"), usage.ru_maxrss / 1024, -9
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        print(f"  {' '.join(cmd[2:5])}: exit {rc}: {p.stderr.read().decode()[-400:]}", file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, rc


def commands(python: str, folder: Path, trials: int, out: Path) -> dict[str, list[str]]:
    study = str(folder / "studies" / NAME)
    return {
        "show": [python, "-m", "wfsearch", "show", study],
        "report --no-scaling": [python, "-m", "wfsearch", "report", study, "--no-scaling", "-o", str(out)],
        "resume (+2 trials)": [python, "-m", "wfsearch", "run", str(SPEC), "--set", f"study.name={NAME}",
                               "--set", f"study.trials={trials + 2}", "--noop", "--no-progress"],
    }


def time_study(python: str, folder: Path, trials: int, tree: Path, repeats: int) -> dict[str, tuple]:
    """Median wall time, its spread (min-max) and the largest peak memory, per command."""
    out = {}
    db = folder / "studies" / NAME / "optuna.db"
    pristine = db.with_name("pristine.db")
    shutil.copyfile(db, pristine)
    for what, cmd in commands(python, folder, trials, folder / "report.html").items():
        walls, mems = [], []
        for _ in range(repeats if what != "resume (+2 trials)" else 1):
            if what.startswith("resume"):
                shutil.copyfile(pristine, db)
            wall, mem, rc = measure(cmd, folder, tree)
            walls.append(wall if rc in (0, -9) else float("nan"))
            mems.append(mem)
            if rc == -9:
                break
        out[what] = (statistics.median(walls), min(walls), max(walls), max(mems))
    shutil.copyfile(pristine, db)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed-study", type=Path, default=None, help="a study folder to copy trials from")
    p.add_argument("--checkout", type=Path, default=None, help="another wfsearch tree to time side by side")
    p.add_argument("--checkout-max", type=int, default=10000, help="time the other tree up to this many trials")
    p.add_argument("--work", type=Path, default=None, help="where to build the studies (default: a temp folder)")
    args = p.parse_args()
    python = sys.executable
    work = args.work or Path(tempfile.mkdtemp(prefix="wf-scale-"))
    global NAME
    seed = args.seed_study.resolve() if args.seed_study else run_seed(work / "seed", python)
    NAME = seed.name
    seed_trials = sqlite3.connect(seed / "optuna.db").execute(
        "SELECT COUNT(*) FROM trials JOIN studies USING (study_id) WHERE study_name = ?", (NAME,)).fetchone()[0]
    trees = [("this tree", REPO)] + ([("other", args.checkout.resolve())] if args.checkout else [])
    results: dict[tuple[str, int], dict] = {}
    for n in [seed_trials] + args.sizes:
        folder = work / f"n{n}"
        if folder.exists():
            shutil.rmtree(folder)
        build_study(seed / "optuna.db", folder / "studies" / NAME / "optuna.db", n)
        for label, tree in trees:
            if label == "other" and n > args.checkout_max:
                continue
            results[(label, n)] = r = time_study(python, folder, n, tree, args.repeats)
            print(f"{label:9} {n:>6} trials: " + "; ".join(f"{k} {v[0]:.2f}s ({v[3]:.0f} MB)" for k, v in r.items()),
                  flush=True)
    print()
    print(f"seed: {seed_trials} trials of spaces/smoke.yaml; {os.cpu_count()} CPUs; "
          f"median of {args.repeats} runs (min-max), the resume once; beyond start-up = minus the same command "
          f"on the {seed_trials}-trial seed study\n")
    what = list(commands(python, work, 0, work).keys())
    for label, _ in trees:
        print(f"**{label}**\n")
        print("| trials | " + " | ".join(f"{w}: s (beyond start-up) | MB" for w in what) + " |")
        print("|---:|" + "---:|---:|" * len(what))
        base = results[(label, seed_trials)]
        for n in [seed_trials] + args.sizes:
            if (label, n) not in results:
                continue
            r = results[(label, n)]
            cells = []
            for w in what:
                med, lo, hi, mem = r[w]
                cells.append(f"{med:.2f} [{lo:.2f}-{hi:.2f}] (+{med - base[w][0]:.2f}) | {mem:.0f}")
            print(f"| {n:,} | " + " | ".join(cells) + " |")
        print()
    if len(trees) > 1:
        print("ratio other / this tree (median wall time):\n")
        print("| trials | " + " | ".join(what) + " |")
        print("|---:|" + "---:|" * len(what))
        for n in [seed_trials] + [n for n in args.sizes if n <= args.checkout_max]:
            cells = [f"{results[('other', n)][w][0] / results[('this tree', n)][w][0]:.2f}x" for w in what]
            print(f"| {n:,} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
