"""Where one quick-start trial's time goes: a profile of `evaluate_arch` on the quick start's spec.

    python benchmarks/trial_profile.py [--spec spaces/predictors.yaml] [--arch released] [--out benchmarks/trial_profile.md]

Runs one trial of the spec's ``--arch`` (a reference's name, default the released design) as a Ray
worker runs it (`wfsearch.proxy.evaluate.evaluate_arch`: the deployed network's costs and throughput
against the reference, then the proxy training with one report per epoch), on one thread, under
cProfile, and attributes its time to phases by the functions on the stack: the measurement
(params/MACs, peak memory, the timed throughput loops), the data (generating or loading the task),
and in training the forward pass, the backward pass, the optimizer step (with gradient clipping and
the schedule), the validation, and the rest of the loop, and the time its steps waited while another process on the machine measured
throughput (`wfsearch.proxy.devicelock`; a trial alone: none). Each phase's CPU seconds and share are
printed (CPU seconds: a shared machine does not inflate them) and written to ``--out`` with the command
and the machine. cProfile adds a per-call cost to
Python calls (not to the kernels they launch), so the shares of Python-heavy phases are upper bounds.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# phase -> (callee file suffix, callee name, caller file suffix, caller name): the callee's time when called there
TRAIN = ("proxy/train.py", "_train")
PHASES = {
    "measurement: params, MACs, peak memory, throughput vs the reference": [
        ("proxy/measure.py", "measure_arch", "proxy/evaluate.py", "evaluate_arch")],
    "data: the task's images": [("proxy/data.py", "load_dataset", "proxy/evaluate.py", "evaluate_arch")],
    "model: build": [("proxy/measure.py", "build_target", "proxy/evaluate.py", "evaluate_arch")],
    "training: forward (and the loss)": [("torch/nn/modules/module.py", "_wrapped_call_impl", *TRAIN)],
    "training: backward": [("torch/_tensor.py", "backward", *TRAIN)],
    "training: optimizer step, clipping, schedule": [("torch/optim/optimizer.py", "wrapper", *TRAIN),
                                                     ("torch/nn/utils/clip_grad.py", "_no_grad_wrapper", *TRAIN),
                                                     ("timm/scheduler/scheduler.py", "step_update", *TRAIN)],
    "training: batches and augmentation": [("proxy/data.py", "__iter__", *TRAIN), ("proxy/data.py", "__next__", *TRAIN)],
    "training: validation": [("torch/utils/_contextlib.py", "decorate_context", *TRAIN)],
    "training: waiting for the device lock (another process measuring)": [("contextlib.py", "__enter__", *TRAIN)],
}


def _matches(key: tuple, suffix: str, name: str) -> bool:
    return key[2] == name and key[0].replace("\\", "/").endswith(suffix)


def seconds_of(stats: pstats.Stats, suffix: str, name: str, caller: tuple[str, str] | None = None) -> float:
    """Cumulative seconds of a function (its outermost calls), only those from ``caller`` when given."""
    total = 0.0
    for key, (_, _, _, ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if not _matches(key, suffix, name):
            continue
        if caller is None:
            total += ct
        else:
            total += sum(v[3] for k, v in callers.items() if _matches(k, *caller))
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "spaces/predictors.yaml"))
    ap.add_argument("--arch", default="released", help="a reference's name in the spec (default: released)")
    ap.add_argument("--out", default=None, help="write the table here (Markdown)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from wfsearch.proxy.evaluate import evaluate_arch
    from wfsearch.space import load_spec

    spec = load_spec(args.spec)
    ref = next((r for r in spec.reference_archs() if r.name == args.arch), None)
    if ref is None or ref.arch is None:
        raise SystemExit(f"--arch: {args.arch!r}: not an architecture reference of {args.spec}")
    import tempfile

    cache = tempfile.mkdtemp(prefix="wfsearch-profile-")  # a new architecture: measured, not read from a cache
    prof = cProfile.Profile(time.process_time)  # CPU time: a busy machine does not inflate a phase
    wall0, cpu0 = time.perf_counter(), time.process_time()
    prof.enable()
    out = evaluate_arch(ref.arch, spec.proxy, spec.throughput, lambda e, m: None, cache_dir=cache)
    prof.disable()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stats = pstats.Stats(prof)
    rows = [(phase, sum(seconds_of(stats, f, n, (cf, cn)) for f, n, cf, cn in funcs)) for phase, funcs in PHASES.items()]
    train_total = seconds_of(stats, *TRAIN)
    rows.append(("training: the rest of the loop (loss bookkeeping, finiteness checks, locks)",
                 max(0.0, train_total - sum(sec for p, sec in rows if p.startswith("training")))))
    profiled = seconds_of(stats, "proxy/evaluate.py", "evaluate_arch")
    rows.append(("everything else in the trial", max(0.0, profiled - sum(sec for _, sec in rows))))
    lines = [f"# One quick-start trial, profiled", "",
             f"`python benchmarks/trial_profile.py {' '.join(argv if argv is not None else sys.argv[1:])}`".replace(" `", "`"),
             "", f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, one thread. "
             f"Trial: `{args.arch}` of `{os.path.relpath(args.spec, ROOT)}` ({out.status.value}, accuracy "
             f"{out.metrics.get('accuracy', float('nan')):.3f}); {wall:.1f} s wall, {cpu:.1f} s CPU, profiled "
             f"{profiled:.1f} s of CPU time under cProfile.", "",
             "| phase | seconds | share |", "|---|---|---|"]
    for phase, sec in rows:
        lines.append(f"| {phase} | {sec:.2f} | {sec / profiled:.0%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
