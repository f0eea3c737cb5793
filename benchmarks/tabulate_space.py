"""Tabulate a design space: every architecture of a spec, trained with its proxy under several seeds.

    python benchmarks/tabulate_space.py benchmarks/tables/predictors-table.yaml [--seeds 2] [--workers 2]
        [--out benchmarks/tables/predictors] [--set proxy.epochs=[1,3] ...]

Enumerates the spec's grid, keeps one point per distinct architecture (`arch.hash`), and runs
`wfsearch.proxy.evaluate.evaluate_arch` for every architecture and seed (``proxy.seed`` = seed),
``--workers`` processes of one thread each, seed 0 of every architecture first (a partial table
already covers the space). Writes, appending and resuming (runs already in the table are skipped):

- ``OUT/runs.csv``   one row per architecture, seed and epoch: val accuracy and loss after the
                     epoch, the seconds the epoch took (training + validation), the run's status
- ``OUT/archs.csv``  one row per architecture: its knob values (JSON), the measured costs at the
                     spec's throughput setting (params, MACs, peak memory, throughput img/s median
                     and its per-repeat values, the paired ratio to the reference and its per-repeat
                     values, measurement seconds); measured once, by the seed-0 run
- ``OUT/table.json`` the spec (resolved), the proxy and throughput settings, the command, the machine

`wfsearch.search.table.load_table` reads it back.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

RUN_FIELDS = ["arch_hash", "seed", "epoch", "accuracy", "loss", "epoch_seconds", "epoch_wall_seconds", "status"]
ARCH_FIELDS = ["arch_hash", "params_json", "params", "macs", "memory", "throughput", "throughput_samples",
               "throughput_ratio", "throughput_ratio_samples", "reference_throughput", "measure_seconds",
               "device", "clock"]


_recorded: dict = {}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    import wfsearch.proxy.measure as measure

    original = measure.measure_throughput

    def recording(*args, **kwargs):  # keep the per-repeat values measure_arch reduces to a median
        out = original(*args, **kwargs)
        _recorded["samples"] = {k: list(v.samples) for k, v in out.items()}
        return out

    measure.measure_throughput = recording


def _run(spec_path: str, overrides: list[str], params: dict, seed: int, cache_dir: str) -> dict:
    from wfsearch.proxy.evaluate import evaluate_arch
    from wfsearch.space import load_spec
    from wfsearch.space.sampling import arch_from_params

    spec = load_spec(spec_path, overrides)
    arch = arch_from_params(spec, params).arch
    proxy = spec.proxy.model_copy(update={"seed": seed})
    times: list[tuple[float, float]] = []  # (CPU seconds, wall seconds) of each epoch
    last: list = [None]  # (CPU, wall) clocks at the end of the previous epoch; set when training starts

    def report(epoch, metrics):
        if last[0] is not None:
            now = (time.process_time(), time.perf_counter())
            times.append((now[0] - last[0][0], now[1] - last[0][1]))
            last[0] = now
        return None

    import wfsearch.proxy.evaluate as ev

    original_train = ev.train_proxy

    measure_cpu = [None]
    cpu0 = time.process_time()

    def timed_train(*a, **k):  # the first epoch's clocks start when training starts (after measuring)
        last[0] = (time.process_time(), time.perf_counter())
        measure_cpu[0] = last[0][0] - cpu0
        return original_train(*a, **k)

    _recorded.clear()
    t0 = time.perf_counter()
    measured = seed == 0
    ev.train_proxy = timed_train
    try:
        r = evaluate_arch(arch, proxy, spec.throughput if measured else None, report, cache_dir=cache_dir)
    finally:
        ev.train_proxy = original_train
    return {"measure_cpu": measure_cpu[0] if measure_cpu[0] is not None else time.process_time() - cpu0,
            "arch_hash": arch.hash, "seed": seed, "params": params, "status": r.status, "reason": r.reason,
            "curve": r.curve, "times": times, "costs": r.costs, "seconds": r.seconds,
            "samples": _recorded.get("samples"), "wall": time.perf_counter() - t0}


def _git_commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _existing(path: Path, key) -> set:
    if not path.exists():
        return set()
    with open(path, newline="") as f:
        return {key(row) for row in csv.DictReader(f)}


def _append(path: Path, fields: list[str], rows: list[dict]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerows(rows)
        f.flush()
        os.fsync(f.fileno())


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="table folder (default: next to the spec, named after study.name)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--limit", type=int, default=None, help="only the first N architectures (a quick check)")
    args = ap.parse_args(argv)

    from wfsearch.search.table import enumerate_space
    from wfsearch.space import load_spec

    spec = load_spec(args.spec, args.overrides)
    out = Path(args.out or Path(args.spec).parent / spec.study.name.removesuffix("-table"))
    out.mkdir(parents=True, exist_ok=True)
    archs = enumerate_space(spec)[:args.limit]
    print(f"{len(archs)} distinct architectures x {args.seeds} seeds -> {out}", flush=True)
    meta = {"spec": os.path.relpath(args.spec, out), "overrides": args.overrides, "seeds": args.seeds,
            "architectures": len(archs), "complete": False, "spec_resolved": spec.model_dump(mode="json", exclude={"space"}),
            "space": {k: v.model_dump(mode="json", exclude_none=True) for k, v in spec.space.items()},
            "command": " ".join(["python", "benchmarks/tabulate_space.py", *(argv if argv is not None else sys.argv[1:])]),
            "commit": _git_commit(), "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "workers": args.workers,
                        "threads_per_worker": 1}}
    (out / "table.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")

    done = _existing(out / "runs.csv", lambda r: (r["arch_hash"], int(r["seed"])))
    measured = _existing(out / "archs.csv", lambda r: r["arch_hash"])
    todo = [(h, p, s) for s in range(args.seeds) for h, p in archs if (h, s) not in done]
    print(f"{len(todo)} runs to do ({len(done)} in the table)", flush=True)
    cache = str(out / ".cache")
    t_start = time.perf_counter()
    finished = 0
    with ProcessPoolExecutor(args.workers, initializer=_init_worker) as pool:
        pending = set()
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < args.workers:
                h, p, s = queue.pop(0)
                pending.add(pool.submit(_run, args.spec, args.overrides, p, s, cache))
            ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in ready:
                r = fut.result()
                rows = [{"arch_hash": r["arch_hash"], "seed": r["seed"], "epoch": c["epoch"],
                         "accuracy": _fmt(c["accuracy"]), "loss": _fmt(c["loss"]),
                         "epoch_seconds": _fmt(t[0]), "epoch_wall_seconds": _fmt(t[1]), "status": r["status"]}
                        for c, t in zip(r["curve"], r["times"])]
                if not rows:  # infeasible / error before the first epoch: one row saying so
                    rows = [{"arch_hash": r["arch_hash"], "seed": r["seed"], "epoch": 0, "accuracy": "",
                             "loss": "", "epoch_seconds": "", "epoch_wall_seconds": "", "status": r["status"]}]
                if r["costs"] and r["arch_hash"] not in measured:
                    c, smp = r["costs"], r["samples"] or {}
                    ratios = ([a / b for a, b in zip(smp["model"], smp["reference"])]
                              if "model" in smp and "reference" in smp else [])
                    _append(out / "archs.csv", ARCH_FIELDS, [{
                        "arch_hash": r["arch_hash"], "params_json": json.dumps(r["params"], sort_keys=True),
                        "params": c.get("params"), "macs": c.get("macs"), "memory": c.get("peak_memory_bytes"),
                        "throughput": _fmt(c.get("throughput_img_s", c.get("throughput"))),
                        "throughput_samples": " ".join(f"{v:.5g}" for v in smp.get("model", [])),
                        "throughput_ratio": _fmt(c.get("throughput_ratio")),
                        "throughput_ratio_samples": " ".join(f"{v:.5g}" for v in ratios),
                        "reference_throughput": _fmt(c.get("reference_throughput")),
                        "measure_seconds": _fmt(r["measure_cpu"]),
                        "device": c.get("device"), "clock": c.get("clock")}])
                    measured.add(r["arch_hash"])
                _append(out / "runs.csv", RUN_FIELDS, rows)
                finished += 1
                el = time.perf_counter() - t_start
                print(f"[{finished}/{len(todo)}] {r['arch_hash']} seed {r['seed']} {r['status']} "
                      f"acc {r['curve'][-1]['accuracy'] if r['curve'] else float('nan'):.4f} "
                      f"run {r['wall']:.1f}s, elapsed {el:.0f}s, eta {el / finished * (len(todo) - finished):.0f}s",
                      flush=True)
    print(f"done: {finished} runs in {time.perf_counter() - t_start:.0f}s wall", flush=True)
    done = _existing(out / "runs.csv", lambda r: (r["arch_hash"], int(r["seed"])))
    meta["complete"] = all((h, s) in done for h, _ in archs for s in range(args.seeds))
    meta["wall_seconds_last_run"] = round(time.perf_counter() - t_start)
    (out / "table.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
