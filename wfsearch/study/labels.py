"""The display names of the stored keys, said once (tables, plots, the export line, recipe comments).

``throughput`` is the speed objective (paired: the ratio to the reference x the reference's img/s, derived),
``throughput_img_s`` the images/s measured in the trial, ``throughput_ratio`` the ratio itself.
"""
from __future__ import annotations

from typing import Any

LABELS = {
    "accuracy": "accuracy (proxy top-1)",
    "throughput": "img/s paired (derived: ratio x the reference's img/s)",
    "throughput_img_s": "img/s measured (this trial's own)",
    "throughput_ratio": "ratio to the reference (paired, measured alongside)",
    "params": "params (deployed network)",
    "macs": "MACs per image (deployed network)",
    "memory": "peak memory of a training step (deployed network, bytes)",
    "peak_memory_bytes": "peak memory of a training step (deployed network, bytes)",
    "latency_highres": "latency at high resolution (ms)",
    "latency_highres_ms": "latency at high resolution (ms)",
}
MEASURED_SPEED = "img/s measured"


def paired(costs: dict[str, Any]) -> bool:
    """Is the ``throughput`` stored with these costs the paired objective (else: the images/s measured)?"""
    return bool(costs.get("ratio_samples"))


def label(name: str, is_paired: bool = True) -> str:
    """The display name of a stored number (``throughput`` without a reference: the images/s measured)."""
    if name == "throughput" and not is_paired:
        return MEASURED_SPEED
    return LABELS.get(name, name)


# recipe provenance: (section, key) -> what the number is, written beside it
RECIPE_NOTES = {
    ("objectives", "throughput"): LABELS["throughput"],
    ("metrics", "throughput"): LABELS["throughput"],
    ("metrics", "throughput_img_s"): LABELS["throughput_img_s"],
    ("metrics", "throughput_ratio"): LABELS["throughput_ratio"],
    ("metrics", "memory"): LABELS["memory"],
    ("costs", "throughput_img_s"): LABELS["throughput_img_s"],
    ("costs", "throughput_ratio"): LABELS["throughput_ratio"],
    ("costs", "reference_throughput"): "the reference's img/s measured alongside, in this trial",
    ("costs", "peak_memory_bytes"): LABELS["peak_memory_bytes"],
    ("costs", "activation_bytes"): "analytic bytes of the activations one image keeps for the backward pass "
                                   "(deployed network; an estimate, not the measured peak)",
}
