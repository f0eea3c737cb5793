"""`wfsearch.study`: the trial record and its status, the one front, hypervolume, constraints, light imports."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from wfsearch.study import (Outcome, Proposal, Status, TrialRecord, constraint_values, dominated_hypervolume,
                            hypervolume_history, known_results, nondominated_ranks, pareto_front, read_records,
                            reference_point, tell, write_proposal)
from wfsearch.study.front import on_front

REPO = Path(__file__).resolve().parents[1]
MAXMAX = ("maximize", "maximize")


def _trial(number: int, values, reason: str = "ok", state=TrialState.COMPLETE, **attrs) -> optuna.trial.FrozenTrial:
    t = create_trial(state=state, values=values, user_attrs={"kind": "search", "status_reason": reason, **attrs})
    t.number = number
    return t


@pytest.mark.parametrize("reason, state, status", [
    ("ok", TrialState.COMPLETE, Status.OK),
    ("ok (same architecture as trial 3, not trained again)", TrialState.COMPLETE, Status.OK),
    ("pruned at epoch 2", TrialState.PRUNED, Status.PRUNED),
    ("diverged (loss nan at step 7)", TrialState.FAIL, Status.DIVERGED),
    ("oom: CUDA out of memory", TrialState.FAIL, Status.OOM),
    ("infeasible: params=2e+06 violates params <= 1e+06", TrialState.COMPLETE, Status.INFEASIBLE),
    ("error: RuntimeError: boom", TrialState.FAIL, Status.ERROR),
    ("interrupted: the run stopped while it was running", TrialState.FAIL, Status.INTERRUPTED),
    ("", TrialState.FAIL, Status.ERROR),
])
def test_status_of_old_reason_texts(reason, state, status) -> None:
    """Studies written before the ``status`` attribute read their status from ``status_reason``."""
    values = [0.5, 100.0] if state == TrialState.COMPLETE else None
    r = TrialRecord.from_trial(_trial(0, values, reason, state))
    assert r.status is status and status.state == state
    assert r.trained == (status is Status.OK)


def test_record_round_trips_through_the_writer() -> None:
    """What `write_proposal` and `tell` store, `TrialRecord.from_trial` reads back; the JSON pairs round-trip."""
    from wfsearch.arch import ArchConfig

    arch = ArchConfig(img_size=32, patch_size=4, embed_dim=16, depth=2, num_classes=4)
    proposal = Proposal(arch=arch, deployed=arch.replace(embed_dim=192), proxy={"img_size": 32},
                        constraints={"params <= 1e+06": -1.0, "buildable": 0.0})
    outcome = Outcome(Status.OK, metrics={"accuracy": 0.5, "throughput": 100.0, "throughput_interval": [90.0, 110.0]},
                      costs={"params": 10}, curve=[{"epoch": 1, "accuracy": 0.5, "loss": 1.0}]).scored(
                          ["accuracy", "throughput"], MAXMAX)
    assert Proposal.from_json(proposal.to_json()) == proposal and Outcome.from_json(outcome.to_json()) == outcome
    study = optuna.create_study(directions=list(MAXMAX))
    trial = study.ask()
    write_proposal(trial, proposal)
    r = TrialRecord.from_trial(tell(study, trial, outcome))
    assert (r.kind, r.arch, r.arch_hash, r.deployed_arch, r.proxy, r.constraints) == \
        ("search", arch.to_dict(), arch.hash, arch.replace(embed_dim=192).to_dict(), {"img_size": 32}, (-1.0, 0.0))
    assert r.outcome == outcome and r.trial.user_attrs["status"] == "ok" and r.values == (0.5, 100.0)
    assert r.numbers(["accuracy", "throughput"]) == {"params": 10.0, "accuracy": 0.5, "throughput": 100.0}
    # a violated constraint (Optuna's own or the engine's) makes a COMPLETE trial infeasible
    assert TrialRecord.from_trial(_trial(4, [0.9, 900.0], constraints=[0.2])).status is Status.INFEASIBLE


def test_front_is_one_point_per_architecture_and_skips_untrained() -> None:
    trials = [_trial(0, [0.6, 800.0], arch_hash="a"), _trial(1, [0.4, 1500.0], arch_hash="b"),
              _trial(2, [0.6, 800.0], arch_hash="a"),  # the same architecture again: not a second point
              _trial(3, [0.5, 700.0], arch_hash="c"),  # dominated by 0
              _trial(4, [0.0, 5000.0], "infeasible: too big", arch_hash="d"),
              _trial(5, None, "pruned at epoch 1", TrialState.PRUNED, arch_hash="e"),
              _trial(6, [0.6, 800.0], arch_hash="f")]  # equal values, another architecture: on the front too
    front = pareto_front([TrialRecord.from_trial(t) for t in trials], MAXMAX)
    assert [r.number for r in front] == [0, 1, 6]
    scratch = optuna.create_study(directions=list(MAXMAX))
    for t in trials:
        if t.number in (0, 1, 3, 6):
            scratch.add_trial(create_trial(values=t.values, user_attrs={"n": t.number}))
    assert {t.user_attrs["n"] for t in scratch.best_trials} == {0, 1, 6}  # Optuna agrees
    # trained and pruned architectures are known (a re-sample gets the same outcome); infeasible ones are not
    assert set(known_results([TrialRecord.from_trial(t) for t in trials])) == {"a", "b", "c", "e", "f"}


def test_front_and_hypervolume_history_of_10000_trials() -> None:  # their time: benchmarks/timings.py
    rng = np.random.default_rng(0)
    values = rng.random((10_000, 2)).tolist()
    records = [TrialRecord(number=i, state=TrialState.COMPLETE, status=Status.OK, reason="ok", values=tuple(v),
                           arch_hash=str(i)) for i, v in enumerate(values)]
    front = pareto_front(records, MAXMAX)
    history = hypervolume_history(values, MAXMAX, (0.0, 0.0))
    loss = -np.asarray(values)
    best = loss[[r.number for r in front]]
    assert not np.any([np.all(p <= best, axis=1) & np.any(p < best, axis=1) for p in loss])  # nothing beats it
    assert all(np.any(np.all(best <= p, axis=1)) for p in loss[::7])  # and it covers every point
    assert history[-1] == pytest.approx(dominated_hypervolume([r.values for r in front], MAXMAX, (0.0, 0.0)))
    assert history == sorted(history)
    some = values[:50]
    assert hypervolume_history(some, MAXMAX, (0.0, 0.0))[-1] == pytest.approx(dominated_hypervolume(some, MAXMAX, (0.0, 0.0)))


def test_ranks_hypervolume_and_reference_point() -> None:
    assert list(nondominated_ranks([[1, 1], [2, 2], [0, 3], [1, 0.5]], MAXMAX)) == [1, 0, 0, 2]
    assert list(on_front([[1, 5], [2, 5], [1, 5]], ("minimize", "maximize"))) == [True, False, True]
    assert dominated_hypervolume([[0.5, 10.0]], ("maximize", "minimize"), (0.0, 20.0)) == pytest.approx(5.0)
    assert reference_point(("maximize", "minimize"), [(0.5, 10.0), (0.6, 20.0)]) == (0.0, 22.0)


def test_constraint_values() -> None:
    cons = [{"metric": "params", "op": "<=", "value": 1e6}, {"metric": "throughput_ratio", "op": ">=", "value": 1.2}]
    assert constraint_values(cons, {"params": 5e5}) == ([-0.5, 0.0], None)
    values, why = constraint_values([{"metric": "macs", "op": "<", "value": 10}], {"macs": 10})
    assert values[0] > 0 and why == "macs=10 violates macs < 10"


def test_records_of_a_stored_study(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'x.db'}", directions=list(MAXMAX))
    study.add_trial(create_trial(values=[0.5, 1.0], user_attrs={"status_reason": "ok", "arch_hash": "a"}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"status": "oom", "status_reason": "oom: x"}))
    assert [(r.number, r.status) for r in read_records(study)] == [(0, Status.OK), (1, Status.OOM)]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys; {code}; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, cwd=REPO, check=True).stdout
    return set(out.split())


@pytest.mark.slow  # two fresh interpreters
def test_readers_do_not_import_ray_and_the_cli_starts_light() -> None:
    # show, report and export read a study: no Ray, and no torch or timm (the arch config and its cost are
    # `wfsearch.arch`; torch comes only with a measurement, a timm reference's MACs or `create`)
    readers = _modules_after("import wfsearch.report, wfsearch.export, wfsearch.study, wfsearch.space, "
                             "wfsearch.cli.show, wfsearch.cli.report, wfsearch.cli.export, wfsearch.cli.analyze")
    assert not readers & {"torch", "timm", "ray", "torchvision"}, readers & {"torch", "timm", "ray", "torchvision"}
    # a recipe with the released optimizer and RandAugment policy is checked without timm; another name needs it
    recipe = _modules_after("from wfsearch.export.recipe import Recipe, load_recipe, save_recipe; "
                            "import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / 'r.yaml'; "
                            "save_recipe(Recipe(), p); load_recipe(p)")
    assert not recipe & {"torch", "timm"}, recipe & {"torch", "timm"}
    assert "timm" in _modules_after("from wfsearch.export.recipe import OptimizerSection; OptimizerSection(name='lamb')")
    light = _modules_after("import wfsearch; from wfsearch.cli import build_parser; build_parser()")
    assert not light & {"torch", "timm", "optuna", "ray", "numpy", "pydantic"}, light & {"torch", "timm", "ray"}


@pytest.mark.parametrize("reason, status", [
    ("interrupted: not run, its round ended first", Status.INTERRUPTED),  # a time budget ended the round
    ("interrupted: the run stopped while it was running", Status.INTERRUPTED),
    ("the run stopped", Status.INTERRUPTED),  # a reason that names no status is stored as interrupted
])
def test_stale_trials_end_failed_with_a_status(reason: str, status: Status) -> None:
    from wfsearch.study import fail_stale_trials

    study = optuna.create_study(directions=["maximize", "maximize"])
    running = [study.ask() for _ in range(2)]
    study.tell(running[0], [0.5, 10.0])
    assert fail_stale_trials(study, reason=reason) == 1
    stale = study.trials[1]
    assert stale.state == TrialState.FAIL and stale.user_attrs["status_reason"] == reason
    assert stale.user_attrs["status"] == status.value and study.trials[0].state == TrialState.COMPLETE
