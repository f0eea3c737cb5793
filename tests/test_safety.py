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
