"""One search loop, two evaluators: the same spec run with Ray Tune trainings and with the table replay,
against one recorded result, stores the same trials, field by field."""
from __future__ import annotations

import statistics
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from test_simulate import TABLE_SPEC, write_table
from wfsearch.search.driver import evaluate_references, search_loop
from wfsearch.search.sampler import SAMPLER_ATTR, make_sampler, resolve_sampler
from wfsearch.search.simulate import TableEvaluator, simulate, table_machine
from wfsearch.search.table import load_table
from wfsearch.space import load_spec
from wfsearch.study import set_study_attrs, write_header

pytestmark = pytest.mark.slow  # a local Ray cluster


def _stored(study: optuna.Study) -> list[tuple]:
    """Every stored field of every trial but the evaluator's own record (``simulated``) and the clock."""
    return [(t.number, t.state, t.values, t.params, t.distributions, t.system_attrs,
             {k: v for k, v in t.user_attrs.items() if k != "simulated"}) for t in study.trials]


def test_tune_and_table_evaluators_store_the_same_trials(tmp_path: Path) -> None:
    import ray

    from wfsearch.search.engine import init_ray
    from wfsearch.search.stop import StopOnSignal
    from wfsearch.search.tune import TuneEvaluator

    spec = load_spec(TABLE_SPEC, ["study.trials=8", "study.sampler=tpe", "resources.max_concurrent=1"])
    write_table(tmp_path / "table", spec, ratios=True)
    table = load_table(tmp_path / "table")
    simulated, summary = simulate(spec, table, workers=1)
    assert summary.pruned >= 1 and summary.complete >= 1  # both ends of a rung decision were replayed

    url = f"sqlite:///{tmp_path / 'run.db'}"
    names = [o.name for o in spec.study.objectives]
    study = optuna.create_study(study_name=spec.study.name, storage=url, directions=simulated.directions,
                                sampler=make_sampler(spec, resolve_sampler(spec)))
    write_header(study, spec, table_machine(table))
    set_study_attrs(study, **{SAMPLER_ATTR: resolve_sampler(spec)})
    settings = {"objectives": names, "storage": url, "seed_noise": None}
    init_ray(None, tmp_path)
    try:
        tune = TuneEvaluator(spec, settings, tmp_path, StopOnSignal(), evaluate=table.replay)
        tune.run(search_loop(spec, study, []))
        refs = {e: optuna.create_study(study_name=f"refs-{i}", storage=url, directions=simulated.directions)
                for i, e in enumerate((tune, TableEvaluator(table, settings, 1)))}
        for evaluator, ref_study in refs.items():
            evaluate_references(spec, ref_study, evaluator, table_machine(table))
    finally:
        ray.shutdown()

    assert len(study.trials) >= spec.study.trials and _stored(study) == _stored(simulated)
    ref_trials = [_stored(s) for s in refs.values()]
    assert ref_trials[0] == ref_trials[1] and len(ref_trials[0]) == len(spec.references)
    assert {k: v for k, v in study.user_attrs.items()} == {k: v for k, v in simulated.user_attrs.items()
                                                           if k not in ("simulated", "throughput_scale")}
    # what `run` optimizes and stores: the paired throughput (per-repeat ratio x the scale), the run of proxy.seed
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and "same architecture" not in
            t.user_attrs["status_reason"]]
    assert done
    for t in done:
        arch = table.archs[t.user_attrs["arch_hash"]]
        paired = statistics.median(arch.throughput_ratio_samples) * table.reference_img_s
        assert t.values[1] == pytest.approx(paired) and t.values[1] != pytest.approx(arch.metrics["throughput"])
        assert t.values[0] == table.runs[arch.arch_hash][spec.proxy.seed][-1].accuracy
        assert t.user_attrs["metrics"]["throughput_img_s"] == arch.metrics["throughput"]
    assert all(t.user_attrs["simulated"]["seed"] in (None, spec.proxy.seed) for t in simulated.trials)
