"""Load checkpoints of the public reference implementation (and the Hugging Face releases): its names
(``init_norm``, ``dwc``, ``linear1``/``linear2``, fc1 base ``w`` as ``C_in x C_out``) to timm's layout.
"""
from __future__ import annotations

import re

import torch

# (official suffix regex, our suffix, transpose)
_BLOCK_RULES: list[tuple[str, str, bool]] = [
    (r"dwc\.(weight|bias)", r"token_mixer.\1", False),
    (r"dwc\.w", "token_mixer.weight", False),
    (r"dwc\.b", "token_mixer.bias", False),
    (r"dwc\.wfm\.0\.(weight|bias)", r"token_mixer.predictor.fc1.\1", False),
    (r"dwc\.wfm\.2\.weight", "token_mixer.predictor.fc2.weight", False),
    (r"linear1\.(weight|bias)", r"mlp.fc1.\1", False),
    (r"linear1\.w", "mlp.fc1.weight", True),
    (r"linear1\.b", "mlp.fc1.bias", False),
    (r"linear1\.wfm\.(weight|bias)", r"mlp.fc1.predictor.down.\1", False),
    (r"linear1\.(w1|w2)", r"mlp.fc1.predictor.\1", False),
    (r"linear2\.(weight|bias)", r"mlp.fc2.\1", False),
    (r"(norm1|norm2)\.(weight|bias)", r"\1.\2", False),
]
_TOP_RULES: list[tuple[str, str]] = [
    (r"init_norm\.(weight|bias)", r"norm_pre.\1"),
    (r"(patch_embed\.proj|norm|head)\.(weight|bias)", r"\1.\2"),
]


def convert_official_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a reference-format state dict (raw, or under ``"model"``/``"state_dict"``, with or without a DDP
    ``module.`` prefix) to this library's names; one already in this format is returned unchanged."""
    for key in ("model", "state_dict"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if "init_norm.weight" not in state_dict:
        return dict(state_dict)
    return dict(_convert_key(k, v) for k, v in state_dict.items())


def _convert_key(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", key)
    if m:
        idx, rest = m.groups()
        for pattern, repl, transpose in _BLOCK_RULES:
            if re.fullmatch(pattern, rest):
                new = re.sub(f"^{pattern}$", repl, rest)
                return f"blocks.{idx}.{new}", value.t().contiguous() if transpose else value
    else:
        for pattern, repl in _TOP_RULES:
            if re.fullmatch(pattern, key):
                return re.sub(f"^{pattern}$", repl, key), value
    raise ValueError(f"{key}: not a parameter of the reference WeightFormer (is this a WeightFormer checkpoint?)")
