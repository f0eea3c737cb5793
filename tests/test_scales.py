"""Two scales of one design: the search measures the deployed network and `export` writes that network."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from wfsearch.export import load_recipe
from wfsearch.models import ArchConfig, cost

REPO = Path(__file__).resolve().parents[1]
# the proxy trains patch 4 / dim 32 / depth 3 at 16 px (spaces/smoke.yaml); every design is measured as this
DEPLOYED = "throughput.arch={patch_size: 8, embed_dim: 48, depth: 4}"
pytestmark = pytest.mark.slow


def wfsearch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    res = subprocess.run([sys.executable, "-m", "wfsearch", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_exported_front_builds_the_measured_deployed_network(tmp_path: Path) -> None:
    wfsearch(["run", str(REPO / "spaces" / "smoke.yaml"), "--set", "study.trials=3", "--set", "references=[]",
              "--set", DEPLOYED, "--no-progress"], tmp_path)
    shown = json.loads(wfsearch(["show", "studies/smoke", "--json"], tmp_path).stdout)
    trials = {t["number"]: t for t in shown["trials"]}
    assert shown["front"]
    for number in shown["front"]:
        t = trials[number]
        proxy, deployed = t["proxy_arch"], t["deployed_arch"]
        assert (proxy["patch_size"], proxy["embed_dim"], proxy["depth"]) == (4, 32, 3)
        assert (deployed["patch_size"], deployed["embed_dim"], deployed["depth"], deployed["img_size"]) == (8, 48, 4, 32)
        assert {k: v for k, v in deployed.items() if k in t["design"]} == t["design"]  # the same design
        wfsearch(["export", "studies/smoke", "--trial", str(number)], tmp_path)
        recipe = load_recipe(tmp_path / "studies" / "smoke" / "recipes" / f"trial-{number}.yaml")
        model = timm.create_model(recipe.model.name, **recipe.model.kwargs)
        built = model.arch.to_dict()
        assert {**built, "drop_path_rate": deployed["drop_path_rate"]} == deployed  # the network `show` reports
        prov = recipe.provenance
        assert prov["deployed_arch"] == {**deployed, "drop_path_rate": built["drop_path_rate"]}
        assert prov["costs_scale"] == "deployed"
        params = sum(p.numel() for p in model.parameters())
        with torch.device("meta"), torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.to("meta").eval()(torch.empty(1, 3, recipe.data.img_size, recipe.data.img_size))
        assert params == prov["costs"]["params"] == t["deployed_costs"]["params"]
        assert cost(ArchConfig.from_dict(built))["macs"] == prov["costs"]["macs"] == t["deployed_costs"]["macs"]
        assert counter.get_total_flops() // 2 == pytest.approx(prov["costs"]["macs"], rel=0.02)
