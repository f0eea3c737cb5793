"""Broken storage: damaged, empty or read-only study databases, a changed spec, a failed first run."""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import optuna
import pytest

from wfsearch.errors import UserError
from wfsearch.space import load_spec

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "spaces" / "smoke.yaml"


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return tmp_path


def _prepare(overrides=()):
    from wfsearch.search.engine import prepare_study

    spec = load_spec(SMOKE, list(overrides))
    study, storage, _, lease = prepare_study(spec)
    lease.release()  # the study is prepared, not run: hand its run lease back at once
    return study, storage


def _with_trial(study):
    study.add_trial(optuna.trial.create_trial(values=[0.5, 100.0], user_attrs={"kind": "search"}))


DB = Path("studies/smoke/optuna.db")


@pytest.mark.parametrize("content,message", [
    (b"", "an empty file, not a study database"),
    (b"\x00garbage" * 100, "not an SQLite database"),
])
def test_empty_or_foreign_file_is_refused(cwd, content, message):
    DB.parent.mkdir(parents=True)
    DB.write_bytes(content)
    with pytest.raises(UserError, match=f"studies/smoke/optuna.db: {message}"):
        _prepare()
    assert DB.read_bytes() == content  # left as it was


def test_truncated_database_is_refused(cwd):
    study, storage = _prepare()
    _with_trial(study)
    storage.engine.dispose()
    con = sqlite3.connect(DB)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = DB.read_bytes()
    DB.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"optuna\.db: truncated: \d+ bytes where the database header says \d+"):
        _prepare()


def test_changed_spec_is_refused_unless_it_cannot_change_results(cwd):
    study, storage = _prepare()
    _with_trial(study)
    _prepare(["study.trials=9", "resources.cpus_per_trial=2"])  # cannot change a trial's result
    with pytest.raises(UserError, match=r"smoke\.yaml: proxy\.dataset\.num_classes: 4 -> 8: the spec changed "
                                        r"since study 'smoke' started.*--fresh"):
        _prepare(["proxy.dataset.num_classes=8"])


def test_failed_first_run_leaves_no_study_folder(cwd):
    from wfsearch.search.engine import run_search

    spec = load_spec(SMOKE, ["proxy.dataset.name=imagefolder", f"proxy.dataset.root={cwd / 'nowhere'}",
                             "proxy.dataset.num_classes=2"])
    with pytest.raises(UserError, match="no such folder"):
        run_search(spec, progress=False)
    assert not Path("studies/smoke").exists()


# --------------------------------------------------------------------------- read-only places (a mount)
@pytest.fixture
def mount_point(tmp_path):
    """A fresh tmpfs (when this process may mount one); unmounted afterwards."""
    point = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
    point.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(point)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _remount(point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True, capture_output=True)


def test_read_only_storage_is_one_line_and_a_read_only_copy_is_readable(cwd, mount_point):
    from wfsearch.cli import main

    study, storage = _prepare()
    _with_trial(study)
    study.set_user_attr("objectives", [{"name": "accuracy", "direction": "maximize"},
                                       {"name": "throughput", "direction": "maximize"}])
    storage.engine.dispose()
    copy = mount_point / "studies" / "smoke"
    copy.mkdir(parents=True)
    for f in DB.parent.glob("optuna.db*"):  # the WAL files too: a live copy
        shutil.copy(f, copy / f.name)
    _remount(mount_point, "ro")
    with pytest.raises(UserError, match="cannot write here \\(read-only\\)"):
        _prepare([f"study.storage=sqlite:///{copy / 'optuna.db'}"])
    with pytest.raises(UserError, match="read-only"):  # a new study in a read-only folder
        _prepare([f"study.storage=sqlite:///{mount_point / 'new' / 'optuna.db'}"])
    assert main(["show", str(copy)]) == 0


def test_read_only_current_folder_is_one_line(tmp_path, mount_point, monkeypatch, capsys):
    from wfsearch.cli import main

    _remount(mount_point, "ro")
    monkeypatch.chdir(mount_point)
    assert main(["run", str(SMOKE), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wfsearch: error: ") and "studies/smoke/optuna.db: cannot write here (read-only)" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_disk_full_during_a_run_is_one_line_and_resume_works(mount_point):
    import os
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    total = os.statvfs(mount_point).f_bavail * os.statvfs(mount_point).f_frsize
    (mount_point / "filler").write_bytes(b"\0" * (total - 400_000))  # room for the study and a few trials
    cmd = [sys.executable, "-m", "wfsearch", "run", str(SMOKE), "--noop", "--no-progress"]
    res = subprocess.run(cmd + ["--set", "study.trials=1000"], cwd=mount_point, capture_output=True, text=True,
                         timeout=600, env=env)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.stderr.strip().splitlines()[-1].endswith(
        "studies/smoke/optuna.db: the disk is full; the study holds every trial that finished before: "
        "free some space and run the same command again to continue")
    db = mount_point / "studies" / "smoke" / "optuna.db"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    done = con.execute("SELECT COUNT(*) FROM trials JOIN studies USING (study_id) "
                       "WHERE state = 'COMPLETE' AND study_name = 'smoke'").fetchone()[0]
    con.close()
    (mount_point / "filler").unlink()
    res = subprocess.run(cmd + ["--set", f"study.trials={done + 2}"], cwd=mount_point, capture_output=True,
                         text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{db}")
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == done + 2
