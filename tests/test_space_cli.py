"""Every shipped space loads, validates and samples; `wfsearch validate/sample/schema` print what they say."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wfsearch.cli import main
from wfsearch.models import ArchConfig, cost
from wfsearch.space import load_spec, random_samples

SPACES = sorted((Path(__file__).resolve().parents[1] / "spaces").glob("*.yaml"))


def test_the_shipped_spaces_are_there():
    assert {p.stem for p in SPACES} >= {"predictors", "placement", "compression", "smoke", "imagenet100", "explore"}


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_shipped_space_loads_validates_and_samples(path, capsys):
    spec = load_spec(path)
    assert spec.study.name == path.stem
    assert spec.knobs and spec.size.combinations and spec.size.combinations > 1
    assert spec.hash == load_spec(path).hash
    samples = random_samples(spec, 8, seed=0)
    assert sum(s.arch is not None for s in samples) >= 4
    for s in samples:
        if s.arch is not None:
            assert ArchConfig.from_dict(s.arch.to_dict()).hash == s.arch.hash
            assert cost(s.arch, spec.throughput.img_size)["macs"] > 0
    for ref in spec.reference_archs():
        assert (ref.arch is None) != (ref.model is None)
    assert main(["validate", str(path), "--samples", "16"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: ok (spec hash {spec.hash})")


def test_shipped_spaces_match_their_purpose():
    by_name = {p.stem: load_spec(p) for p in SPACES}
    quick = by_name["predictors"]
    assert quick.proxy.dataset.name == "synthetic" and 16 <= quick.study.trials <= 24
    assert {"fc1_predictor", "dwconv_predictor", "fc1_pool", "dwconv_pool", "dynamic_blocks", "rank_ratio"} <= set(quick.knobs)
    assert {r.name for r in quick.references} == {"released", "all_static", "static_renorm", "deit_tiny"}
    released = next(r for r in quick.reference_archs() if r.name == "released").arch
    assert (released.fc1_predictor, released.dwconv_predictor, released.dynamic_blocks) == ("bilateral", "adaptive", "every:3:1")
    static = next(r for r in quick.reference_archs() if r.name == "all_static").arch
    assert static.dynamic_indices == () == static.norm_indices
    renormed = next(r for r in quick.reference_archs() if r.name == "static_renorm").arch
    assert renormed.dynamic_indices == () and renormed.norm_indices == released.norm_indices
    assert set(by_name["placement"].knobs) == {"dynamic_blocks"}
    assert set(by_name["compression"].knobs) == {"fc1_pool", "dwconv_pool", "rank_ratio"}
    smoke = by_name["smoke"]
    assert smoke.proxy.max_epochs == 1 and smoke.study.trials <= 4 and smoke.proxy.dataset.train_size <= 512
    explore = by_name["explore"]  # an unbiased sample for `wfsearch analyze`: random, every trial trained fully
    assert (explore.study.sampler, explore.study.scheduler.type) == ("random", "none") and explore.study.trials >= 100
    assert set(quick.knobs) == set(explore.knobs) and "every:3:1" in explore.space["dynamic_blocks"].choice
    big = by_name["imagenet100"]
    assert big.proxy.dataset.name == "imagefolder" and big.resources.gpus_per_trial > 0


def test_shipped_spaces_follow_the_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from wfsearch.space import parse_yaml, spec_json_schema

    schema = spec_json_schema()
    for path in SPACES:
        jsonschema.validate(parse_yaml(path.read_text(), str(path)), schema)


def test_validate_prints_a_summary(capsys):
    path = next(p for p in SPACES if p.stem == "predictors")
    assert main(["validate", str(path), "--set", "study.trials=8", "--samples", "32"]) == 0
    out = capsys.readouterr().out
    assert "8 trials" in out
    assert "knobs (6):" in out and "rank_ratio" in out and "when fc1_predictor in" in out
    assert "1,248 combinations (1,248 buildable)" in out
    assert "example" in out and "over 32 sampled architectures" in out
    assert "params " in out and "MACs " in out
    assert "references   released (arch " in out


def test_validate_reports_continuous_spaces(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("base: {patch_size: 4}\nspace: {drop_path_rate: {float: [0, 0.2]}}\n")
    assert main(["validate", str(tmp_path / "s.yaml"), "--samples", "4"]) == 0
    assert "1 combinations (1 buildable), with continuous ranges" in capsys.readouterr().out


def test_sample_prints_yaml(capsys):
    path = next(p for p in SPACES if p.stem == "predictors")
    assert main(["sample", str(path), "-n", "4", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    docs = yaml.safe_load(out)
    assert len(docs) == 4
    spec = load_spec(path)
    for entry in docs:
        arch = ArchConfig.from_dict(entry["arch"])
        assert arch.hash == entry["arch_hash"]
        assert entry["proxy"]["params"] == cost(arch)["params"]
        assert entry["deployed"]["params"] == cost(spec.throughput.deployed(arch))["params"]
        assert entry["deployed"]["macs"] == cost(spec.throughput.deployed(arch))["macs"]
        assert set(entry["knobs"]) <= set(spec.knobs)
    assert main(["sample", str(path), "-n", "4", "--seed", "1"]) == 0
    assert capsys.readouterr().out == out  # seeded


def test_sample_shows_infeasible_samples(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("base: {patch_size: 4}\nspace: {embed_dim: [64, 68], rank_ratio: [4, 8]}\n")
    assert main(["sample", str(tmp_path / "s.yaml"), "-n", "12"]) == 0
    docs = yaml.safe_load(capsys.readouterr().out)
    bad = [d for d in docs if "infeasible" in d]
    assert bad and all("divisible by rank_ratio" in d["infeasible"] and "arch" not in d for d in bad)


def test_schema_prints_json(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "wfsearch design-space spec"
    assert "extends" in schema["properties"]


def test_bad_flags(capsys):
    path = str(SPACES[0])
    assert main(["sample", path, "-n", "0"]) == 2
    assert main(["validate", path, "--samples", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("wfsearch: error: ") for line in err)
