"""Big studies stay cheap: fronts against brute force, the incremental progress front."""
from __future__ import annotations

import numpy as np
import pytest


def brute_front(values: np.ndarray, directions: list[str]) -> set[int]:
    """Indices of the points no other point dominates (O(N^2), for checking)."""
    loss = values * np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    le = np.all(loss[:, None, :] <= loss[None, :, :], axis=2)  # le[q, p]: q no worse than p everywhere
    lt = np.any(loss[:, None, :] < loss[None, :, :], axis=2)
    dominated = np.any(le & lt, axis=0)
    return set(np.flatnonzero(~dominated).tolist())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("directions", [["maximize", "maximize"], ["maximize", "minimize"]])
def test_progress_front_is_the_brute_force_front(seed, directions):
    from wfsearch.search.progress import SearchProgress

    rng = np.random.default_rng(seed)
    values = np.round(rng.random((300, 2)), 2)  # rounded: ties and repeated points
    prog = SearchProgress(total=300, objectives=["accuracy", "throughput"], directions=directions)
    for i, v in enumerate(values):
        prog.add_point(v.tolist(), arch_hash=f"a{i}")
        prog.add_point((v * 0.5).tolist(), arch_hash=f"a{i}")  # a repeat of an architecture: ignored
    expect = {tuple(values[i]) for i in brute_front(values, directions)}
    assert {tuple(p) for p in prog.front()} == expect
    assert prog.n_points == 300
    j = 1
    best = values[:, j].max() if directions[j] == "maximize" else values[:, j].min()
    assert prog.best("throughput") == pytest.approx(best)


@pytest.mark.parametrize("n,seed", [(1, 0), (50, 1), (2000, 2), (2000, 3)])
def test_front_and_ranks_match_brute_force(n, seed):
    from wfsearch.study.front import nondominated_ranks, on_front

    rng = np.random.default_rng(seed)
    values = np.round(rng.random((n, 2)), 2)
    directions = ["maximize", "minimize"]
    mask = on_front(values.tolist(), directions)
    assert set(np.flatnonzero(mask).tolist()) == brute_front(values, directions)
    ranks = nondominated_ranks(values.tolist(), directions)
    assert set(np.flatnonzero(ranks == 0).tolist()) == brute_front(values, directions)
    rest = np.flatnonzero(ranks > 0)  # rank 1 is the front of what is left
    assert {int(rest[i]) for i in brute_front(values[rest], directions)} == set(np.flatnonzero(ranks == 1).tolist())




def test_read_trials_equals_optuna(tmp_path):
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    from wfsearch.study.rows import read_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'x.db'}", study_name="x",
                                directions=["maximize", "minimize"])
    dists = {"a": CategoricalDistribution(["none", "bilateral"]), "lr": FloatDistribution(1e-4, 1.0, log=True)}
    for i in range(20):
        state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL][i % 3]
        study.add_trial(create_trial(
            state=state, values=[i / 20, float("inf") if i == 3 else i] if state == TrialState.COMPLETE else None,
            params={"a": ["none", "bilateral"][i % 2], "lr": 0.01 * (i + 1)}, distributions=dists,
            user_attrs={"metrics": {"accuracy": i / 20}, "curve": [{"epoch": 1}], "kind": "search"},
            system_attrs={"constraints": [0.0]}))
    loaded = optuna.load_study(study_name="x", storage=f"sqlite:///{tmp_path / 'x.db'}")
    want = loaded.get_trials(deepcopy=False)
    got = read_trials(loaded, system_attrs=None)
    fields = ("number", "state", "values", "params", "distributions", "user_attrs", "system_attrs",
              "datetime_start", "datetime_complete", "_trial_id")
    assert [[getattr(t, f) for f in fields] for t in got] == [[getattr(t, f) for f in fields] for t in want]
    some = read_trials(loaded, states=(TrialState.COMPLETE,), user_attrs={"metrics"})
    assert [t.number for t in some] == [t.number for t in want if t.state == TrialState.COMPLETE]
    assert all(set(t.user_attrs) == {"metrics"} and t.system_attrs == {} for t in some)
