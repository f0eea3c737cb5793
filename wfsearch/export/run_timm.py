"""Run timm's ``train.py`` (or any timm script) with ``wfsearch`` imported, so ``weightformer_*`` exist.

    python -m wfsearch.export.run_timm /path/to/pytorch-image-models/train.py --config trial-7.timm.yaml
    torchrun --nproc_per_node=8 -m wfsearch.export.run_timm /path/to/train.py --config trial-7.timm.yaml
"""
from __future__ import annotations

import runpy
import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        raise SystemExit(0 if argv else 2)
    import wfsearch.models  # noqa: F401  (registers weightformer_* in timm's registry)

    script, *rest = argv
    sys.argv = [script, *rest]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
