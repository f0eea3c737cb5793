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
    ref = prog.reference_point()
    assert ref[1] == (0.0 if directions[1] == "maximize" else pytest.approx(1.1 * values[:, 1].max()))
    from wfsearch.search.pareto import hypervolume
    assert prog.hypervolume() == pytest.approx(hypervolume(values.tolist(), directions, ref))
