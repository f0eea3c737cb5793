"""Hostile paths, sizes and stored data, one test per finding of the outside probe (the numbers are its items):
nothing replaced, nothing lost, nothing waits without a bound, every mistake one line with exit status 2.
The generated cases are in test_fuzz_hostile.py."""
from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest
import yaml

from test_export import pristine_study, study_dir  # noqa: F401 (fixtures)
from test_fuzz_hostile import corrupt, ends_cleanly
from test_hostile_specs import refused as one_line  # status 2, one `wfsearch: error:` line, within a bound
from test_storage_faults import _remount, mount_point  # noqa: F401 (fixture)
from wfsearch.cli import main
from wfsearch.errors import UserError
from wfsearch.space import load_spec

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "spaces" / "smoke.yaml"


def cli(args: list) -> int:
    return main([str(a) for a in args])


# ---------------------------------------------------------------- 1: outputs never replace what is not a file
def test_outputs_write_through_links_and_refuse_fifos_devices_and_folders(study_dir, tmp_path, capsys):
    target = tmp_path / "kept.yaml"
    target.write_text("old")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    assert cli(["export", study_dir, "--trial", "0", "--output", link, "--force"]) == 0
    assert link.is_symlink() and "weightformer" in target.read_text()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.html"
    folder.mkdir()
    capsys.readouterr()
    for args, path in ((["export", study_dir, "--trial", "0", "--force", "--output"], fifo),
                       (["report", study_dir, "--no-scaling", "-o"], fifo),
                       (["report", study_dir, "--no-scaling", "-o"], folder),
                       (["schema", "-o"], fifo)):
        line = one_line(args + [path], capsys)
        assert "is there; wfsearch writes a regular file only" in line, line
    if os.geteuid() == 0:  # a device node: only root may make one
        device = tmp_path / "null"
        os.mknod(device, 0o600 | 0o020000, os.makedev(1, 3))
        assert "a character device is there" in one_line(["schema", "-o", device], capsys)
        assert Path(device).is_char_device()
    assert fifo.is_fifo() and folder.is_dir() and not list(tmp_path.glob(".*.tmp"))


def test_a_report_through_a_link_keeps_the_link(study_dir, tmp_path, capsys):
    target = tmp_path / "r.html"
    target.write_text("old")
    (tmp_path / "link.html").symlink_to(target)
    assert cli(["report", study_dir, "--no-scaling", "-o", tmp_path / "link.html"]) == 0
    assert (tmp_path / "link.html").is_symlink() and target.read_text().startswith("<!DOCTYPE html>")


# ---------------------------------------------------------------- 2: a trial larger than the machine
@pytest.mark.timeout(60)
@pytest.mark.parametrize("key", ["cpus_per_trial", "gpus_per_trial"])
def test_a_trial_larger_than_the_machine_is_refused_before_anything_runs(key, tmp_path, monkeypatch, capsys):
    from wfsearch.gpu import gpu_count

    monkeypatch.chdir(tmp_path)
    value = (os.cpu_count() or 1) + 1 if key == "cpus_per_trial" else gpu_count() + 1
    line = one_line(["run", SMOKE, "--no-progress", "--set", f"resources.{key}={value}"], capsys)
    assert f"resources.{key}: {value}: a trial needs" in line and "this machine has" in line, line
    assert not (tmp_path / "studies").exists()


def test_every_wait_on_ray_is_bounded(monkeypatch):
    """A task that can no longer be scheduled (the cluster shrank below one trial) ends the wait at once."""
    import types

    from wfsearch.search import ray_api

    fake = types.SimpleNamespace(wait=lambda futures, timeout: ([], futures), get=lambda f: f,
                                 cluster_resources=lambda: {"CPU": 0.0}, cancel=lambda *a, **k: None)
    monkeypatch.setitem(sys.modules, "ray", fake)
    spec = load_spec(SMOKE)
    with pytest.raises(UserError, match="resources.cpus_per_trial: 1: .* the Ray cluster has 0 CPU"):
        ray_api.await_result(object(), spec, "the speed calibration", poll_s=0.01)


# ---------------------------------------------------------------- 3: every credential masked
def test_a_password_in_the_query_string_is_never_shown(tmp_path, monkeypatch, capsys):
    from wfsearch.study import safe_url

    monkeypatch.chdir(tmp_path)
    url = "postgresql+psycopg2://wf@127.0.0.1:1/wf?password=s3cret-pw&sslmode=disable"
    assert safe_url(url) == "postgresql+psycopg2://wf@127.0.0.1:1/wf?password=***&sslmode=disable"
    for args in (["validate", SMOKE, "--set", f"study.storage={url}"], ["show", "--storage", url],
                 ["run", SMOKE, "--no-progress", "--set", f"study.storage={url}"]):
        rc, out, err = ends_cleanly(args, capsys)
        assert "s3cret" not in out + err, (args, out, err)


# ---------------------------------------------------------------- 4: read-only and locked storage
def test_writing_into_a_read_only_place_is_one_line(study_dir, mount_point, capsys):  # noqa: F811
    _remount(mount_point, "ro")
    for args in (["report", study_dir, "--no-scaling", "-o", mount_point / "r.html"],
                 ["export", study_dir, "--trial", "0", "--output", mount_point / "r.yaml"],
                 ["schema", "-o", mount_point / "s.json"]):
        assert "a read-only file system" in one_line(args, capsys)


def _hold_write_lock(db: Path, journal: str, ready: multiprocessing.Event, release: multiprocessing.Event) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute(f"PRAGMA journal_mode={journal}")
    con.execute("BEGIN EXCLUSIVE")
    con.execute("CREATE TABLE held (x)")
    ready.set()
    release.wait(60)
    con.close()


@pytest.fixture
def locked(monkeypatch):
    """``locked(db, journal)``: another process holds a write transaction on ``db`` for the test; waits for a
    lock are 1 s."""
    from wfsearch.study import connect, storage

    monkeypatch.setattr(connect, "SQLITE_BUSY_TIMEOUT_S", 1)
    monkeypatch.setattr(storage, "SQLITE_BUSY_TIMEOUT_S", 1)
    ctx = multiprocessing.get_context("fork")
    release, held = ctx.Event(), []

    def hold(db: Path, journal: str) -> None:
        ready = ctx.Event()
        p = ctx.Process(target=_hold_write_lock, args=(db, journal, ready, release))
        p.start()
        held.append(p)
        assert ready.wait(30)

    yield hold
    release.set()
    for p in held:
        p.join(30)


def test_a_locked_database_is_named_locked_not_foreign(study_dir, locked, capsys):
    locked(study_dir / "optuna.db", "DELETE")  # a rollback journal: readers wait for the writer too
    line = one_line(["show", study_dir], capsys)
    assert "locked by another process" in line and "not an Optuna study database" not in line, line


def test_run_on_a_database_another_process_writes_is_one_line(tmp_path, monkeypatch, locked, capsys):
    from wfsearch.study import open_storage

    monkeypatch.chdir(tmp_path)
    open_storage("sqlite:///studies/smoke/optuna.db").engine.dispose()  # a study database, no study yet ...
    locked(tmp_path / "studies" / "smoke" / "optuna.db", "WAL")  # ... that another program holds in a write
    line = one_line(["run", SMOKE, "--no-progress"], capsys)
    assert "optuna.db: locked by another process for more than 1 s" in line, line


# ---------------------------------------------------------------- 5: hostile YAML
@pytest.mark.timeout(60)
def test_hostile_yaml_is_one_line(tmp_path, capsys):
    deep = "[" * 1000 + "]" * 1000
    (tmp_path / "deep.yaml").write_text(SMOKE.read_text() + f"\nextra: {deep}\n")
    (tmp_path / "nul.yaml").write_bytes(b"study: {name: x}\x00\n")
    (tmp_path / "environ.yaml").write_text("extends: /proc/self/environ\n")
    (tmp_path / "recipe.yaml").write_text(f"model: {{name: weightformer_test}}\nprovenance: {{x: {deep}}}\n")
    os.mkfifo(tmp_path / "fifo.yaml")
    cases = {"deep.yaml": "nesting deeper than 64 levels", "nul.yaml": "'\\x00' is not allowed in YAML text",
             "environ.yaml": "'\\x00' is not allowed in YAML text", "fifo.yaml": "not a regular file"}
    for name, message in cases.items():
        assert message in one_line(["validate", tmp_path / name], capsys), name
    assert "nesting deeper" in one_line(["validate", SMOKE, "--set", f"base.x={deep}"], capsys)
    assert "nesting deeper" in one_line(["train", tmp_path / "recipe.yaml", "--data", tmp_path], capsys)
    assert "not a regular file" in one_line(["train", tmp_path / "fifo.yaml", "--data", tmp_path], capsys)


@pytest.mark.timeout(60)
def test_an_optuna_db_that_is_a_fifo_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies" / "smoke").mkdir(parents=True)
    os.mkfifo(tmp_path / "studies" / "smoke" / "optuna.db")
    assert "not a regular file" in one_line(["run", SMOKE, "--no-progress"], capsys)
    assert "not a regular file" in one_line(["show", "--storage", "sqlite:///studies/smoke/optuna.db"], capsys)


# ---------------------------------------------------------------- 6: sizes and values
@pytest.mark.timeout(120)
@pytest.mark.parametrize("override,key", [
    ("base.depth=10000000", "base.depth"),
    ("base.depth=" + "1" + "0" * 30, "base.depth"),
    ("space={depth: {int: [1000000000, 1000000001]}}", "space.depth"),
    ("base.mlp_ratio=.inf", "base.mlp_ratio"),
    ("base.mlp_ratio=1e308", "base.mlp_ratio"),
    ("space={mlp_ratio: {float: [1e299, 1e300], log: true}}", "space.mlp_ratio"),
    ("study.seed=1000000000000000000000000000000", "study.seed"),
    ("proxy.num_threads=1000000000000000000000000000000", "proxy.num_threads"),
    ("resources.cpus_per_trial=1e308", "resources.cpus_per_trial"),
    ("study.name=" + "a" * 200, "study.name"),
    ("base.embed_dim=60000", "base.embed_dim"),
    ("proxy.dataset.train_size=100000000", "proxy.dataset.train_size"),
])
def test_absurd_sizes_are_refused_fast_naming_the_key(override, key, capsys):
    line = one_line(["validate", SMOKE, "--set", override], capsys)
    assert f": {key}" in line, line


def test_study_names_have_one_length_limit():
    from wfsearch.space.spec import MAX_NAME_LENGTH
    from wfsearch.study.naming import MAX_NAME_LENGTH as STUDY_LIMIT

    assert MAX_NAME_LENGTH == STUDY_LIMIT


@pytest.mark.timeout(60)
def test_a_recipe_larger_than_the_machine_is_refused_before_training(study_dir, tmp_path, capsys):
    assert cli(["export", study_dir, "--trial", "0", "--output", tmp_path / "r.yaml"]) == 0
    recipe = yaml.safe_load((tmp_path / "r.yaml").read_text())
    recipe["data"]["img_size"] = recipe["model"]["kwargs"]["img_size"] = 16000
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    for split in ("train", "val"):
        (tmp_path / "data" / split / "a").mkdir(parents=True)
    capsys.readouterr()
    line = one_line(["train", tmp_path / "r.yaml", "--data", tmp_path / "data", "--device", "cpu"], capsys)
    assert "data.img_size: 16000: training weightformer_test" in line and "GiB" in line, line
    recipe["data"]["img_size"] = recipe["model"]["kwargs"]["img_size"] = 100000
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert "must lie in [1, 16384]" in one_line(["train", tmp_path / "r.yaml", "--data", tmp_path / "data"], capsys)


# ---------------------------------------------------------------- 7: --fresh keeps a long-named study
def test_fresh_keeps_a_long_named_study_and_its_references(tmp_path, monkeypatch):
    from wfsearch.search.engine import prepare_study

    monkeypatch.chdir(tmp_path)
    name = "n" * 120
    spec = load_spec(SMOKE, [f"study.name={name}"])
    study, storage, _, lease = prepare_study(spec)
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0], user_attrs={"kind": "search"}))
    refs = optuna.create_study(study_name=f"{name}:references", storage=storage, directions=["maximize"] * 2)
    refs.add_trial(optuna.trial.create_trial(values=[0.4, 2.0], user_attrs={"kind": "reference"}))
    lease.release()
    _, storage, archived, lease = prepare_study(spec, fresh=True)
    lease.release()
    assert len(archived) <= 128 and archived.startswith("n" * 100)
    trials = {s.study_name: len(storage.get_all_trials(s._study_id)) for s in storage.get_all_studies()}
    assert trials == {archived: 1, f"{archived}:references": 1, name: 0}, trials


# ---------------------------------------------------------------- 8: a foreign SQLite database
def test_a_foreign_sqlite_database_is_never_written_into(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    con.commit()
    con.close()
    before = (tmp_path / "other.db").read_bytes()
    line = one_line(["run", SMOKE, "--no-progress", "--set", f"study.storage=sqlite:///{tmp_path / 'other.db'}"],
                    capsys)
    assert "a database of another program (tables customers)" in line, line
    assert (tmp_path / "other.db").read_bytes() == before


# ---------------------------------------------------------------- 9: corrupted stored attributes
@pytest.mark.parametrize("target,value", [
    (("trial", 0, "metrics"), [1, "a"]),
    (("trial", 0, "curve"), ["x", "y"]),
    (("value", 0), None),
    (("trial", 4, "reference_name"), 7),
    (("study", "objectives"), ["accuracy"]),
    (("study", "spec"), {"throughput": [1]}),
    (("trial", 1, "arch_hash"), []),
])
def test_corrupted_attributes_are_read_as_absent(study_dir, target, value, caplog, capsys):
    from wfsearch.report import report_data, scaling_data
    from wfsearch.study import read_study

    corrupt(study_dir / "optuna.db", target, value)
    for args in (["show", study_dir, "--all"], ["show", study_dir, "--json"], ["export", study_dir, "--pick",
                 "max accuracy", "--output", study_dir / "r.yaml", "--force"]):
        rc, out, err = ends_cleanly(args, capsys, codes=(0,))
    view = read_study(study_dir)
    report_data(view, scaling_data(view, measure=False))
    if target[0] != "value":  # the warning names the trial (or study) and the attribute
        assert f"{target[-1]!r}" in caplog.text and (f"trial {target[1]}" in caplog.text or "study" in caplog.text)


def test_run_refuses_a_null_objective_value_naming_the_trial(tmp_path, monkeypatch):
    from wfsearch.search.engine import prepare_study

    monkeypatch.chdir(tmp_path)
    spec = load_spec(SMOKE)
    study, _, _, lease = prepare_study(spec)
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0], user_attrs={"kind": "search"}))
    study.add_trial(optuna.trial.create_trial(values=[0.6, 1.0], user_attrs={"kind": "search", "metrics": [1]}))
    lease.release()
    db = tmp_path / "studies" / "smoke" / "optuna.db"
    corrupt(db, ("study", "throughput_scale"), "fast")
    from wfsearch.search.engine import search_records
    from wfsearch.study import known_results

    study, _, _, lease = prepare_study(spec)  # attributes of another type: read as absent
    assert len(known_results(search_records(study))) == 0
    lease.release()
    corrupt(db, ("value", 1), None)
    with pytest.raises(UserError, match=r"study 'smoke': trial 1: objective 0 is stored as NULL"):
        prepare_study(spec)


def test_a_damaged_lease_never_blocks_a_study(tmp_path):
    from wfsearch.study.lease import LEASE_ATTR, study_lease

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    for lease in ({"host": "elsewhere", "pid": "12", "token": "t", "heartbeat": "now", "expires": "later"},
                  {"host": "elsewhere", "pid": 10**30, "token": "t", "heartbeat": 1e308, "expires": 1e308},
                  {"host": os.uname().nodename, "pid": -1, "token": "t", "heartbeat": None, "expires": [1]}):
        study.set_user_attr(LEASE_ATTR, lease)  # stored as the lease writes it: one JSON object
        mine = study_lease(study)
        mine.acquire()  # taken over: neither expired by its fields nor alive
        mine.release()


# ---------------------------------------------------------------- 10: races, pipes, odd places
def _first_run(db: str, barrier, results) -> None:
    from wfsearch.search.engine import prepare_study

    spec = load_spec(SMOKE, [f"study.storage=sqlite:///{db}"])
    barrier.wait()
    try:
        _, _, _, lease = prepare_study(spec)
        results.put("ran")
        time.sleep(0.5)
        lease.release()
    except UserError as e:
        results.put("busy" if "being searched by another run" in str(e) else str(e))
    except Exception as e:  # what this test is about: a table-creation race, say
        results.put(f"{type(e).__name__}: {e}")


@pytest.mark.timeout(300)
def test_two_first_runs_at_once_one_runs_the_other_is_told_it_is_busy(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for i in range(8):
        results, barrier = ctx.Queue(), ctx.Barrier(2)
        procs = [ctx.Process(target=_first_run, args=(str(tmp_path / f"{i}" / "optuna.db"), barrier, results))
                 for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert sorted(results.get(timeout=10) for _ in procs) == ["busy", "ran"], i


def test_a_closed_pipe_or_a_full_disk_behind_stdout(monkeypatch, capsys):
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert cli(["schema"]) == 141  # as if killed by SIGPIPE, and quiet
    monkeypatch.undo()
    assert capsys.readouterr().err == ""
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "wfsearch", "schema"], stdout=full, stderr=subprocess.PIPE,
                             text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "wfsearch: error: standard output: the disk is full; the output is incomplete"], res.stderr


def test_erf_checkpoint_that_is_missing_or_garbage(study_dir, tmp_path, capsys):
    assert cli(["export", study_dir, "--trial", "0", "--output", tmp_path / "r.yaml"]) == 0
    (tmp_path / "garbage.pth").write_bytes(os.urandom(4096))
    capsys.readouterr()
    base = ["erf", "--recipe", tmp_path / "r.yaml", "--img-size", "32", "--images", "1", "--out", tmp_path / "erf"]
    assert "--checkpoint: " in one_line(base + ["--checkpoint", tmp_path / "missing.pth"], capsys)
    line = one_line(base + ["--checkpoint", tmp_path / "garbage.pth"], capsys)
    assert "garbage.pth': not a checkpoint of this model" in line, line


def test_a_deleted_current_folder_is_named(tmp_path, monkeypatch, capsys):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert "the current folder no longer exists" in one_line(["show", "studies/x"], capsys)


def test_wfsearch_lock_dir_must_be_an_existing_folder(tmp_path, monkeypatch):
    from wfsearch.proxy.devicelock import lock_dir

    (tmp_path / "file").write_text("")
    for path, what in ((tmp_path / "file", "not a folder"), (tmp_path / "missing", "no such folder")):
        monkeypatch.setenv("WFSEARCH_LOCK_DIR", str(path))
        with pytest.raises(UserError, match=f"WFSEARCH_LOCK_DIR: .*: {what}"):
            lock_dir()
    assert not (tmp_path / "missing").exists()
    monkeypatch.setenv("WFSEARCH_LOCK_DIR", str(tmp_path))
    assert lock_dir() == tmp_path


# ---------------------------------------------------------------- 11: also seen
def test_every_end_of_a_run_folds_the_log_into_optuna_db(tmp_path, monkeypatch):
    """Even a run stopped by Ctrl-C: optuna.db copied alone holds the study."""
    from wfsearch.search import engine
    from wfsearch.search.stop import Interrupted
    from wfsearch.study import read_study

    monkeypatch.chdir(tmp_path)

    def interrupted_search(spec, study, *args, **kwargs):
        study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0], user_attrs={"kind": "search"}))
        raise Interrupted(2)

    monkeypatch.setattr(engine, "_search", interrupted_search)
    with pytest.raises(Interrupted) as stopped:  # its traceback keeps the run's connections open, as at an exit
        engine.run_search(load_spec(SMOKE), progress=False)
    assert stopped.value.marked == 0
    copy = tmp_path / "copy" / "smoke"
    copy.mkdir(parents=True)
    shutil.copy(tmp_path / "studies" / "smoke" / "optuna.db", copy / "optuna.db")
    assert len(read_study(copy).trials) == 1


def test_a_ray_failure_is_one_line(tmp_path, monkeypatch, capsys):
    import ray.exceptions

    from wfsearch.search import engine

    monkeypatch.chdir(tmp_path)

    def node_died(*args, **kwargs):
        raise ray.exceptions.NodeDiedError("the node 127.0.0.1 was declared dead")

    monkeypatch.setattr(engine, "_search", node_died)
    line = one_line(["run", SMOKE, "--no-progress"], capsys)
    assert "the Ray cluster failed (NodeDiedError" in line and "run the same command again" in line, line


def test_postgresql_without_its_driver_names_what_to_install(capsys):
    import importlib.util

    from wfsearch.cli import build_parser

    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg (3) is installed here")
    line = one_line(["validate", SMOKE, "--set", "study.storage=postgresql://u@h/db"], capsys)
    assert "the postgresql driver 'psycopg'" in line and "pip install 'psycopg[binary]'" in line, line
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "postgresql://" not in sub.choices["show"].format_help()


def test_pick_equality_holds_at_the_precision_written(study_dir, capsys):
    """The front prints 0.2656 for a stored 0.265625; `== 0.2656` picks that trial."""
    corrupt(study_dir / "optuna.db", ("trial", 1, "metrics"), {"accuracy": 0.6, "throughput_ratio": 0.265625})
    rc, out, err = ends_cleanly(["export", study_dir, "--pick", "min accuracy where throughput_ratio == 0.2656",
                                 "--output", study_dir / "r.yaml"], capsys, codes=(0,))
    assert out.startswith("trial 1:"), out
    assert cli(["export", study_dir, "--pick", "min accuracy where throughput_ratio != 0.2656", "--output",
                 study_dir / "r2.yaml"]) == 0 and capsys.readouterr().out.startswith("trial 2:")


def test_pillow_warnings_stay_out_of_the_output(tmp_path, monkeypatch):
    from PIL import Image

    from wfsearch.proxy.imagefolder import decode_all

    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4096 pixels: over the limit, below twice it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arrays, why = decode_all([str(tmp_path / "big.png")], 16, 1)
    assert arrays[0].shape == (16, 16, 3) and why == [None]
    assert not [w for w in caught if "PIL" in w.filename], [str(w.message) for w in caught]


def test_a_local_ray_node_is_not_declared_dead_for_late_health_checks(monkeypatch):
    """Starved of CPU (every core training), a local raylet misses Ray's health checks; with Ray's defaults
    the node is declared dead after about 15 s and the run ends in Ray's logs. A local node cannot be lost,
    so the run's own cluster waits minutes before giving up on it."""
    import ray

    from wfsearch.search import ray_api

    seen: dict = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    monkeypatch.setattr(ray_api, "keep_on_loopback", lambda: None)
    ray_api.init_ray(None)
    cfg = seen["_system_config"]
    assert seen["address"] == "local" and cfg["health_check_period_ms"] * cfg["health_check_failure_threshold"] >= 300_000
