"""The design-space spec: loading, composition, overrides, sampling, hashing and sizes."""
from __future__ import annotations

import json

import optuna
import pytest

from wfsearch.errors import UserError
from wfsearch.models import ArchConfig
from wfsearch.space import (Constraint, arch_from_params, load_spec, parse_constraint, parse_yaml, random_samples,
                            sample_arch, spec_from_dict, spec_json_schema)

SPEC = """\
study: {name: demo, trials: 4, sampler: tpe, constraints: ["params <= 2M"]}
proxy: {img_size: 32, epochs: [1, 3], lr: 1e-3}
base: {patch_size: 4, depth: 6}
space:
  embed_dim: [64, 68]
  fc1_predictor: [none, gap, bilateral]
  rank_ratio: {choice: [4, 8], when: {fc1_predictor: [gap, bilateral]}}
  fc1_pool: {choice: [1, 2, global], when: {fc1_predictor: [bilateral]}}
  dynamic_blocks: [all, "every:3:1", [0, 5]]
  drop_path_rate: {float: [0.0, 0.1]}
references:
  - {name: released, arch: {}}
  - {name: static, arch: {fc1_predictor: none, dwconv_predictor: none}}
  - {name: deit, model: deit_tiny_patch16_224}
"""


@pytest.fixture
def spec_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "demo.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture
def spec(spec_file):
    return load_spec(spec_file)


def fixed(**params):
    return optuna.trial.FixedTrial(params)


# --------------------------------------------------------------------------- loading and resolution
def test_load_resolves_defaults(spec, tmp_path):
    assert spec.study.name == "demo" and spec.study.trials == 4
    assert spec.study.storage == f"sqlite:///{tmp_path}/studies/demo/optuna.db"  # absolute, under the cwd
    assert spec.study_dir == tmp_path / "studies" / "demo"
    assert [(o.name, o.direction) for o in spec.study.objectives] == [("accuracy", "maximize"), ("throughput", "maximize")]
    assert spec.study.constraints == [Constraint("params", "<=", 2e6)]
    assert spec.study.scheduler.type == "mo_asha" and spec.study.scheduler.reduction_factor == 3
    assert spec.proxy.lr == 1e-3 and isinstance(spec.proxy.lr, float)  # 1e-3 is a float, as in YAML 1.2
    assert spec.proxy.max_epochs == 3 and spec.proxy.dataset.num_classes == 4
    assert spec.arch_defaults() == {"patch_size": 4, "depth": 6, "img_size": 32, "num_classes": 4}
    assert spec.knobs == ("embed_dim", "fc1_predictor", "rank_ratio", "fc1_pool", "dynamic_blocks", "drop_path_rate")
    assert spec.path.endswith("demo.yaml")


def test_study_name_defaults_to_the_file_stem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my space.yaml").write_text("base: {patch_size: 4}\n")
    assert load_spec(tmp_path / "my space.yaml").study.name == "my_space"


def test_plain_int_epochs_and_objective_names(tmp_path):
    (tmp_path / "s.yaml").write_text("base: {patch_size: 4}\nproxy: {epochs: 4}\n"
                                     "study: {objectives: [accuracy, params, {name: macs, direction: maximize}]}\n")
    spec = load_spec(tmp_path / "s.yaml")
    assert spec.proxy.epochs == [4]
    assert spec.directions == ["maximize", "minimize", "maximize"]


def test_yaml_is_read_strictly():
    assert parse_yaml("a: 2024-01-01\nb: 30e6\nc: 1.5e-3\nd: 12\n", "x") == {"a": "2024-01-01", "b": 30e6, "c": 1.5e-3,
                                                                            "d": 12}
    with pytest.raises(UserError, match=r"x: a \(line 1\): '!!set'"):
        parse_yaml("a: !!set {1, 2}\n", "x")
    with pytest.raises(UserError, match="duplicate key"):
        parse_yaml("a: 1\nb: {c: 1, c: 2}\n", "x")
    assert parse_yaml("a: &x {b: 1}\nc: *x\n", "x") == {"a": {"b": 1}, "c": {"b": 1}}  # anchors are fine


@pytest.mark.parametrize("text, expected", [
    ("params <= 30e6", Constraint("params", "<=", 30e6)),
    ("macs<1.5G", Constraint("macs", "<", 1.5e9)),
    ("throughput >= 500", Constraint("throughput", ">=", 500)),
    ("accuracy > 0.5", Constraint("accuracy", ">", 0.5)),
    ("memory <= 2_000k", Constraint("memory", "<=", 2e6)),
])
def test_constraints_parse(text, expected):
    c = parse_constraint(text)
    assert c == expected
    assert parse_constraint(str(c)) == c
    from wfsearch.study import constraint_values

    assert (constraint_values([c], {c.metric: c.value})[1] is None) == (c.op in ("<=", ">="))
    assert (constraint_values([c], {c.metric: c.value * 2 + 1})[0][0] <= 0) == (c.op in (">=", ">"))


def test_storage_and_dataset_root_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("base: {patch_size: 4}\nstudy: {storage: 'sqlite:///db/x.db'}\n"
                                     "proxy: {dataset: {name: cifar10, classes: [cat, dog]}}\n")
    spec = load_spec("s.yaml")
    assert spec.study.storage == f"sqlite:///{tmp_path}/db/x.db"
    assert spec.proxy.dataset.root == str(tmp_path / "data") and spec.proxy.dataset.num_classes == 2
    url = "postgresql+psycopg2://u@h/db"  # a URL with an installed driver (validate checks the driver imports)
    assert load_spec("s.yaml", [f"study.storage={url}"]).study.storage == url


# --------------------------------------------------------------------------- extends and --set
def test_extends_merges_deeply_and_null_removes(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "parent.yaml").write_text(SPEC)
    (tmp_path / "child.yaml").write_text(
        "extends: parts/parent.yaml\n"
        "study: {name: child, trials: 2}\n"             # merges into the parent's study
        "proxy: {epochs: [2]}\n"                        # lists replace
        "space: {fc1_pool: null, drop_path_rate: null, embed_dim: [64]}\n"
        "references: [{name: only, arch: {}}]\n")
    spec = load_spec(tmp_path / "child.yaml")
    assert spec.study.name == "child" and spec.study.trials == 2 and spec.study.sampler == "tpe"
    assert spec.proxy.epochs == [2] and spec.proxy.img_size == 32
    assert "fc1_pool" not in spec.space and "drop_path_rate" not in spec.space
    assert spec.space["embed_dim"].choice == [64]
    assert spec.space["rank_ratio"].when == {"fc1_predictor": ["gap", "bilateral"]}
    assert [r.name for r in spec.references] == ["only"]


def test_a_child_may_search_what_its_parent_fixes_and_narrow_choices(tmp_path):
    (tmp_path / "parent.yaml").write_text(SPEC)
    (tmp_path / "child.yaml").write_text(
        "extends: parent.yaml\n"
        "base: {embed_dim: 64, fc1_predictor: bilateral}\n"   # fixes what the parent searches
        "space: {depth: [4, 6], fc1_predictor: null}\n")       # searches what the parent fixes
    spec = load_spec(tmp_path / "child.yaml")
    assert "embed_dim" not in spec.space and spec.base["embed_dim"] == 64
    assert "depth" not in spec.base and spec.space["depth"].choice == [4, 6]
    # the parent's conditions still read fc1_predictor, now fixed to bilateral: both knobs stay active
    assert {"rank_ratio", "fc1_pool"} <= set(spec.knobs)
    # narrowing the choices so that an inherited condition can no longer hold: drop that knob too
    (tmp_path / "narrow.yaml").write_text("extends: parent.yaml\nspace: {fc1_predictor: [none, gap]}\n")
    with pytest.raises(UserError, match=r"parent\.yaml: space\.fc1_pool\.when\.fc1_predictor: .*drop space\.fc1_pool"):
        load_spec(tmp_path / "narrow.yaml")
    (tmp_path / "narrow.yaml").write_text("extends: parent.yaml\nspace: {fc1_predictor: [none, gap], fc1_pool: null}\n")
    narrow = load_spec(tmp_path / "narrow.yaml")
    assert narrow.space["fc1_predictor"].choice == ["none", "gap"] and "fc1_pool" not in narrow.space


def test_the_commented_example_in_spaces_readme_loads(tmp_path):
    import re
    import shutil
    from pathlib import Path

    spaces = Path(__file__).resolve().parents[1] / "spaces"
    example = re.search(r"## A commented spec\n\n```yaml\n(.*?)```", (spaces / "README.md").read_text(), re.S).group(1)
    shutil.copy(spaces / "predictors.yaml", tmp_path / "predictors.yaml")
    (tmp_path / "example.yaml").write_text(example)
    spec = load_spec(tmp_path / "example.yaml")
    assert spec.study.name == "my_study" and "embed_dim" in spec.space


def test_extends_a_list_in_order(tmp_path):
    (tmp_path / "a.yaml").write_text("base: {patch_size: 4}\nstudy: {trials: 5, seed: 1}\n")
    (tmp_path / "b.yaml").write_text("study: {trials: 7}\n")
    (tmp_path / "c.yaml").write_text("extends: [a.yaml, b.yaml]\n")
    spec = load_spec(tmp_path / "c.yaml")
    assert (spec.study.trials, spec.study.seed) == (7, 1)


def test_set_overrides(spec_file):
    spec = load_spec(spec_file, ["study.trials=9", "space.rank_ratio.choice=[2, 4, 8]", "proxy.epochs=5",
                                 "space.drop_path_rate=null", "references[0].name=mine",
                                 "proxy.dataset.num_classes=8"])
    assert spec.study.trials == 9
    assert spec.space["rank_ratio"].choice == [2, 4, 8]
    assert spec.proxy.epochs == [5]
    assert "drop_path_rate" not in spec.space
    assert spec.references[0].name == "mine"
    assert spec.arch_defaults()["num_classes"] == 8


# --------------------------------------------------------------------------- sampling
def test_sample_is_define_by_run(spec):
    s = sample_arch(spec, fixed(embed_dim=64, fc1_predictor="bilateral", rank_ratio=8, fc1_pool="global",
                                dynamic_blocks="all", drop_path_rate=0.05))
    assert s.infeasible is None and s.arch is not None
    assert s.arch == ArchConfig(img_size=32, patch_size=4, depth=6, num_classes=4, embed_dim=64,
                                fc1_predictor="bilateral", rank_ratio=8, fc1_pool="global", dynamic_blocks="all",
                                drop_path_rate=0.05)
    assert s.proxy is spec.proxy


def test_conditional_knobs_are_only_sampled_when_they_apply(spec):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        s = sample_arch(spec, trial)
        fc1 = trial.params["fc1_predictor"]
        seen.add(fc1)
        assert ("rank_ratio" in trial.params) == (fc1 in ("gap", "bilateral"))
        assert ("fc1_pool" in trial.params) == (fc1 == "bilateral")
        assert set(s.params) == set(trial.params)
        if "rank_ratio" not in trial.params and s.arch is not None:
            assert s.arch.rank_ratio == 4  # unsampled knobs keep their ArchConfig default
        study.tell(trial, 0.0)
    assert seen == {"none", "gap", "bilateral"}


def test_explicit_placements_go_through_optuna_as_text(spec):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    lists = []
    for _ in range(30):
        trial = study.ask()
        s = sample_arch(spec, trial)
        if isinstance(s.params["dynamic_blocks"], list):
            assert trial.params["dynamic_blocks"] == "[0, 5]"
            lists.append(s)
        study.tell(trial, 0.0)
    assert lists and all(s.arch is None or s.arch.dynamic_blocks == [0, 5] for s in lists)
    again = arch_from_params(spec, lists[0].params)  # decoded params rebuild it too
    assert again.params == lists[0].params and again.arch == lists[0].arch


def test_infeasible_sample_is_not_an_exception(spec):
    s = sample_arch(spec, fixed(embed_dim=68, fc1_predictor="bilateral", rank_ratio=8, fc1_pool=2,
                                dynamic_blocks="all", drop_path_rate=0.0))
    assert s.arch is None and not s.feasible
    assert s.infeasible.startswith("rank_ratio=8: embed_dim=68 must be divisible by rank_ratio")
    assert s.params["embed_dim"] == 68


def test_equal_params_give_equal_hashes(spec):
    a = random_samples(spec, 12, seed=3)
    b = random_samples(spec, 12, seed=3)
    assert [s.params for s in a] == [s.params for s in b]
    assert [s.arch.hash if s.arch else s.infeasible for s in a] == [s.arch.hash if s.arch else s.infeasible for s in b]
    for s in a:
        if s.arch is not None:
            optuna_params = {k: json.dumps(v) if isinstance(v, list) else v for k, v in s.params.items()}
            assert arch_from_params(spec, optuna_params).arch.hash == s.arch.hash
    assert [s.params for s in random_samples(spec, 12, seed=4)] != [s.params for s in a]


def test_knob_settings_without_effect_do_not_change_the_hash(spec):
    common = dict(embed_dim=64, dynamic_blocks="all", drop_path_rate=0.0)
    a = sample_arch(spec, fixed(fc1_predictor="none", **common)).arch
    b = spec.fixed_arch(embed_dim=64, dynamic_blocks="all", fc1_predictor="none", rank_ratio=16, fc1_pool=4)
    assert a.hash == b.hash


# --------------------------------------------------------------------------- identity and serialization
def test_hash_is_stable_and_ignores_trials_storage_and_resources(spec_file, spec):
    assert load_spec(spec_file).hash == spec.hash
    same = load_spec(spec_file, ["study.trials=100", "study.storage=sqlite:///other.db",
                                 "resources.cpus_per_trial=2", "resources.max_concurrent=3"])
    assert same.hash == spec.hash
    assert load_spec(spec_file, ["proxy.lr=2e-3"]).hash != spec.hash
    assert load_spec(spec_file, ["space.rank_ratio.choice=[4]"]).hash != spec.hash


def test_to_dict_round_trips(spec):
    d = spec.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["study"]["constraints"] == ["params <= 2e+06"]
    assert d["space"]["rank_ratio"] == {"choice": [4, 8], "when": {"fc1_predictor": ["gap", "bilateral"]}}
    assert d["space"]["drop_path_rate"] == {"float": [0.0, 0.1]}
    again = spec_from_dict(d)
    assert again.to_dict() == d and again.hash == spec.hash and again.knobs == spec.knobs
    with pytest.raises(UserError, match=r"<study>: study\.trials: 0:"):
        spec_from_dict({**d, "study": {**d["study"], "trials": 0}}, source="<study>")


def test_references(spec):
    refs = spec.reference_archs()
    assert [r.name for r in refs] == ["released", "static", "deit"]
    assert refs[0].arch == ArchConfig(img_size=32, patch_size=4, depth=6, num_classes=4)
    assert refs[1].arch.dynamic_indices == ()
    assert refs[2].arch is None and refs[2].model == "deit_tiny_patch16_224"


# --------------------------------------------------------------------------- size of the space
def test_size_counts_only_active_knobs(spec):
    # embed 2 x placement 3 x fc1 (none + gap*2 ranks + bilateral*2 ranks*3 pools = 1 + 2 + 6 = 9)
    assert spec.size.combinations == 2 * 3 * 9
    assert spec.size.continuous
    # 68 is not divisible by 8: the 68-wide architectures with rank 8 (gap 1 + bilateral 3) x 3 placements fail
    assert spec.size.buildable == 2 * 3 * 9 - 4 * 3


def test_grid(spec_file):
    spec = load_spec(spec_file, ["space.drop_path_rate=null"])
    grid = spec.grid()
    assert grid["dynamic_blocks"] == ["all", "every:3:1", "[0, 5]"]
    assert grid["embed_dim"] == [64, 68]
    with pytest.raises(UserError, match=r"space\.drop_path_rate"):
        load_spec(spec_file).grid()


def test_int_and_float_ranges(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "base: {patch_size: 4}\n"
        "space:\n"
        "  embed_dim: {int: [32, 96], step: 32}\n"
        "  depth: {int: [2, 64], log: true}\n"
        "  mlp_ratio: {float: [2, 4], step: 0.5}\n"
        "  drop_rate: {float: [0.001, 0.1], log: true}\n")
    spec = load_spec(tmp_path / "s.yaml")
    assert spec.space["embed_dim"].values() == [32, 64, 96] and spec.space["embed_dim"].step == 32
    assert spec.space["mlp_ratio"].values() == [2.0, 2.5, 3.0, 3.5, 4.0]
    assert spec.size.combinations == 3 * 63 * 5 and spec.size.continuous
    for s in random_samples(spec, 20, seed=0):
        assert s.params["embed_dim"] in (32, 64, 96) and 2 <= s.params["depth"] <= 64
        assert 0.001 <= s.params["drop_rate"] <= 0.1


def test_large_spaces_are_probed_not_enumerated(tmp_path):
    (tmp_path / "s.yaml").write_text("base: {patch_size: 4}\nspace:\n  embed_dim: {int: [16, 512], step: 8}\n"
                                     "  rank_ratio: [2, 4, 8, 16]\n  depth: {int: [1, 24]}\n"
                                     "  dynamic_blocks: [all, 'every:2:1', 'every:3:1', 'first:1']\n")
    spec = load_spec(tmp_path / "s.yaml")
    assert spec.size.combinations == 63 * 4 * 24 * 4 and spec.size.buildable is None


# --------------------------------------------------------------------------- JSON Schema
def test_json_schema_describes_the_spec():
    schema = spec_json_schema()
    assert set(schema["properties"]) == {"extends", "study", "resources", "proxy", "throughput", "base", "space",
                                         "references"}
    assert schema["additionalProperties"] is False
    assert "fc1_predictor" in schema["properties"]["base"]["properties"]
    assert "int" in schema["$defs"]["Knob"]["properties"] and "float" in schema["$defs"]["Knob"]["properties"]
    json.dumps(schema)
