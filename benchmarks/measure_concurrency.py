"""Two cost measurements at once (two processes, one thread each) must agree on the throughput ratio.

    python benchmarks/measure_concurrency.py                          # quick-start throughput settings
    python benchmarks/measure_concurrency.py --spec spaces/predictors.yaml --archs 3

For each of a few architectures of the spec (the base and sampled ones), two processes start
`wfsearch.proxy.measure.measure_arch` at the same moment (a barrier), each measuring the
architecture interleaved with the spec's reference model in the spec's throughput setting; the
script prints both ratios to the reference, both images/s, and the relative disagreement of the
ratios, then the median and worst disagreement (<= 5% required). A solo measurement (one process)
is printed beside them for comparison.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics


def _measure(arch: dict, throughput: dict, barrier, out, slot: int) -> None:
    import torch

    torch.set_num_threads(1)
    from wfsearch.models import ArchConfig
    from wfsearch.proxy.cache import MeasureCache
    from wfsearch.proxy.measure import MeasureSettings, measure_arch

    settings = MeasureSettings.from_spec(throughput, device="cpu", memory=False)
    cfg = ArchConfig.from_dict(arch)
    if barrier is not None:
        barrier.wait()
    c = measure_arch(cfg, settings, cache=MeasureCache())
    out[slot] = (c["throughput_ratio"], c["throughput"], c["reference_throughput"])


def _run(arch: dict, throughput: dict, n: int) -> list[tuple[float, float, float]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n) if n > 1 else None
    out = ctx.Manager().dict()
    procs = [ctx.Process(target=_measure, args=(arch, throughput, barrier, out, i)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0, p.exitcode
    return [out[i] for i in range(n)]


def main() -> None:
    from wfsearch.space import load_spec, random_samples

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="spaces/predictors.yaml")
    p.add_argument("--archs", type=int, default=3, help="architectures: the base plus sampled ones")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    args = p.parse_args()
    spec = load_spec(args.spec, args.overrides)
    tp = spec.throughput.model_dump(mode="json")
    archs = [spec.fixed_arch()] + [s.arch for s in random_samples(spec, 4 * args.archs, seed=1) if s.arch][:args.archs - 1]
    print(f"# {spec.path}: throughput img {tp['img_size']} x batch {tp['batch_size']}, reference {tp['reference']}, "
          f"warmup {tp['warmup']}, repeats {tp['repeats']} x iters {tp['iters']}, cpu, 1 thread per process")
    print(f"{'arch':<13} {'solo ratio':>10} {'ratio A':>8} {'ratio B':>8} {'disagree':>9} {'img/s A':>8} {'img/s B':>8}")
    gaps = []
    for arch in archs:
        (solo, _, _), = _run(arch.to_dict(), tp, 1)
        (ra, ta, _), (rb, tb, _) = _run(arch.to_dict(), tp, 2)
        gap = abs(ra - rb) / ((ra + rb) / 2)
        gaps.append(gap)
        print(f"{arch.hash:<13} {solo:>10.3f} {ra:>8.3f} {rb:>8.3f} {100 * gap:>8.1f}% {ta:>8.1f} {tb:>8.1f}", flush=True)
    print(f"ratio disagreement between concurrent measurements: median {100 * statistics.median(gaps):.1f}%, "
          f"worst {100 * max(gaps):.1f}%  (<= 5% required)")


if __name__ == "__main__":
    main()
