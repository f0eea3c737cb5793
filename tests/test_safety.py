"""Security and robustness of what wfsearch reads: stored study names, checkpoints, listening sockets."""
from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest

from wfsearch.cli import main
from wfsearch.errors import UserError
from wfsearch.study import check_study_name, references_study_name, study_dir

TRAVERSAL_NAMES = ["../../../../tmp/x", "/tmp/x", "..", ".", "a/b", "a\\b", "", "x\n", "~/x", "-rf"]


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------- study names (item 3)
@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_only_plain_study_names_make_paths(name):
    with pytest.raises(UserError, match="not a plain study name"):
        study_dir(name)
    with pytest.raises(UserError):
        references_study_name(name)


def test_plain_names_pass():
    assert study_dir("predictors") == Path("studies/predictors")
    assert study_dir("smoke-2.v1_b", root="/r") == Path("/r/smoke-2.v1_b")
    assert references_study_name("smoke") == "smoke:references"
    assert check_study_name("a" * 128) == "a" * 128
    with pytest.raises(UserError):
        check_study_name("a" * 129)


def _evil_storage(tmp_path: Path, name: str) -> str:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'evil.db'}"
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "maximize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 100.0], user_attrs={"kind": "search"}))
    return url


@pytest.mark.parametrize("command", ["report", "export", "show"])
@pytest.mark.parametrize("name", ["../../../../{tmp}/escaped", "{tmp}/escaped"])
def test_stored_traversal_names_are_refused(tmp_path, monkeypatch, capsys, command, name):
    """A database whose study is named like a path: `report` and `export` refuse it with one line and
    write nothing, neither outside nor inside the working folder."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    name = name.format(tmp=str(tmp_path).lstrip("/"))
    if name.startswith(str(tmp_path).lstrip("/")):
        name = "/" + name
    url = _evil_storage(tmp_path, name)
    rc, out, err = run_cli([command, "--storage", url], capsys)
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "not a plain study name" in lines[0], err
    assert not (tmp_path / "escaped").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.db", "work"]
    assert list(work.iterdir()) == []


# ---------------------------------------------------------------- checkpoints (item 1)
class _RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _checkpoints(tmp_path: Path) -> dict[str, Path]:
    import torch

    files = {}
    marker = tmp_path / "pwned"
    files["crafted"] = tmp_path / "crafted.pth"
    torch.save({"model": {}, "epoch": 1, "num_classes": 2, "x": _RunsACommand(marker)}, files["crafted"])
    files["garbage"] = tmp_path / "garbage.pth"
    files["garbage"].write_bytes(os.urandom(4096))
    files["empty"] = tmp_path / "empty.pth"
    files["empty"].write_bytes(b"")
    good = tmp_path / "good.pth"
    torch.save({"model": {"w": torch.zeros(3)}, "epoch": 1, "num_classes": 2}, good)
    files["truncated"] = tmp_path / "truncated.pth"
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["list"] = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], files["list"])
    files["text"] = tmp_path / "text.pth"
    files["text"].write_text("epoch: 1\n")
    return files


def test_checkpoints_load_only_tensors_and_plain_values(tmp_path):
    from wfsearch.export.train import load_checkpoint

    files = _checkpoints(tmp_path)
    for kind, path in files.items():
        with pytest.raises(UserError) as e:
            load_checkpoint(path, "--resume")
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"--resume: {str(path)!r}: "), (kind, msg)
    assert "refused" in _message(load_checkpoint, files["crafted"])
    assert not (tmp_path / "pwned").exists()  # the crafted pickle's os.system never ran
    good = tmp_path / "good.pth"
    assert load_checkpoint(good)["epoch"] == 1


def _message(fn, *args) -> str:
    try:
        fn(*args)
    except UserError as e:
        return str(e)
    raise AssertionError("no error")


def test_train_evaluate_refuses_a_crafted_checkpoint(tmp_path, capsys):
    """`wfsearch train RECIPE --evaluate --resume CKPT` on files that are not checkpoints: one line, exit 2,
    and the command a crafted pickle carries does not run."""
    from test_export import make_smoke_study

    study = tmp_path / "studies" / "smoke"
    make_smoke_study(study)
    assert main(["export", str(study), "--trial", "0"]) == 0
    recipe = study / "recipes" / "trial-0.yaml"
    capsys.readouterr()
    for kind, path in _checkpoints(tmp_path).items():
        rc, out, err = run_cli(["train", recipe, "--evaluate", "--resume", path, "--data", tmp_path,
                                "--device", "cpu", "--workers", "0"], capsys)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and str(path) in lines[0], (kind, err)
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------- storage password (item 4)
def test_storage_password_is_masked_everywhere(tmp_path, monkeypatch, capsys):
    """`run`, `validate`, `show`, `report` and `export` never print the storage password."""
    import socket

    with socket.socket() as s:  # a port nothing listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    url = f"postgresql+psycopg2://wf:s3cret-pw@127.0.0.1:{port}/wf"
    smoke = Path(__file__).resolve().parents[1] / "spaces" / "smoke.yaml"
    for args in (["run", smoke, "--set", f"study.storage={url}", "--no-progress"],
                 ["validate", smoke, "--set", f"study.storage={url}"],
                 ["show", "--storage", url], ["report", "--storage", url], ["export", "--storage", url],
                 ["run", smoke, "--set", "study.storage=postgresql://wf:s3cret-pw@[::1/wf", "--no-progress"]):
        rc, out, err = run_cli(args, capsys)
        assert "s3cret" not in out + err, (args, out, err)
        assert args[0] == "validate" or (rc == 2 and len(err.strip().splitlines()) == 1), (args, rc, err)


# ---------------------------------------------------------------- one run per study (item 6)
def _study(tmp_path: Path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")


def test_the_run_lease_admits_one_run(tmp_path):
    from wfsearch.study.lease import StudyBusy, study_lease

    study = _study(tmp_path)
    first = study_lease(study)
    first.acquire()
    other = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    second = study_lease(other)
    second.owner = {**second.owner, "token": "other"}
    with pytest.raises(StudyBusy, match=r"is being searched by another run \(pid \d+ on "):
        second.acquire()
    assert first.renew()
    first.release()
    second.acquire()  # free again once released
    assert "run_lease" in other.user_attrs
    second.release()
    assert "run_lease" not in other.user_attrs


def test_a_dead_or_expired_holder_is_taken_over(tmp_path, monkeypatch):
    import subprocess
    import sys

    from wfsearch.study import lease as lease_mod
    from wfsearch.study.lease import StudyBusy, study_lease

    study = _study(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = study_lease(study)
    gone.owner = {**gone.owner, "pid": int(dead.stdout), "token": "gone"}
    gone.acquire()
    gone._stop.set()  # a killed run: no release, no renewal
    taker = study_lease(study)
    taker.acquire()  # same machine, its process is gone: taken at once
    taker._stop.set()
    remote = study_lease(study)
    remote.owner = {"host": "elsewhere", "pid": 1, "token": "remote"}
    with pytest.raises(StudyBusy):
        remote.acquire()  # a live holder (this process) is never taken over before expiry
    monkeypatch.setattr(lease_mod, "TTL_S", -1.0)  # every lease written from now on is already expired
    taker.renew()
    remote.acquire()
    remote.release()


# ---------------------------------------------------------------- a database server that never answers (item 8)
@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_a_silent_database_server_is_named_not_waited_on(silent_server, tmp_path, monkeypatch, capsys):
    import time

    from wfsearch.study import connect

    monkeypatch.setattr(connect, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.chdir(tmp_path)
    url = f"postgresql+psycopg2://wf:pw@127.0.0.1:{silent_server}/wf"
    smoke = Path(__file__).resolve().parents[1] / "spaces" / "smoke.yaml"
    for args in (["run", smoke, "--set", f"study.storage={url}", "--no-progress"], ["show", "--storage", url]):
        t0 = time.monotonic()
        rc, out, err = run_cli(args, capsys)
        took = time.monotonic() - t0
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, (args, err)
        assert f"127.0.0.1:{silent_server} did not answer within 2 s" in lines[0], lines[0]
        assert took < 20, f"{args[0]} waited {took:.1f} s"
