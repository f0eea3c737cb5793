"""Search building blocks without Ray running: Pareto ranking, the scheduler, constraints, outcomes."""
from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from wfsearch.study import constraint_values, dominated_hypervolume, nondominated_ranks, pareto_order
from wfsearch.study.front import crowding_distances
from wfsearch.search.scheduler import ParetoSuccessiveHalving
from wfsearch.search.tune import LoopSearcher

MAXMAX = ["maximize", "maximize"]


def test_front_matches_optuna_best_trials():
    import random
    rng = random.Random(0)
    pts = [[rng.random(), rng.random() * 100] for _ in range(40)]
    study = optuna.create_study(directions=MAXMAX)
    for p in pts:
        study.add_trial(optuna.trial.create_trial(values=p))
    ours = {i for i, r in enumerate(nondominated_ranks(pts, MAXMAX)) if r == 0}
    assert ours == {t.number for t in study.best_trials}


def test_ranks_crowding_and_order():
    pts = [[0.9, 10], [0.5, 50], [0.1, 90], [0.4, 40], [0.05, 5]]
    ranks = nondominated_ranks(pts, MAXMAX)
    assert list(ranks) == [0, 0, 0, 1, 2]
    crowd = crowding_distances(pts[:3], MAXMAX)
    assert math.isinf(crowd[0]) and math.isinf(crowd[2]) and 0 < crowd[1] < math.inf
    assert pareto_order(pts, MAXMAX)[-2:] == [3, 4]
    # minimization flips the picture
    assert list(nondominated_ranks(pts, ["minimize", "minimize"]))[4] == 0


def test_hypervolume_2d():
    assert dominated_hypervolume([[1.0, 1.0]], MAXMAX, [0.0, 0.0]) == pytest.approx(1.0)
    assert dominated_hypervolume([[1.0, 2.0], [2.0, 1.0]], MAXMAX, [0.0, 0.0]) == pytest.approx(3.0)
    assert dominated_hypervolume([[1.0, 2.0], [0.5, 0.5]], MAXMAX, [0.0, 0.0]) == pytest.approx(2.0)
    assert dominated_hypervolume([], MAXMAX, [0.0, 0.0]) == 0.0


def test_scheduler_promotes_by_pareto_rank():
    s = ParetoSuccessiveHalving(rungs=[1, 3], objectives=["accuracy", "throughput"], directions=MAXMAX,
                                reduction_factor=2)
    assert s.decide("a", 1, [0.5, 100])  # first at the rung always goes on
    assert not s.decide("b", 1, [0.4, 90])  # dominated by a: bottom half
    assert s.decide("c", 1, [0.9, 200])  # dominates everything
    assert s.decide("d", 3, [0.1, 1])  # the last rung is the end: nothing to stop
    assert s.stopped == {"b": 1}
    # a non-dominated but crowded trial is kept only if the rung is large enough
    assert s.decide("e", 1, [0.95, 50])


def test_check_constraints():
    cons = [{"metric": "params", "op": "<=", "value": 1e6}, {"metric": "throughput_ratio", "op": ">=", "value": 1.2}]
    values, why = constraint_values(cons, {"params": 5e5})
    assert values == [-0.5, 0.0] and why is None
    values, why = constraint_values(cons, {"params": 2e6, "throughput_ratio": 1.0})
    assert values[0] == pytest.approx(1.0) and values[1] > 0
    assert why.startswith("params=2e+06 violates params <= 1e+06")
    values, why = constraint_values([{"metric": "macs", "op": "<", "value": 10}], {"macs": 10})
    assert values[0] > 0 and why


def _json(status, reason="", **kw) -> str:
    import json

    from wfsearch.study import Outcome

    return json.dumps(Outcome(status, reason, **kw).to_json())


@pytest.mark.parametrize("result,error,state,reason", [
    ({"final": True, "outcome": _json("ok", metrics={"accuracy": 0.5, "throughput": 10.0})}, False,
     TrialState.COMPLETE, "ok"),
    ({"epoch": 1, "outcome": _json("pruned", "pruned at epoch 1", metrics={"accuracy": 0.2})}, False,
     TrialState.PRUNED, "pruned at epoch 1"),
    ({"final": True, "outcome": _json("diverged", "diverged")}, False, TrialState.FAIL, "diverged"),
    ({"final": True, "outcome": _json("oom", "oom: CUDA out of memory")}, False, TrialState.FAIL, "oom"),
    ({"final": True, "outcome": _json("infeasible", "infeasible: params=3e7 violates params <= 1e7",
                                      metrics={"params": 3e7})}, False, TrialState.COMPLETE, "infeasible"),
    (None, True, TrialState.FAIL, "error"),
])
def test_searcher_records_state_values_and_reason(result, error, state, reason):
    from wfsearch.search.budget import DistinctBudget
    from wfsearch.search.driver import SearchLoop
    from wfsearch.search.progress import SearchProgress
    from wfsearch.study import Proposal, write_proposal

    def space(trial):  # the define-by-run function writes what the trial evaluates, as `SpaceFunction` does
        trial.suggest_float("x", 0, 1)
        write_proposal(trial, Proposal())
        return Proposal()

    study = optuna.create_study(directions=MAXMAX)
    names = ["accuracy", "throughput"]
    loop = SearchLoop(study, space, names, MAXMAX,
                      DistinctBudget(total=3), SearchProgress(total=3, objectives=names, directions=MAXMAX))
    searcher = LoopSearcher(loop)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", result, error=error)
    t = study.trials[0]
    assert t.state == state
    assert t.user_attrs["status_reason"].startswith(reason)
    assert t.user_attrs["kind"] == "search"
    if state == TrialState.COMPLETE and reason == "infeasible":
        assert t.values == [0.0, 0.0]


def test_space_function_checks_constraints_before_training():
    from pathlib import Path

    from wfsearch.search.engine import SpaceFunction, make_sampler
    from wfsearch.space import load_spec
    from wfsearch.study import Outcome, Status

    spec = load_spec(Path(__file__).parents[1] / "spaces" / "smoke.yaml", ["study.constraints=['params <= 65000']"])
    cons = [{"metric": c.metric, "op": c.op, "value": c.value} for c in spec.study.constraints]
    known = {}
    fn = SpaceFunction(spec, cons, known)
    study = optuna.create_study(directions=MAXMAX, sampler=make_sampler(spec))
    seen = {"feasible": 0, "infeasible": 0}
    from wfsearch.models import cost
    for _ in range(12):
        trial = study.ask()
        out = fn(trial)
        # constraints hold for the deployed network (throughput.img_size, 1000 classes), not the proxy
        params = cost(out.deployed)["params"]
        assert out.deployed.num_classes == 1000 and out.deployed.img_size == 32
        if params > 65000:
            assert out.infeasible.startswith("infeasible: params=") and "violates params <= 65000" in out.infeasible
            seen["infeasible"] += 1
        else:
            assert out.infeasible is None
            seen["feasible"] += 1
        constraints = trial.user_attrs["constraints"]
        assert len(constraints) == 2 and constraints[1] == 0.0  # built fine
        assert (constraints[0] > 0) == (params > 65000)
        study.tell(trial, [0.0, 0.0] if out.infeasible else [0.5, 1.0])
    assert seen["feasible"] and seen["infeasible"]
    # Optuna's fronts honour the constraints: infeasible trials are never on them
    assert all(t.user_attrs["constraints"][0] <= 0 for t in study.best_trials)
    # an architecture already evaluated comes back as a cached result, not a new training
    done = next(t for t in study.trials if t.user_attrs["constraints"][0] <= 0)
    known[done.user_attrs["arch_hash"]] = Outcome(Status.OK, metrics={"accuracy": 0.5})
    repeat = fn(optuna.trial.FixedTrial(done.params))
    assert repeat.known == Outcome(Status.OK, metrics={"accuracy": 0.5})


def test_an_architecture_in_training_is_waited_for_not_trained_again(tmp_path):
    import threading

    from wfsearch.search.engine import SpaceFunction, make_sampler
    from wfsearch.study import open_storage
    from wfsearch.search.tune import wait_for_trial
    from wfsearch.space import load_spec

    spec = load_spec(Path(__file__).parents[1] / "spaces" / "smoke.yaml",
                     ["space.fc1_predictor=[bilateral]", "space.dwconv_predictor=[adaptive]",
                      "space.rank_ratio={choice: [4]}"])
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="s", storage=open_storage(url), directions=MAXMAX,
                                sampler=make_sampler(spec))
    inflight: dict = {}
    fn = SpaceFunction(spec, [], {}, inflight)
    first, second, third = study.ask(), study.ask(), study.ask()
    a, b = fn(first), fn(second)
    assert a.wait_for is None and b.wait_for == first._trial_id
    assert inflight == {a.arch_hash: first._trial_id}

    got = {}
    waiter = threading.Thread(target=lambda: got.update(r=wait_for_trial({"storage": url, "max_epochs": 1},
                                                                          first._trial_id, poll_s=0.05)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # still RUNNING: it waits
    first.set_user_attr("status_reason", "ok")
    first.set_user_attr("metrics", {"accuracy": 0.75, "throughput": 10.0})
    study.tell(first, [0.75, 10.0])
    waiter.join(30)
    assert got["r"].status == "ok" and got["r"].metrics["accuracy"] == 0.75
    assert got["r"].reason.startswith(f"ok (same architecture as trial {first.number}")

    # a pruned (or failed) original: the waiting trial evaluates the architecture itself
    fn(third)
    study.tell(second, state=optuna.trial.TrialState.PRUNED)
    assert wait_for_trial({"storage": url}, second._trial_id) is None


def test_a_resumed_study_keeps_its_sampler(tmp_path):
    """``sampler: auto`` is resolved once, when the study is created (TPE below 100 trials), and a resumed
    study keeps it even where its new ``study.trials`` would resolve to NSGA-II."""
    from wfsearch.search.engine import prepare_study
    from wfsearch.space import load_spec

    smoke = Path(__file__).parents[1] / "spaces" / "smoke.yaml"

    def prepared(*overrides: str) -> optuna.Study:
        spec = load_spec(smoke, ["study.sampler=auto", f"study.storage=sqlite:///{tmp_path}/s.db", *overrides])
        study, _, _, lease = prepare_study(spec)
        lease.release()
        return study

    first = prepared("study.trials=20")
    assert isinstance(first.sampler, optuna.samplers.TPESampler) and first.user_attrs["sampler"]["name"] == "tpe"
    resumed = prepared("study.trials=120")
    assert isinstance(resumed.sampler, optuna.samplers.TPESampler)
    assert resumed.user_attrs["sampler"] == first.user_attrs["sampler"]
    assert isinstance(prepared("study.trials=120", "study.name=other").sampler, optuna.samplers.NSGAIISampler)


def test_a_resumed_study_draws_new_designs_instead_of_replaying_its_first_draws():
    """A new study's sampler is seeded with study.seed (reproducible); a resumed one moves its seed on by the
    trials the study holds, so a random exploration continued after a stop samples new designs."""
    from pathlib import Path

    from wfsearch.search.sampler import make_sampler
    from wfsearch.space import load_spec

    spec = load_spec(Path(__file__).parents[1] / "spaces" / "smoke.yaml", ["study.sampler=random"])

    def draws(sampler) -> list[float]:
        study = optuna.create_study(sampler=sampler)
        return [study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}).params["x"] for _ in range(5)]

    assert draws(make_sampler(spec)) == draws(make_sampler(spec))
    assert draws(make_sampler(spec, resumed_at=7)) != draws(make_sampler(spec))
