"""Hostile input, generated: every numeric field of a spec and of a recipe given 0, negatives, NaN, inf, 1e308
and 10**30; YAML of any nesting depth and any bytes; every stored trial and study attribute replaced by a value
of another JSON type or removed. Each case ends within a bound with at most 3 lines on stderr, no traceback and
exit status 2 (0 where the input is valid); an absurd number is refused naming its key.

A few seconds of examples per property by default (the same examples every run); ``WFSEARCH_FUZZ_EXAMPLES=N``
runs N random examples per property.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import time
import typing
from pathlib import Path

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from wfsearch.arch import ArchConfig
from wfsearch.cli import main
from wfsearch.errors import UserError
from wfsearch.export import Recipe
from wfsearch.space import SpaceSpec

from test_export import pristine_study  # noqa: F401 (fixture: the smoke study as `wfsearch run` lays it out)
from test_storage_faults import _remount, mount_point  # noqa: F401 (fixture: a tmpfs, when this process may mount)

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "spaces" / "smoke.yaml"
EXAMPLES = int(os.environ.get("WFSEARCH_FUZZ_EXAMPLES", "0"))


def fuzz(default: int):
    """Hypothesis settings: ``default`` fixed examples, or WFSEARCH_FUZZ_EXAMPLES random ones."""
    return settings(max_examples=EXAMPLES or default, deadline=None, derandomize=not EXAMPLES, database=None,
                    suppress_health_check=list(HealthCheck))


def ends_cleanly(args: list, capsys, within_s: float = 20.0, codes: tuple[int, ...] = (0, 2)) -> tuple[int, str, str]:
    """Run the CLI in this process: it ends within ``within_s`` with a status of ``codes``, no traceback, at most
    3 lines on stderr, the last of them ``wfsearch...: error: ...`` when it fails."""
    t0 = time.monotonic()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse
        rc = e.code
    took = time.monotonic() - t0
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc in codes, (args, rc, err[-3000:])
    assert "Traceback" not in err and len(lines) <= 3, (args, err[-3000:])
    if rc:
        assert lines and lines[-1].startswith("wfsearch") and ": error: " in lines[-1], (args, err[-3000:])
    assert took < within_s, f"{args} took {took:.1f} s"
    return rc, out, err


# --------------------------------------------------------------------------- numbers
ABSURD = [math.nan, math.inf, -math.inf, 1e308, -1e308, 10**30, -10**30]
NUMBERS = st.sampled_from([0, -1, 0.5, *ABSURD]) | st.integers() | st.floats()


def yaml_number(v: float | int) -> str:
    if isinstance(v, float) and math.isnan(v):
        return ".nan"
    if isinstance(v, float) and math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    return repr(v)


def absurd(v: float | int) -> bool:
    return not math.isfinite(v) or abs(v) >= 1e30


def numeric_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Key paths of every number (int, float, or a list of them) in ``model`` and its sections."""
    out = []
    for name, f in model.model_fields.items():
        key = prefix + (f.alias or name)
        args = [a for a in typing.get_args(f.annotation) if a is not type(None)] or [f.annotation]
        inner = args[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            out += numeric_fields(inner, key + ".")
        elif inner in (int, float) or typing.get_origin(inner) is list and "int" in str(inner):
            out.append(key)
    return out


ARCH_NUMBERS = ["img_size", "patch_size", "num_classes", "embed_dim", "depth", "mlp_ratio", "kernel_size",
                "fc1_pool", "dwconv_pool", "rank_ratio", "drop_path_rate", "drop_rate"]
assert set(ARCH_NUMBERS) < set(ArchConfig.field_names())
SPEC_NUMBERS = ([(k, "{}") for k in numeric_fields(SpaceSpec)]
                + [(f"base.{k}", "{}") for k in ARCH_NUMBERS] + [(f"throughput.arch.{k}", "{}") for k in ARCH_NUMBERS]
                + [(f"space.{k}", form) for k in ("embed_dim", "depth", "rank_ratio")
                   for form in ("{{int: [{}, 64]}}", "{{int: [2, {}]}}", "{{choice: [{}]}}", "{{int: [2, 64], step: {}}}")]
                + [(f"space.{k}", form) for k in ("mlp_ratio", "drop_path_rate")
                   for form in ("{{float: [{}, 2]}}", "{{float: [0.1, {}], log: true}}", "{{float: [0.1, 0.5], step: {}}}")])


@fuzz(150)
@given(field=st.sampled_from(SPEC_NUMBERS), value=NUMBERS)
def test_every_numeric_spec_field(field, value, capsys):
    key, form = field
    text = form.format(yaml_number(value))
    if key == "proxy.epochs":
        text = f"[{text}]"
    rc, out, err = ends_cleanly(["validate", SMOKE, "--samples", "2", "--set", f"{key}={text}"], capsys)
    if absurd(value):
        assert rc == 2 and key.split(".")[-1] in err, (key, text, err)


RECIPE_NUMBERS = numeric_fields(Recipe)


@pytest.fixture(scope="module")
def empty_data(tmp_path_factory) -> Path:
    """An ImageFolder root without images: a recipe that passes its checks stops here, before training."""
    root = tmp_path_factory.mktemp("data")
    for split in ("train", "val"):
        (root / split).mkdir()
    return root


@fuzz(100)
@given(key=st.sampled_from(RECIPE_NUMBERS), value=NUMBERS)
def test_every_numeric_recipe_field(key, value, tmp_path_factory, empty_data, capsys):
    d = Recipe(model={"name": "weightformer_test"}).to_dict()
    *sections, name = key.split(".")
    parent = d
    for section in sections:
        parent = parent[section]
    current = parent[name]
    parent[name] = [value] * len(current) if isinstance(current, list) else value
    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_text(yaml.safe_dump(d))
    out = path.parent / "run"
    rc, _, err = ends_cleanly(["train", path, "--data", empty_data, "--device", "cpu", "--output", out], capsys,
                              codes=(2,))
    if absurd(value):
        assert name in err, (key, value, err)
    assert not (out / "last.pth").exists()


# --------------------------------------------------------------------------- YAML
OPENERS = {"flow list": ("[", "]"), "flow map": ("{a: ", "}"), "block list": None}


def nested(kind: str, depth: int, indent: int = 2) -> str:
    """A value nested ``depth`` levels deep; a block list starts on the next line, indented by ``indent``."""
    if OPENERS[kind] is None:
        depth = depth % 500  # its indentation grows with the square of the depth: stay below the size bound
        return "\n" + "".join(" " * (indent + 2 * i) + "-\n" for i in range(depth)) + " " * (indent + 2 * depth) + "- 1"
    opener, closer = OPENERS[kind]
    return opener * depth + "1" + closer * depth


@fuzz(25)
@given(kind=st.sampled_from(sorted(OPENERS)), depth=st.integers(0, 3000),
       where=st.sampled_from(["spec", "--set", "recipe"]))
def test_any_nesting_depth(kind, depth, where, tmp_path_factory, empty_data, capsys):
    folder = tmp_path_factory.mktemp("nest")
    if where == "spec":
        (folder / "s.yaml").write_text(SMOKE.read_text() + f"\nextra: {nested(kind, depth)}\n")
        args = ["validate", folder / "s.yaml", "--samples", "2"]
    elif where == "--set":
        args = ["validate", SMOKE, "--samples", "2", "--set", f"base.extra={nested(kind, depth, 0)}"]
    else:
        (folder / "r.yaml").write_text(f"model: {{name: weightformer_test}}\nprovenance:\n  x: {nested(kind, depth, 4)}\n")
        args = ["train", folder / "r.yaml", "--data", empty_data, "--device", "cpu", "--output", folder / "run"]
    rc, _, err = ends_cleanly(args, capsys)
    if (depth % 500 if OPENERS[kind] is None else depth) > 64:
        assert rc == 2 and "nesting deeper than 64 levels" in err, err


@fuzz(80)
@given(data=st.binary(max_size=3000), at=st.integers(0, 10**6), as_recipe=st.booleans())
def test_any_bytes(data, at, as_recipe, tmp_path_factory, empty_data, capsys):
    """Random bytes as a whole file, or spliced into a valid spec."""
    folder = tmp_path_factory.mktemp("bytes")
    good = SMOKE.read_bytes()
    at = at % (len(good) + 1)
    path = folder / "f.yaml"
    path.write_bytes(data if as_recipe or at % 2 else good[:at] + data + good[at:])
    args = (["train", path, "--data", empty_data, "--device", "cpu", "--output", folder / "run"] if as_recipe
            else ["validate", path, "--samples", "2"])
    ends_cleanly(args, capsys)


# --------------------------------------------------------------------------- stored attributes
JSON_VALUES = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
               | st.lists(st.integers() | st.text(max_size=5), max_size=3)
               | st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=5) | st.none(), max_size=3))
REMOVED = object()
READERS = [["show", "{s}"], ["show", "{s}", "--all"], ["show", "{s}", "--json"], ["show", "{s}", "--csv"],
           ["export", "{s}", "--trial", "{n}", "--output", "{o}", "--force"],
           ["export", "{s}", "--pick", "max accuracy", "--output", "{o}", "--force"],
           ["export", "{s}", "--pick", "min params where accuracy >= 0.3", "--output", "{o}", "--force"]]


def _attr_keys(db: Path) -> tuple[list[tuple[int, str]], list[str]]:
    con = sqlite3.connect(db)
    try:
        trial = con.execute("SELECT t.number, u.key FROM trial_user_attributes u JOIN trials t USING (trial_id) "
                            "JOIN studies s USING (study_id) WHERE s.study_name = 'smoke' ORDER BY 1, 2").fetchall()
        study = [r[0] for r in con.execute("SELECT key FROM study_user_attributes u JOIN studies s USING (study_id) "
                                           "WHERE s.study_name = 'smoke' ORDER BY 1")]
    finally:
        con.close()
    return trial, study


def corrupt(db: Path, target: tuple, value) -> None:
    """Replace (or remove) one stored user attribute of study 'smoke': ``("trial", number, key)`` or
    ``("study", key)``; ``("value", number)`` makes a trial's first objective value NULL."""
    con = sqlite3.connect(db)
    try:
        sid = "(SELECT study_id FROM studies WHERE study_name = 'smoke')"
        tid = f"(SELECT trial_id FROM trials WHERE study_id = {sid} AND number = ?)"
        if target[0] == "value":
            con.execute(f"UPDATE trial_values SET value = NULL WHERE objective = 0 AND trial_id = {tid}", target[1:])
        elif target[0] == "trial":
            table, where, args = "trial_user_attributes", f"trial_id = {tid}", [target[1]]
        else:
            table, where, args = "study_user_attributes", f"study_id = {sid}", []
        if target[0] != "value":
            if value is REMOVED:
                con.execute(f"DELETE FROM {table} WHERE {where} AND key = ?", [*args, target[-1]])
            else:
                con.execute(f"UPDATE {table} SET value_json = ? WHERE {where} AND key = ?",
                            [json.dumps(value), *args, target[-1]])
        con.commit()
    finally:
        con.close()


@pytest.fixture(scope="module")
def targets(pristine_study) -> list[tuple]:
    trial, study = _attr_keys(pristine_study / "optuna.db")
    return [("trial", n, k) for n, k in trial] + [("study", k) for k in study] + [("value", n) for n in range(4)]


def corrupted_copy(pristine: Path, tmp_path_factory, target: tuple, value) -> Path:
    """A copy of the study at ``pristine`` (``.../studies/<name>``) with one attribute corrupted."""
    folder = tmp_path_factory.mktemp("corrupt") / "studies" / pristine.name
    folder.mkdir(parents=True)
    shutil.copy(pristine / "optuna.db", folder / "optuna.db")
    corrupt(folder / "optuna.db", target, value)
    return folder


@fuzz(40)
@given(data=st.data(), value=JSON_VALUES | st.just(REMOVED), reader=st.sampled_from(READERS))
def test_every_stored_attribute_of_another_type(data, value, reader, pristine_study, targets, tmp_path_factory,
                                                capsys):
    target = data.draw(st.sampled_from(targets))
    folder = corrupted_copy(pristine_study, tmp_path_factory, target, value)
    n = target[1] if target[0] in ("trial", "value") else 0
    ends_cleanly([a.format(s=folder, n=n, o=folder / "out.yaml") for a in reader], capsys)


def _one_line_or_nothing(fn, *args) -> None:
    try:
        fn(*args)
    except UserError as e:
        assert "\n" not in str(e).strip(), str(e)


@fuzz(15)
@given(data=st.data(), value=JSON_VALUES | st.just(REMOVED))
def test_the_report_reads_every_stored_attribute_of_another_type(data, value, pristine_study, targets,
                                                                  tmp_path_factory):
    """What the report draws (`report_data`: every table's and figure's data, the resolution sweep aside: it
    reads no attribute but the stored spec's throughput section) from a corrupted study."""
    from wfsearch.report import render_html, report_data
    from wfsearch.study import read_study

    folder = corrupted_copy(pristine_study, tmp_path_factory, data.draw(st.sampled_from(targets)), value)
    _one_line_or_nothing(lambda path: render_html(report_data(read_study(path))), folder)


@pytest.fixture(scope="module")
def run_study(tmp_path_factory) -> Path:
    """A study as `wfsearch run` prepares it (its spec, hardware, objectives), with a trained and a pruned trial."""
    from wfsearch.search.engine import prepare_study
    from wfsearch.space import load_spec
    from wfsearch.study.sqlite import checkpoint_wal

    from test_export import SEARCH_TRIALS, TEST_SIZE

    folder = tmp_path_factory.mktemp("run") / "studies" / "smoke"
    spec = load_spec(SMOKE, [f"study.storage=sqlite:///{folder / 'optuna.db'}"])
    study, _, _, lease = prepare_study(spec)
    study.set_user_attr("throughput_scale", {"reference": spec.throughput.reference, "img_s": 900.0})
    study.set_user_attr("seed_noise", 0.01)
    for i, (overrides, acc, tput) in enumerate(SEARCH_TRIALS[:2]):
        arch = ArchConfig(**{**TEST_SIZE, **overrides})
        attrs = {"kind": "search", "arch": arch.to_dict(), "arch_hash": arch.hash, "status": "ok",
                 "status_reason": "ok", "metrics": {"accuracy": acc, "throughput": tput}, "costs": {"params": 1e4},
                 "curve": [{"epoch": 1, "accuracy": acc, "loss": 1.0}], "proxy": {"epochs": [1]}, "constraints": [0.0]}
        state = optuna.trial.TrialState.COMPLETE if i == 0 else optuna.trial.TrialState.PRUNED
        study.add_trial(optuna.trial.create_trial(state=state, values=[acc, tput] if i == 0 else None,
                                                  user_attrs=attrs))
    lease.release()
    checkpoint_wal(folder / "optuna.db")  # its connections stay open: the study into optuna.db, to be copied
    return folder


@fuzz(12)
@given(data=st.data(), value=JSON_VALUES | st.just(REMOVED))
def test_the_run_reads_every_stored_attribute_of_another_type(data, value, run_study, tmp_path_factory):
    """What `wfsearch run` reads of a study it continues, before Ray starts: the lease, the spec and the
    objectives it compares, the speed scale and seed noise, and every trial's known result."""
    from wfsearch.search.driver import distinct_budget, pareto_candidates, search_records
    from wfsearch.search.engine import prepare_study
    from wfsearch.study import known_results
    from wfsearch.space import load_spec
    from wfsearch.study import study_attrs

    trial, study = _attr_keys(run_study / "optuna.db")
    target = data.draw(st.sampled_from([("trial", n, k) for n, k in trial] + [("study", k) for k in study]
                                       + [("study", "run_lease")]))
    folder = corrupted_copy(run_study, tmp_path_factory, target, value)
    spec = load_spec(SMOKE, [f"study.storage=sqlite:///{folder / 'optuna.db'}"])

    def continue_run() -> None:
        study, _, _, lease = prepare_study(spec)
        try:
            study_attrs(study)
            records = search_records(study, (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
            known_results(records)
            distinct_budget(spec, records)
            pareto_candidates(records)
        finally:
            lease.release()

    _one_line_or_nothing(continue_run)


# --------------------------------------------------------------------------- output paths
KINDS = ["link to a file", "dangling link", "link to a folder", "FIFO", "folder", "read-only place"]
WRITERS = {"report": ["report", "{s}", "--no-scaling", "-o", "{p}"],
           "export": ["export", "{s}", "--trial", "0", "--force", "--output", "{p}"],
           "schema": ["schema", "-o", "{p}"]}


def _make(kind: str, where: Path, mount: Path | None) -> Path:
    path = where / "out.txt"
    if kind == "link to a file":
        (where / "target.txt").write_text("old")
        path.symlink_to(where / "target.txt")
    elif kind == "dangling link":
        path.symlink_to(where / "target.txt")
    elif kind == "link to a folder":
        (where / "target").mkdir()
        path.symlink_to(where / "target")
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path = mount / "out.txt"
    return path


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_output_path_kind(writer, kind, pristine_study, tmp_path, request, capsys):
    """A link to a file (or to where one will be) is written through and kept; a FIFO, a folder (or a link to
    one) and a read-only place are refused with one line and left as they were."""
    mount = None
    if kind == "read-only place":
        mount = request.getfixturevalue("mount_point")
        _remount(mount, "ro")
    path = _make(kind, tmp_path, mount)
    before = sorted(p.name for p in path.parent.iterdir())
    args = [a.format(s=pristine_study, p=path) for a in WRITERS[writer]]
    rc, _, err = ends_cleanly(args, capsys, within_s=60, codes=(0,) if "file" in kind or "dangling" in kind else (2,))
    if rc == 0:
        assert path.is_symlink() and (tmp_path / "target.txt").stat().st_size > 100
    else:
        assert ("a read-only file system" if mount else "wfsearch writes a regular file only") in err
        assert sorted(p.name for p in path.parent.iterdir()) == before and (path.is_fifo() or path.is_dir()
                                                                             or mount is not None)


@pytest.mark.parametrize("kind", ["file", "FIFO", "read-only place"])
def test_erf_output_folder_kinds(kind, tmp_path, request, capsys):
    if kind == "read-only place":
        out = request.getfixturevalue("mount_point")
        _remount(out, "ro")
    elif kind == "FIFO":
        os.mkfifo(tmp_path / "erf")
        out = tmp_path / "erf"
    else:
        (tmp_path / "erf").write_text("x")
        out = tmp_path / "erf"
    rc, _, err = ends_cleanly(["erf", "--model", "resnet18", "--out", out], capsys, codes=(2,))
    assert "--out: " in err
