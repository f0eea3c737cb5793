"""`wfsearch run` end to end: real Ray, real Optuna storage (SQLite, PostgreSQL), kill and resume."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from services import free_port, postgres_server

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "spaces" / "smoke.yaml")
WFSEARCH = [sys.executable, "-m", "wfsearch"]
pytestmark = pytest.mark.slow


def run_cli(args: list[str], cwd: Path, timeout: float = 300, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_extra}
    return subprocess.run(WFSEARCH + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def load(url: str, name: str = "smoke") -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=url)


def states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def test_run_resume_and_fresh(tmp_path):
    res = run_cli(["run", SMOKE, "--set", "study.trials=3", "--no-progress"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    url = f"sqlite:///{tmp_path}/studies/smoke/optuna.db"
    study = load(url)
    # study attributes: everything needed to rebuild a trial without the YAML
    assert study.metric_names == ["accuracy", "throughput"]
    attrs = study.user_attrs
    assert attrs["spec"]["study"]["name"] == "smoke" and len(attrs["spec_hash"]) == 12
    assert attrs["wfsearch_version"] and attrs["hardware"]["cpu_count"] >= 1
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 3
    from wfsearch.models import ArchConfig, build
    for t in done:
        a = t.user_attrs
        arch = ArchConfig.from_dict(a["arch"])
        assert arch.hash == a["arch_hash"] and build(arch) is not None
        assert a["status_reason"].startswith("ok") and a["kind"] == "search"
        assert 0 <= t.values[0] <= 1 and t.values[1] > 0
        assert a["metrics"]["throughput_ratio"] > 0 and a["costs"]["params"] == a["metrics"]["params"]
        assert [c["epoch"] for c in a["curve"]] == [1]
    refs = load(url, "smoke:references").trials
    assert [r.user_attrs["reference_name"] for r in refs] == ["all_static"]
    # the summary names the outputs
    assert "on the front" in res.stdout and "storage: sqlite" in res.stdout and "reference" in res.stdout
    assert "next:    wfsearch show studies/smoke   |   wfsearch report studies/smoke" in res.stdout  # as typed
    # export is offered for the most accurate front trial, unless every front trial is at chance (flagged)
    assert "   |   wfsearch export studies/smoke --trial " in res.stdout or res.stdout.count("    at chance: ") == \
        sum(1 for line in res.stdout.split("references")[0].splitlines() if line[:1].isdigit())
    log = (tmp_path / "studies" / "smoke" / "run.log").read_text()
    assert log.count("run started: study smoke") == 1 and log.count("run ended: 3 distinct") == 1
    assert all(f"trial {n} complete: ok" in log for n in range(3)) and "phase: starting Ray" in log

    # the same command again: the budget is already spent, nothing is trained twice
    res = run_cli(["run", SMOKE, "--set", "study.trials=3", "--no-progress"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    again = load(url)
    assert [t.values for t in again.get_trials(states=(TrialState.COMPLETE,))] == [t.values for t in done]
    assert len(load(url, "smoke:references").trials) == 1  # references are evaluated once per study
    log = (tmp_path / "studies" / "smoke" / "run.log").read_text()
    assert log.count("run started: study smoke") == 2  # the log of every run, appended

    # --fresh keeps the old study under another name
    res = run_cli(["run", SMOKE, "--set", "study.trials=1", "--fresh", "--no-progress"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    names = {s.study_name for s in optuna.get_all_study_summaries(url)}
    archived = [n for n in names if n.startswith("smoke-") and not n.endswith(":references")]
    assert len(archived) == 1 and len(load(url, archived[0]).trials) == 3
    assert len(load(url).get_trials(states=(TrialState.COMPLETE,))) == 1


def test_an_architecture_sampled_twice_at_once_is_trained_once(tmp_path):
    # one architecture in the whole space, two trials at a time: the second waits for the first
    one_arch = ["--set", "space.fc1_predictor=[bilateral]", "--set", "space.dwconv_predictor=[adaptive]",
                "--set", "space.rank_ratio={choice: [4]}", "--set", "study.trials=3", "--set", "references=[]"]
    res = run_cli(["run", SMOKE, "--no-progress", *one_arch], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    # the budget counts distinct architectures: the space has one, so the search stops after it
    assert "the space has 1 distinct architecture and all 1 are evaluated" in res.stdout
    done = load(f"sqlite:///{tmp_path}/studies/smoke/optuna.db").get_trials(states=(TrialState.COMPLETE,))
    assert len(done) >= 1 and len({t.user_attrs["arch_hash"] for t in done}) == 1
    trained = [t for t in done if t.user_attrs["status_reason"] == "ok"]
    assert len(trained) == 1, [t.user_attrs["status_reason"] for t in done]
    for t in done:
        if t is not trained[0]:
            assert t.user_attrs["status_reason"].startswith(f"ok (same architecture as trial {trained[0].number}")
            assert t.values == trained[0].values


def test_budget_counts_distinct_architectures_and_stops_when_the_space_is_exhausted(tmp_path):
    two_archs = ["--set", "space.fc1_predictor=[none]", "--set", "space.dwconv_predictor=[none, adaptive]",
                 "--set", "space.rank_ratio=null", "--set", "references=[]", "--no-progress"]
    res = run_cli(["run", SMOKE, "--set", "study.trials=1", *two_archs], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "1 distinct architectures finished" in res.stdout and "the space has" not in res.stdout
    # resumed with a budget larger than the space: the second architecture, once, then the clear line
    res = run_cli(["run", SMOKE, "--set", "study.trials=4", *two_archs], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "the space has 2 distinct architectures and all 2 are evaluated, fewer than study.trials = 4" in res.stdout
    assert "2 distinct architectures finished" in res.stdout
    study = load(f"sqlite:///{tmp_path}/studies/smoke/optuna.db")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    trained = [t for t in done if t.user_attrs["status_reason"] == "ok"]
    assert len(trained) == 2 and len({t.user_attrs["arch_hash"] for t in trained}) == 2
    repeats = [t for t in done if t not in trained]
    assert all("same architecture as trial" in t.user_attrs["status_reason"] for t in repeats)
    assert all(not t.user_attrs.get("intervals") for t in done)  # intervals are stored as metrics
    assert all("accuracy_low" in t.user_attrs["metrics"] for t in trained)
    assert study.user_attrs["hypervolume_box"]["objectives"] == ["accuracy", "throughput"]
    assert study.user_attrs["throughput_scale"]["reference"] == "deit_tiny_patch16_224"


def test_kill_and_resume(tmp_path):
    """SIGKILL the driver mid-study, resume: nothing finished is lost, nothing left RUNNING, count right."""
    trials = 6
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(WFSEARCH + ["run", SMOKE, "--set", f"study.trials={trials}", "--no-progress"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    db = tmp_path / "studies" / "smoke" / "optuna.db"
    # distinct finished search architectures: re-samples (told their known result at once) and the
    # reference trials do not count, so the count moves only as fast as training, never in a burst
    query = ("SELECT COUNT(DISTINCT h.value_json) FROM trials t "
             "JOIN studies s USING (study_id) "
             "JOIN trial_user_attributes k ON k.trial_id = t.trial_id AND k.key = 'kind' "
             "JOIN trial_user_attributes h ON h.trial_id = t.trial_id AND h.key = 'arch_hash' "
             "WHERE s.study_name = 'smoke' AND t.state = 'COMPLETE' AND k.value_json = '\"search\"'")
    deadline = time.monotonic() + 240
    distinct = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if not db.exists():
                continue
            try:  # reading while the run writes must work (WAL)
                with sqlite3.connect(db, timeout=5) as con:
                    distinct = con.execute(query).fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if distinct >= 1:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash would
        proc.wait()
    assert 1 <= distinct < trials, "the run should be killed mid-study"
    url = f"sqlite:///{db}"
    before = {t.number: t.values for t in load(url).get_trials(states=(TrialState.COMPLETE,))}

    res = run_cli(["run", SMOKE, "--set", f"study.trials={trials}", "--no-progress"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    study = load(url)
    counts = states(study)
    assert "RUNNING" not in counts
    # the budget counts distinct architectures (a re-sample is told its known result but does not count)
    from wfsearch.search.engine import distinct_budget
    from wfsearch.space import load_spec
    assert distinct_budget(load_spec(SMOKE, [f"study.trials={trials}"]), study).count == trials
    after = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert all(after[n] == v for n, v in before.items())  # nothing finished is lost
    for t in study.get_trials(states=(TrialState.FAIL,)):
        assert t.user_attrs["status_reason"].startswith("interrupted")


def test_postgres_storage(tmp_path):
    with postgres_server() as url:
        if url is None:
            pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
        res = run_cli(["run", SMOKE, "--set", "study.trials=2", "--set", f"study.storage={url}",
                       "--no-progress"], tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        study = load(url)
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
        assert study.user_attrs["spec"]["study"]["storage"] == url


def test_joins_an_existing_ray_cluster(tmp_path):
    ray = str(Path(sys.executable).parent / "ray")
    port = free_port()
    # keep the cluster on loopback: Ray otherwise resolves 127.0.0.1 to the machine's own address
    loopback = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env = {**os.environ, "RAY_ADDRESS": "", **loopback}
    start = subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                            "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        res = run_cli(["run", SMOKE, "--set", "study.trials=2", "--address", f"127.0.0.1:{port}",
                       "--no-progress"], tmp_path, **loopback)
        assert res.returncode == 0, res.stderr[-3000:]
        study = load(f"sqlite:///{tmp_path}/studies/smoke/optuna.db")
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


def test_bad_address_is_one_line(tmp_path):
    res = run_cli(["run", SMOKE, "--address", f"127.0.0.1:{free_port()}", "--no-progress"], tmp_path, timeout=180)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.startswith("wfsearch: error")]
    assert len(lines) == 1 and "--address" in lines[0] and "Traceback" not in res.stderr


def test_known_designs_are_evaluated_first_once(tmp_path):
    """--enqueue: Optuna's enqueue_trial for the search; a design the study holds is not queued again."""
    (tmp_path / "known.yaml").write_text("- {fc1_predictor: none, dwconv_predictor: adaptive}\n")
    args = ["run", SMOKE, "--set", "study.trials=1", "--set", "references=[]", "--no-progress", "--enqueue", "known.yaml"]
    res = run_cli(args, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    study = load(f"sqlite:///{tmp_path}/studies/smoke/optuna.db")
    assert [t.params for t in study.trials] == [{"fc1_predictor": "none", "dwconv_predictor": "adaptive"}]
    res = run_cli([*args[:3], "study.trials=2", *args[4:]], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(load(f"sqlite:///{tmp_path}/studies/smoke/optuna.db").trials) >= 2
    assert sum(t.params == {"fc1_predictor": "none", "dwconv_predictor": "adaptive"} and t.user_attrs["status_reason"]
               == "ok" for t in load(f"sqlite:///{tmp_path}/studies/smoke/optuna.db").trials) == 1
    (tmp_path / "bad.yaml").write_text("- {fc1_predictor: deep}\n")
    res = run_cli(["run", SMOKE, "--enqueue", "bad.yaml"], tmp_path)
    assert res.returncode == 2 and res.stderr.strip() == (
        "wfsearch: error: bad.yaml: [0].fc1_predictor: 'deep': not one of the space's choices ['none', 'bilateral']")
