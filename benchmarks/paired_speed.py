"""The paired speed objective against raw images/s: the same architecture measured in several trials.

    python benchmarks/paired_speed.py                                  # quick-start throughput setting
    python benchmarks/paired_speed.py --spec spaces/predictors.yaml --archs 3 --trials 6

A study measures every architecture once, in its own trial, minutes apart, on a machine whose
speed drifts (other processes, frequency scaling, caches). This measures each of a few architectures
of the spec (the base and sampled ones) ``--trials`` times, each time in a fresh process exactly as a
trial does (`measure_arch` in the spec's throughput setting, one thread, no cache), the
architectures interleaved round by round. For each architecture it prints the spread across those
trials, (max - min) / median and the coefficient of variation, of

- ``raw``: the images/s each trial measured (``throughput_img_s``, what the objective used to be);
- ``paired``: the stored objective, the trial's per-repeat ratio to the reference measured alongside
  times one fixed reference images/s (the study's ``throughput_scale``, here the median reference
  images/s over all the trials of this run).

Then the median over architectures of each, and raw / paired.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time


def _measure(arch: dict, throughput: dict, out) -> None:
    import torch

    torch.set_num_threads(1)
    from wfsearch.models import ArchConfig
    from wfsearch.proxy.cache import MeasureCache
    from wfsearch.proxy.measure import measure_arch

    settings = {**throughput, "device": "cpu"}
    c = measure_arch(ArchConfig.from_dict(arch), settings, cache=MeasureCache(), memory=False)
    out.put((c["throughput_img_s"], c["throughput_ratio"], c["reference_throughput"], c["clock"]))


def _trial(arch: dict, throughput: dict) -> tuple[float, float, float, str]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(arch, throughput, q))
    p.start()
    res = q.get()
    p.join()
    return res


def _spread(xs: list[float]) -> tuple[float, float]:
    med = statistics.median(xs)
    return (max(xs) - min(xs)) / med, statistics.stdev(xs) / statistics.fmean(xs)


def main() -> None:
    from wfsearch.space import load_spec, random_samples

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="spaces/predictors.yaml")
    p.add_argument("--archs", type=int, default=3, help="architectures: the base plus sampled ones")
    p.add_argument("--trials", type=int, default=5, help="measurements (trials) of each architecture")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    args = p.parse_args()
    spec = load_spec(args.spec, args.overrides)
    tp = spec.throughput.model_dump(mode="json")
    archs = [spec.fixed_arch()] + [s.arch for s in random_samples(spec, 4 * args.archs, seed=1) if s.arch][:args.archs - 1]
    print(f"# {spec.path}: throughput img {tp['img_size']} x batch {tp['batch_size']}, reference {tp['reference']}, "
          f"warmup {tp['warmup']}, repeats {tp['repeats']} x iters {tp['iters']}; cpu, 1 thread, one fresh process "
          f"per measurement; {args.trials} trials of each of {len(archs)} architectures, interleaved", flush=True)
    runs: dict[str, list[tuple[float, float, float]]] = {a.hash: [] for a in archs}
    t0 = time.perf_counter()
    clock = ""
    for r in range(args.trials):
        for a in archs:
            raw, ratio, ref, clock = _trial(a.to_dict(), tp)
            runs[a.hash].append((raw, ratio, ref))
            print(f"trial {r + 1} {a.hash}: raw {raw:7.1f} img/s, reference {ref:6.1f} img/s, ratio {ratio:.3f}",
                  flush=True)
    scale = statistics.median(ref for v in runs.values() for _, _, ref in v)
    print(f"# clock: {clock}; study scale (median reference img/s over all trials): {scale:.2f}; "
          f"{time.perf_counter() - t0:.0f}s")
    print(f"{'arch':<13} {'raw img/s':>10} {'paired':>8} | {'raw spread':>10} {'paired':>7} | {'raw CV':>7} {'paired':>7}")
    rows = []
    for a in archs:
        raw = [v[0] for v in runs[a.hash]]
        paired = [v[1] * scale for v in runs[a.hash]]
        (rs, rc), (ps, pc) = _spread(raw), _spread(paired)
        rows.append((rs, ps, rc, pc))
        print(f"{a.hash:<13} {statistics.median(raw):>10.1f} {statistics.median(paired):>8.1f} | "
              f"{100 * rs:>9.1f}% {100 * ps:>6.1f}% | {100 * rc:>6.1f}% {100 * pc:>6.1f}%")
    med = [statistics.median(col) for col in zip(*rows)]
    print(f"median over architectures: spread raw {100 * med[0]:.1f}% vs paired {100 * med[1]:.1f}% "
          f"({med[0] / med[1]:.2f}x less), CV raw {100 * med[2]:.1f}% vs paired {100 * med[3]:.1f}% "
          f"({med[2] / med[3]:.2f}x less); paired varies less for {sum(r[1] < r[0] for r in rows)} of {len(rows)} "
          "architectures")


if __name__ == "__main__":
    main()
