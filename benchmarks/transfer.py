"""Does the synthetic task's ranking of designs carry over to real images? (scikit-learn's digits, offline)

    python benchmarks/transfer.py            # 12 random designs of spaces/predictors.yaml, synthetic vs digits

Ranks the same ``--archs`` architectures (the first ones `benchmarks/proxy_quality.py` draws, so its
finished runs are reused) by their seed-averaged accuracy on the synthetic task at ``--long-factor`` x
the quick start's budget, and on the `digits` dataset (1,797 8x8 handwritten digits, upsampled) at
``--digits-epochs`` epochs; prints both rankings and their Kendall tau and Spearman correlation with
bootstrap intervals over architectures, and writes ``benchmarks/transfer.md``. Digits needs no reach
(a static network reads a digit well), so agreement is not expected: the table says what carries over.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "spaces" / "predictors.yaml"))
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--long-factor", type=int, default=4)
    ap.add_argument("--digits-epochs", type=int, default=12)
    ap.add_argument("--digits-img-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", default=str(ROOT / "benchmarks" / "proxy_quality" / "runs.jsonl"),
                    help="finished runs to reuse and extend (proxy_quality.py's)")
    ap.add_argument("--digits-only", action="store_true", help="train the digits runs only (and stop)")
    args = ap.parse_args(argv)

    from wfsearch.proxy.fidelity import sample_rows, train_rows
    from wfsearch.proxy.quality import _bootstrap, _corr
    from wfsearch.space import load_spec

    synth = load_spec(args.spec, [])
    digits = load_spec(args.spec, ["proxy.dataset={name: digits}", f"proxy.img_size={args.digits_img_size}",
                                   f"proxy.epochs=[{args.digits_epochs}]", "proxy.warmup_epochs=1"])
    rows = [r for r in sample_rows(synth, args.archs, 0, include_references=True)]
    seeds = tuple(synth.proxy.seed + i for i in range(args.seeds))
    drows = [type(r)(r.label, r.target) for r in rows]
    rd = train_rows(digits, drows, seeds, workers=args.workers, results=args.runs)
    if args.digits_only:
        return 0
    rs = train_rows(synth, rows, seeds, workers=args.workers, long_factor=args.long_factor, results=args.runs,
                    long_seeds=1)
    s_long = np.array([np.nanmean([c.get(rs.long_epochs, np.nan) for c in r.long_curves.values()] or [np.nan])
                       for r in rows])
    d_acc = np.array([r.mean(rd.full_epochs) for r in drows])
    n = len(rows)
    tau = _bootstrap(lambda i: _corr(s_long[i], d_acc[i], "kendall"), n, 0)
    rho = _bootstrap(lambda i: _corr(s_long[i], d_acc[i], "spearman"), n, 0)
    cmd = f"python benchmarks/transfer.py {' '.join(sys.argv[1:] if argv is None else argv)}".strip()
    lines = ["# Synthetic task vs real images (digits)", "", f"`{cmd}`", "",
             f"{n} architectures (the references and the first random ones of `proxy_quality.py`), {len(seeds)} "
             f"seeds each on digits. Synthetic: the quick start's proxy trained {rs.long_epochs} epochs "
             f"({args.long_factor}x; 1 seed, as `proxy_quality.py --long-seeds 1` trains it). "
             f"Digits: {args.digits_img_size} px, {args.digits_epochs} epochs, 1,347 train / 450 val images, "
             "10 classes.", "",
             f"Kendall tau {tau.value:.2f} [{tau.low:.2f}, {tau.high:.2f}], Spearman {rho.value:.2f} "
             f"[{rho.low:.2f}, {rho.high:.2f}] ({tau.level:.0%} bootstrap over architectures).", "",
             "| architecture | synthetic | rank | digits | rank |", "|---|---|---|---|---|"]
    rank_s = (-s_long).argsort().argsort() + 1
    rank_d = (-d_acc).argsort().argsort() + 1
    for i in np.argsort(-s_long):
        lines.append(f"| {rows[i].label} | {s_long[i]:.3f} | {rank_s[i]} | {d_acc[i]:.3f} | {rank_d[i]} |")
    out = ROOT / "benchmarks" / "transfer.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
