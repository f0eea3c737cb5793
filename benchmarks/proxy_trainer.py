"""Proxy trainer vs a bare PyTorch loop: training images/s on the same model and data, interleaved.

    python benchmarks/proxy_trainer.py                  # the quick-start proxy model, 1 thread
    python benchmarks/proxy_trainer.py --threads 2 --rounds 7

Each round runs one epoch of `wfsearch.proxy.train.train_proxy` (AdamW from timm, cosine schedule
with warm-up, label smoothing, gradient clipping, augmentation, finiteness checks, validation
excluded from its images/s) and one epoch of a bare loop (AdamW, cross-entropy, no schedule,
clipping or augmentation) on a copy of the same model, alternating which goes first; it prints
every round's images/s and the median ratio trainer / bare.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn as nn


def bare_epoch(model: nn.Module, opt: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               mean: torch.Tensor, std: torch.Tensor, batch_size: int) -> float:
    """One epoch of the simplest correct loop; returns images/s."""
    model.train()
    n = len(labels) - len(labels) % batch_size
    perm = torch.randperm(len(labels))
    t0 = time.perf_counter()
    for i in range(0, n, batch_size):
        idx = perm[i:i + batch_size]
        x = (images[idx].float() / 255 - mean) / std
        loss = nn.functional.cross_entropy(model(x), labels[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return n / (time.perf_counter() - t0)


def main() -> None:
    from wfsearch.models import ArchConfig, build
    from wfsearch.proxy.data import load_dataset
    from wfsearch.proxy.train import seed_everything, train_proxy
    from wfsearch.space import DatasetSpec, ProxySpec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-size", type=int, default=2048)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=6)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset(ProxySpec(img_size=32, dataset=DatasetSpec(train_size=args.train_size, val_size=64)))
    arch = ArchConfig(img_size=32, patch_size=4, embed_dim=args.dim, depth=args.depth, num_classes=data.num_classes)
    seed_everything(0)
    ours = build(arch)
    bare = copy.deepcopy(ours)
    bare_opt = torch.optim.AdamW(bare.parameters(), lr=2e-3, weight_decay=0.05)
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)
    settings = ProxySpec(epochs=2, batch_size=args.batch, warmup_epochs=0.5, device="cpu")
    run_ours = lambda: train_proxy(ours, data, settings, report=lambda e, m: True).images_per_s  # noqa: E731
    run_bare = lambda: bare_epoch(bare, bare_opt, data.train.images, data.train.labels, mean, std,  # noqa: E731
                                  args.batch)
    run_ours(), run_bare()  # warm-up
    print(f"# {arch.hash} (dim {args.dim}, depth {args.depth}, img 32, patch 4), {args.train_size} images/epoch, "
          f"batch {args.batch}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'round':>5} {'trainer img/s':>14} {'bare img/s':>11} {'ratio':>7}")
    ratios = []
    for r in range(args.rounds):
        if r % 2:
            b = run_bare()
            o = run_ours()
        else:
            o = run_ours()
            b = run_bare()
        ratios.append(o / b)
        print(f"{r:>5} {o:>14.1f} {b:>11.1f} {o / b:>7.3f}", flush=True)
    print(f"median ratio trainer / bare loop: {statistics.median(ratios):.3f}  (>= 0.9 required)")


if __name__ == "__main__":
    main()
