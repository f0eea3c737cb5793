"""Two cost measurements at once (two processes, one thread each) must agree on the throughput ratio.

    python benchmarks/measure_concurrency.py                          # quick-start throughput settings
    python benchmarks/measure_concurrency.py --spec spaces/predictors.yaml --archs 4 --rounds 2

For each of a few architectures of the spec (the base and sampled ones), in the spec's throughput
setting (interleaved with its reference model), side by side in one run:

- ``solo``: one process measures alone (the figure two concurrent ones should both reproduce);
- ``pair``: two processes start `wfsearch.proxy.measure.measure_arch` at the same moment (a
  barrier), as two trials of a search do, with the device lock (``throughput.exclusive``, the
  default): the script prints both ratios and their relative disagreement;
- ``pair, unlocked``: the same with ``exclusive: false``, for comparison;
- ``beside training``: one process measures while another trains a proxy on the same CPU (as in
  a search), with the lock (the trainer pauses at its next step) and without it.

Then the median and worst disagreement of each kind (<= 5% required for the locked pair).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time


def _measure(arch: dict, throughput: dict, exclusive: bool, barrier, out, slot: int) -> None:
    import torch

    torch.set_num_threads(1)
    from wfsearch.models import ArchConfig
    from wfsearch.proxy.cache import MeasureCache
    from wfsearch.proxy.measure import measure_arch

    settings = {**throughput, "device": "cpu", "exclusive": exclusive}
    cfg = ArchConfig.from_dict(arch)
    if barrier is not None:
        barrier.wait()
    t0 = time.perf_counter()
    c = measure_arch(cfg, settings, cache=MeasureCache(), memory=False)
    out[slot] = (c["throughput_ratio"], c["throughput_img_s"], time.perf_counter() - t0)


def _train(proxy: dict, arch: dict, barrier, stop, out, slot: int) -> None:
    """A neighbouring trial: trains the proxy until told to stop; reports its steps."""
    import torch

    torch.set_num_threads(1)
    from wfsearch.models import ArchConfig
    from wfsearch.proxy.data import load_dataset
    from wfsearch.space import ProxySpec
    from wfsearch.proxy.measure import build_target
    from wfsearch.proxy.train import train_proxy

    ps = ProxySpec.model_validate({**proxy, "epochs": [1000], "num_threads": 1})
    data = load_dataset(ps)
    model = build_target(ArchConfig.from_dict(arch), ps.img_size, num_classes=data.num_classes)[0]
    barrier.wait()
    epochs = [0]

    def on_epoch(epoch, metrics):
        epochs[0] = epoch
        return stop.is_set()

    train_proxy(model, data, ps, on_epoch)
    out[slot] = (epochs[0], 0.0, 0.0)


def _run(jobs: list[tuple]) -> list[tuple[float, float, float]]:
    """Start ``(target, args)`` jobs behind one barrier; the trainers stop when the measurers end."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    stop = ctx.Event()
    out = ctx.Manager().dict()
    procs = []
    for i, (target, args) in enumerate(jobs):
        extra = (barrier, stop, out, i) if target is _train else (barrier, out, i)
        procs.append(ctx.Process(target=target, args=(*args, *extra)))
    for p in procs:
        p.start()
    for p, (target, _) in zip(procs, jobs):
        if target is _measure:
            p.join()
            assert p.exitcode == 0, p.exitcode
    stop.set()
    for p in procs:
        p.join()
    return [out[i] for i, (target, _) in enumerate(jobs) if target is _measure]


def _gap(a: float, b: float) -> float:
    return abs(a - b) / ((a + b) / 2)


def main() -> None:
    from wfsearch.space import load_spec, random_samples

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="spaces/predictors.yaml")
    p.add_argument("--archs", type=int, default=3, help="architectures: the base plus sampled ones")
    p.add_argument("--rounds", type=int, default=1, help="repetitions of the whole comparison")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    args = p.parse_args()
    spec = load_spec(args.spec, args.overrides)
    tp = spec.throughput.model_dump(mode="json")
    proxy = spec.proxy.model_dump(mode="json")
    archs = [spec.fixed_arch()] + [s.arch for s in random_samples(spec, 4 * args.archs, seed=1) if s.arch][:args.archs - 1]
    print(f"# {spec.path}: throughput img {tp['img_size']} x batch {tp['batch_size']}, reference {tp['reference']}, "
          f"warmup {tp['warmup']}, repeats {tp['repeats']} x iters {tp['iters']}, cpu, 1 thread per process")
    print(f"{'arch':<13} {'solo':>6} | {'pair A':>6} {'pair B':>6} {'gap':>6} {'wall s':>6} | "
          f"{'unlocked A':>10} {'B':>6} {'gap':>6} | {'train+lock':>10} {'gap':>6} | {'train, no lock':>14} {'gap':>6}")
    gaps: dict[str, list[float]] = {"pair": [], "unlocked": [], "train+lock": [], "train": []}
    for _ in range(args.rounds):
        for arch in archs:
            a = arch.to_dict()
            (solo, _, _), = _run([(_measure, (a, tp, True))])
            (ra, _, wa), (rb, _, wb) = _run([(_measure, (a, tp, True)), (_measure, (a, tp, True))])
            (ua, _, _), (ub, _, _) = _run([(_measure, (a, tp, False)), (_measure, (a, tp, False))])
            (tl, _, _), = _run([(_measure, (a, tp, True)), (_train, (proxy, a))])
            (tn, _, _), = _run([(_measure, (a, tp, False)), (_train, (proxy, a))])
            gaps["pair"].append(_gap(ra, rb))
            gaps["unlocked"].append(_gap(ua, ub))
            gaps["train+lock"].append(_gap(tl, solo))
            gaps["train"].append(_gap(tn, solo))
            print(f"{arch.hash:<13} {solo:>6.3f} | {ra:>6.3f} {rb:>6.3f} {100 * gaps['pair'][-1]:>5.1f}% "
                  f"{max(wa, wb):>6.1f} | {ua:>10.3f} {ub:>6.3f} {100 * gaps['unlocked'][-1]:>5.1f}% | "
                  f"{tl:>10.3f} {100 * gaps['train+lock'][-1]:>5.1f}% | {tn:>14.3f} {100 * gaps['train'][-1]:>5.1f}%",
                  flush=True)
    labels = {"pair": "two concurrent measurements, device lock (default)",
              "unlocked": "two concurrent measurements, exclusive: false",
              "train+lock": "measurement beside a training trial vs solo, lock",
              "train": "measurement beside a training trial vs solo, no lock"}
    for k, label in labels.items():
        v = gaps[k]
        print(f"{label:<56} ratio gap: median {100 * statistics.median(v):4.1f}%, worst {100 * max(v):4.1f}%"
              + ("  (<= 5% required)" if k == "pair" else ""))


if __name__ == "__main__":
    main()
