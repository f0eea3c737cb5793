"""`wfsearch export`: recipes from a study, the --pick language, the timm args file, the Dockerfile."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import optuna
import pytest
import timm
import yaml
from optuna.trial import TrialState, create_trial

import wfsearch
from wfsearch.cli import build_parser, main
from wfsearch.errors import UserError
from wfsearch.export import Recipe, load_recipe, parse_pick, recipe_to_yaml, select, timm_model_for, timm_train_args
from wfsearch.models import cost
from wfsearch.study import open_study, read_study, references_study_name
from wfsearch.models import MODEL_SIZES, ArchConfig

REPO = Path(__file__).resolve().parents[1]
TEST_SIZE = {**MODEL_SIZES["weightformer_test"], "img_size": 16}  # the proxy trains at 16 px

# (arch overrides of the test size, accuracy, throughput): 0, 1, 2 on the front; 3 dominated by 0
SEARCH_TRIALS = [
    (dict(), 0.50, 1000.0),
    (dict(fc1_predictor="deep", rank_ratio=8, dynamic_blocks="all"), 0.60, 800.0),
    (dict(fc1_predictor="none", dwconv_predictor="none"), 0.40, 1500.0),
    (dict(embed_dim=64, dwconv_predictor="ampdir"), 0.45, 700.0),
]


def make_smoke_study(folder: Path, reference: tuple[float, float] = (0.30, 900.0)) -> optuna.Study:
    """A study laid out as `wfsearch run` writes it (docs/CONTRACTS.md), built with Optuna directly."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}",
                                directions=["maximize", "maximize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy", "throughput"])
    study.set_user_attr("objectives", [{"name": "accuracy", "direction": "maximize"},
                                       {"name": "throughput", "direction": "maximize"}])
    study.set_user_attr("spec", {"study": {"name": folder.name}, "throughput": {"img_size": 32, "batch_size": 16}})
    study.set_user_attr("spec_hash", "0123abcd")
    study.set_user_attr("spec_path", "spaces/smoke.yaml")
    study.set_user_attr("wfsearch_version", wfsearch.__version__)
    study.set_user_attr("hardware", {"device": "cpu", "cpu_count": 2})
    for overrides, acc, tput in SEARCH_TRIALS:
        cfg = ArchConfig(**{**TEST_SIZE, **overrides})
        cfg_params = 10_000 * cfg.embed_dim
        study.add_trial(create_trial(values=[acc, tput], user_attrs={
            "kind": "search", "arch": cfg.to_dict(), "arch_hash": cfg.hash, "status_reason": "ok",
            "metrics": {"accuracy": acc, "throughput": tput, "throughput_ratio": tput / 1000.0, "params": cfg_params},
            "costs": {"params": cfg_params, "macs": 1e6, "throughput": tput, "throughput_ratio": tput / 1000.0},
            "proxy": {"epochs": 2, "dataset": "synthetic"},
            "curve": [{"epoch": 1, "accuracy": acc / 2, "loss": 1.0}, {"epoch": 2, "accuracy": acc, "loss": 0.8}]}))
    study.add_trial(create_trial(values=list(reference), user_attrs={  # trial 4
        "kind": "reference", "reference_name": "deit_tiny", "timm_model": "deit_tiny_patch16_224",
        "metrics": {"accuracy": reference[0], "throughput": reference[1]}}))
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={  # trial 5
        "kind": "search", "arch": ArchConfig(**TEST_SIZE).to_dict(), "status_reason": "pruned at epoch 1"}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={  # trial 6
        "kind": "search", "arch": ArchConfig(**TEST_SIZE).to_dict(), "status_reason": "diverged"}))
    big = ArchConfig(**{**TEST_SIZE, "embed_dim": 512})
    study.add_trial(create_trial(values=[0.0, 2000.0], user_attrs={  # trial 7: never trained, yet not dominated
        "kind": "search", "arch": big.to_dict(), "arch_hash": big.hash, "constraints": [1.0],
        "status_reason": "infeasible: params <= 1e6 violated (4.2e6)", "metrics": {"params": 4.2e6}}))
    # `wfsearch run` keeps its reference models in a study of their own in the same storage
    refs = optuna.create_study(study_name=references_study_name(folder.name), storage=f"sqlite:///{folder / 'optuna.db'}",
                               directions=["maximize", "maximize"])
    refs.add_trial(create_trial(values=[0.55, 1100.0], user_attrs={
        "kind": "reference", "reference_name": "deit_tiny", "timm_model": "deit_tiny_patch16_224",
        "metrics": {"accuracy": 0.55, "throughput": 1100.0}}))
    return study


@pytest.fixture(scope="module")
def pristine_study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pristine") / "smoke"
    make_smoke_study(folder)
    return folder


@pytest.fixture
def study_dir(pristine_study: Path, tmp_path: Path) -> Path:
    """A fresh copy of the smoke study in ``tmp_path/studies/smoke`` (creating one costs ~1 s)."""
    folder = tmp_path / "studies" / "smoke"
    folder.mkdir(parents=True)
    (folder / "optuna.db").write_bytes((pristine_study / "optuna.db").read_bytes())
    return folder


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


# ---- the front and --pick ----

def test_front_is_optunas_best_trials_of_trained_search_trials(study_dir: Path) -> None:
    opened = open_study(study_dir)  # the folder's study, not "smoke:references"
    assert opened.name == "smoke"
    front = read_study(study_dir).front
    assert [t.number for t in front] == [0, 1, 2]
    # Optuna's front also holds the infeasible trial 7 (recorded with made-up scores); without it, they agree
    assert {t.number for t in opened.study.best_trials} == {0, 1, 2, 7}


def test_front_when_a_reference_dominates_holds_the_best_search_trials(tmp_path: Path) -> None:
    study = make_smoke_study(tmp_path / "s", reference=(0.9, 5000.0))
    assert [t.number for t in study.best_trials] == [4]  # Optuna's front is the reference alone
    assert [t.number for t in read_study(tmp_path / "s").front] == [0, 1, 2]


@pytest.mark.parametrize("rule, trial", [
    ("max accuracy", 1),
    ("max throughput", 2),
    ("max accuracy where throughput_ratio >= 0.9", 0),
    ("MAX accuracy WHERE throughput >= 900 and params <= 1e6", 0),
    ("min params where accuracy >= 0.45", 0),
    ("min accuracy", 2),
    ("max accuracy where throughput > 800, throughput != 1500", 0),
    ("max throughput_ratio where accuracy == 0.6", 1),
])
def test_pick_selects_from_the_front(study_dir: Path, rule: str, trial: int) -> None:
    snap = read_study(study_dir)
    chosen = select(snap.front, parse_pick(rule), snap.metrics)
    assert chosen.number == trial


@pytest.mark.parametrize("rule, message", [
    ("", "empty rule"),
    ("maximize accuracy", "must start with 'max' or 'min'"),
    ("max", "expected a metric name"),
    ("max accuracy when x > 1", "expected 'where'"),
    ("max accuracy where", "expected a metric name in the condition"),
    ("max accuracy where params", "expected a comparison"),
    ("max accuracy where params >= lots", "expected a number"),
    ("max accuracy where params >= 1 or macs < 2", "expected 'and' between conditions"),
    ("max accuracy where params >= 1 and", "expected another condition"),
    ("max accuracy; drop table", "unexpected character ';'"),
])
def test_pick_syntax_errors_are_one_line(rule: str, message: str) -> None:
    with pytest.raises(UserError) as e:
        parse_pick(rule)
    text = str(e.value)
    assert message in text and "\n" not in text and text.startswith("--pick: ")
    assert "e.g. 'max accuracy where throughput_ratio >= 1.2'" in text


def test_pick_semantic_errors(study_dir: Path, capsys) -> None:
    rc, out, err = run_cli(["export", study_dir, "--pick", "max acc"], capsys)
    assert rc == 2 and "unknown metric 'acc'" in err and "'accuracy'" in err and len(err.splitlines()) == 1
    rc, out, err = run_cli(["export", study_dir, "--pick", "max accuracy where throughput_ratio >= 3"], capsys)
    assert rc == 2 and "no trial of the front (3 trials)" in err and "ranges 0.8 to 1.5" in err


# ---- the recipe ----

def test_export_writes_a_recipe_that_rebuilds_the_architecture(study_dir: Path, capsys) -> None:
    rc, out, err = run_cli(["export", study_dir, "--pick", "max accuracy", "--img-size", "64"], capsys)
    assert rc == 0, err
    path = study_dir / "recipes" / "trial-1.yaml"
    assert f"wrote {path}" in out
    recipe = load_recipe(path)
    stored = ArchConfig.from_dict(open_study(study_dir).study.trials[1].user_attrs["arch"])
    expected = stored.replace(img_size=64, num_classes=1000, drop_path_rate=0.0)
    assert recipe.model.name == "weightformer_test"
    assert set(recipe.model.kwargs) == {"img_size", "num_classes", "drop_path_rate", "fc1_predictor", "rank_ratio",
                                        "dynamic_blocks"}
    model = timm.create_model(recipe.model.name, **recipe.model.kwargs)
    assert model.arch == expected and model.arch.hash == expected.hash
    # provenance
    p = recipe.provenance
    assert (p["study"], p["trial"], p["spec_hash"], p["arch_hash"]) == ("smoke", 1, "0123abcd", stored.hash)
    assert p["objectives"] == {"accuracy": 0.6, "throughput": 800.0}
    # costs are the built network's (64 px is not the deployed 32 px, so no measurement is carried over)
    assert p["costs"] == {k: cost(expected)[k] for k in ("params", "macs")} and p["costs_scale"].startswith("recipe")
    assert p["wfsearch_version"] == wfsearch.__version__ and p["storage"].endswith("smoke/optuna.db")
    # data placeholders
    assert (recipe.data.train, recipe.data.val, recipe.data.img_size) == ("/data/imagenet/train", "/data/imagenet/val", 64)


def test_exported_recipe_is_the_released_recipe(study_dir: Path, capsys) -> None:
    assert run_cli(["export", study_dir, "--trial", "0"], capsys)[0] == 0
    r = load_recipe(study_dir / "recipes" / "trial-0.yaml")
    s, o, a, t = r.schedule, r.optimizer, r.augment, r.train
    assert (s.name, s.epochs, s.warmup_epochs, s.per_step, s.warmup_prefix) == ("cosine", 300, 20, True, False)
    assert (s.warmup_lr_base, s.min_lr_base) == (5e-7, 5e-6)
    assert (o.name, o.lr_base, o.lr_base_batch, o.betas, o.weight_decay, o.decay_1d, o.clip_grad) == \
        ("adamw", 5e-4, 512, [0.9, 0.999], 0.05, False, 5.0)
    assert o.scaled(o.lr_base, 2048) == pytest.approx(2e-3) and o.scaled(s.min_lr_base, 1024) == pytest.approx(1e-5)
    assert (a.auto_augment, a.mixup, a.cutmix, a.re_prob, a.enabled) == ("rand-m9-mstd0.5-inc1", 0.8, 1.0, 0.25, True)
    assert (t.label_smoothing, t.precision, t.seed, t.batch_size) == (0.1, "bf16", 0, 256)
    assert r.model.kwargs["drop_path_rate"] == 0.0  # Tiny width
    # trained at the resolution the search measured throughput at, not the proxy's 16 px
    assert r.data.img_size == 32 and r.model.kwargs["img_size"] == 32


def test_drop_path_follows_width() -> None:
    from wfsearch.export import drop_path_for

    assert [drop_path_for(d) for d in (32, 192, 256, 384, 768)] == [0.0, 0.0, 0.2, 0.2, 0.2]
    name, kwargs = timm_model_for(ArchConfig(embed_dim=384, depth=17, drop_path_rate=0.2))
    assert name == "weightformer_small" and kwargs == {"img_size": 224, "num_classes": 1000, "drop_path_rate": 0.2}
    name, kwargs = timm_model_for(ArchConfig(embed_dim=384, depth=17, img_size=448, drop_path_rate=0.2))
    assert name == "weightformer_base"
    name, kwargs = timm_model_for(ArchConfig(embed_dim=256, depth=12))
    assert name == "weightformer_tiny" and kwargs["embed_dim"] == 256 and kwargs["depth"] == 12


def test_launch_commands_parse(study_dir: Path, capsys) -> None:
    assert run_cli(["export", study_dir, "--trial", "2", "--batch-size", "128"], capsys)[0] == 0
    r = load_recipe(study_dir / "recipes" / "trial-2.yaml")
    assert set(r.launch) == {"single_gpu", "one_node_8_gpus", "multi_node"}
    parser = build_parser()
    for key, cmd in r.launch.items():
        argv = shlex.split(cmd, comments=True)
        if argv[0] == "torchrun":
            assert "--nproc_per_node=8" in argv and argv[argv.index("-m") + 1] == "wfsearch"
            argv = argv[argv.index("-m") + 2:]
        else:
            argv = argv[1:]
        args = parser.parse_args(argv)
        assert args.command == "train" and args.recipe == str(study_dir / "recipes" / "trial-2.yaml")
    assert "global batch 1024, lr 0.001" in r.launch["one_node_8_gpus"]
    assert "--nnodes=4" in r.launch["multi_node"] and "--rdzv_backend=c10d" in r.launch["multi_node"]


def test_recipe_yaml_round_trip_and_errors(tmp_path: Path) -> None:
    r = Recipe()
    path = tmp_path / "r.yaml"
    path.write_text(recipe_to_yaml(r, path))
    assert load_recipe(path) == r
    base = yaml.safe_load(path.read_text())
    cases = [
        (("optimizer", "lr_base"), "fast", "optimizer.lr_base: 'fast': Input should be a valid number"),
        (("optimizer", "betas"), [0.9, 1.5], "optimizer.betas[1]: 1.5: Input should be less than 1"),
        (("schedule", "epochs"), 10.5, "schedule.epochs: 10.5: Input should be a valid integer"),
        (("train", "ema"), "yes", "train.ema: 'yes': Input should be a valid boolean"),
        (("schedule", "warmup_epochs"), 300, "schedule.warmup_epochs: 300: must be smaller than schedule.epochs=300"),
        (("train", "precision"), "fp8", "train.precision: 'fp8': must be one of ['bf16', 'fp32']"),
        (("train", "batchsize"), 8, "train.batchsize: 'batchsize': unknown key; did you mean 'batch_size'?"),
        (("augment", "auto_augment"), "rand-x9", "augment.auto_augment: 'rand-x9'"),
        (("model", "kwargs"), {"fc1_predictor": "magic"}, "model.kwargs.fc1_predictor: 'magic': must be one of"),
        (("model", "name"), "weightformer_huge", "model.name: 'weightformer_huge': not a registered timm model"),
        (("data", "mean"), [0.5, 0.5], "data.mean: [0.5, 0.5]: must list 3 numbers"),
    ]
    for (section, key), value, message in cases:
        d = yaml.safe_load(path.read_text())
        d[section][key] = value
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump(d))
        with pytest.raises(UserError) as e:
            load_recipe(bad)
        assert str(e.value).startswith(f"{bad}: ") and message in str(e.value), str(e.value)
        assert "\n" not in str(e.value)
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="broken.yaml: line"):
        load_recipe(tmp_path / "broken.yaml")
    assert base["version"] == 1
    # hand edits: YAML 1.1 reads 1e-3 as a string, the strict loader as the number it is; a key twice is an error
    text = path.read_text()
    (tmp_path / "edited.yaml").write_text(text.replace("lr_base: 0.0005", "lr_base: 1e-3"))
    edited = load_recipe(tmp_path / "edited.yaml").optimizer.lr_base
    assert edited == 1e-3 and isinstance(edited, float)
    (tmp_path / "empty.yaml").write_text("version: 1\naugment:\n")  # an empty section keeps its defaults
    assert load_recipe(tmp_path / "empty.yaml").augment == Recipe().augment
    (tmp_path / "twice.yaml").write_text(text.replace("lr_base: 0.0005", "lr_base: 0.0005\n  lr_base: 0.001"))
    with pytest.raises(UserError, match=r"twice.yaml: optimizer.lr_base \(line \d+\): 'lr_base': duplicate key"):
        load_recipe(tmp_path / "twice.yaml")


@pytest.mark.parametrize("args, message", [
    (["--trial", "4"], "is the reference model 'deit_tiny'"),
    (["--trial", "5"], "is PRUNED (pruned at epoch 1)"),
    (["--trial", "6"], "is FAIL (diverged)"),
    (["--trial", "7"], "was never trained (infeasible: params <= 1e6 violated"),
    (["--trial", "42"], "no such trial"),
    ([], "choose a trial with --trial N or --pick RULE"),
    (["--trial", "0", "--img-size", "30"], "--img-size: 30"),
])
def test_export_errors_exit_2_with_one_line(study_dir: Path, capsys, args: list[str], message: str) -> None:
    rc, out, err = run_cli(["export", study_dir, *args], capsys)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1 and err.startswith("wfsearch: error: ")


def test_export_refuses_to_overwrite_and_finds_studies(study_dir: Path, tmp_path: Path, capsys) -> None:
    assert run_cli(["export", study_dir, "--trial", "0"], capsys)[0] == 0
    rc, _, err = run_cli(["export", study_dir, "--trial", "0"], capsys)
    assert rc == 2 and "pass --force" in err
    assert run_cli(["export", study_dir, "--trial", "0", "--force"], capsys)[0] == 0
    rc, _, err = run_cli(["export", tmp_path / "studies" / "missing", "--trial", "0"], capsys)
    assert rc == 2 and "no such study folder" in err
    # any SQLAlchemy URL plus --study, recipes land in --output
    url = f"sqlite:///{study_dir / 'optuna.db'}"
    out_path = tmp_path / "elsewhere" / "r.yaml"
    rc, out, err = run_cli(["export", "--storage", url, "--study", "smoke", "--trial", "3", "--output", out_path], capsys)
    assert rc == 0, err
    assert load_recipe(out_path).model.kwargs["embed_dim"] == 64
    rc, _, err = run_cli(["export", "--storage", url, "--study", "nope", "--trial", "3"], capsys)
    assert rc == 2 and "no such study in" in err and "['smoke', 'smoke:references']" in err
    rc, _, err = run_cli(["export", "--storage", url, "--trial", "3", "--output", out_path, "--force"], capsys)
    assert rc == 0, err  # the references study does not count as a second study


# ---- --format timm ----

def test_timm_args_file(study_dir: Path, capsys) -> None:
    rc, out, err = run_cli(["export", study_dir, "--trial", "1", "--format", "timm"], capsys)
    assert rc == 0, err
    path = study_dir / "recipes" / "trial-1.timm.yaml"
    text = path.read_text()
    assert "`wfsearch` must be imported" in text and "python -m wfsearch.export.run_timm" in text
    args = yaml.safe_load(text)
    recipe = load_recipe(study_dir / "recipes" / "trial-1.yaml")
    assert args == timm_train_args(recipe)
    assert (args["model"], args["num_classes"], args["drop_path"]) == ("weightformer_test", 1000, 0.0)
    assert (args["data_dir"], args["train_split"], args["val_split"]) == ("/data/imagenet", "train", "val")
    assert (args["lr_base"], args["lr_base_size"], args["sched_on_updates"], args["amp_dtype"]) == \
        (5e-4, 512, True, "bfloat16")
    assert args["warmup_lr"] == pytest.approx(5e-7 * 2048 / 512) and args["min_lr"] == pytest.approx(5e-6 * 4)
    # timm's train.py calls create_model(model, num_classes=, drop_rate=, drop_path_rate=, **model_kwargs)
    assert not {"num_classes", "drop_path_rate", "drop_rate"} & set(args["model_kwargs"])
    model = timm.create_model(args["model"], num_classes=args["num_classes"], drop_rate=0.0,
                              drop_path_rate=args["drop_path"], **args["model_kwargs"])
    assert model.arch == timm.create_model(recipe.model.name, **recipe.model.kwargs).arch


def test_run_timm_imports_wfsearch_before_the_script(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("import sys, timm\nprint(timm.is_model('weightformer_tiny'), sys.argv[1:], __name__)\n")
    done = subprocess.run([sys.executable, "-m", "wfsearch.export.run_timm", str(script), "--config", "a.yaml"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True ['--config', 'a.yaml'] __main__"


# ---- Docker ----

def _dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def test_dockerfile_copies_existing_paths_and_installs_the_package() -> None:
    text = _dockerfile()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert re.match(r"ARG BASE_IMAGE=pytorch/pytorch:[\d.]+-cuda12\.\d+-cudnn9-runtime$", lines[0])
    assert any(ln.startswith("FROM ${BASE_IMAGE}") for ln in lines)
    assert lines[-2:] == ['ENTRYPOINT ["wfsearch"]', 'CMD ["--help"]']
    for ln in lines:
        if ln.startswith("COPY"):
            *sources, _dest = shlex.split(ln)[1:]
            for src in sources:
                assert (REPO / src).exists(), f"Dockerfile copies {src!r}, which is not in the repository"
    install = [ln for ln in lines if "pip install" in ln]
    assert len(install) == 1
    extras = re.search(r'"\.\[([\w,]+)\]"', install[0]).group(1).split(",")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras and all(e in declared for e in extras), (extras, sorted(declared))
    assert "test" not in extras


def test_dockerignore_keeps_studies_and_venv_out() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in (".venv", "studies", ".git"):
        assert path in ignored or f"{path}/" in ignored


def test_docker_build_context_builds_the_package(tmp_path: Path) -> None:
    """What the Dockerfile copies is enough to build wfsearch: pip builds the wheel from those files alone."""
    pytest.importorskip("setuptools", minversion="68")  # the build backend pyproject asks for, without downloads
    context = tmp_path / "context"
    for ln in _dockerfile().splitlines():
        if ln.startswith("COPY"):
            *sources, _dest = shlex.split(ln)[1:]
            for src in sources:
                dst = context / src
                if (REPO / src).is_dir():
                    import shutil

                    shutil.copytree(REPO / src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes((REPO / src).read_bytes())
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(tmp_path / "wheels"), str(context)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    import zipfile

    (wheel,) = (tmp_path / "wheels").glob("wfsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("wfsearch/export/train.py", "wfsearch/cli/train.py", "wfsearch/cli/export.py",
                   "wfsearch/models/weightformer.py"):
        assert module in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "wfsearch = wfsearch.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
