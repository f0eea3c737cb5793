"""A clean stop and one search per study: SIGINT/SIGTERM end `wfsearch run` in seconds, nothing is left
RUNNING, the run resumes; a second run on a study that a live run holds is refused; a local run listens
on loopback only."""
from __future__ import annotations

import glob
import ipaddress
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "spaces" / "smoke.yaml")
WFSEARCH = [sys.executable, "-m", "wfsearch"]
TRIALS = 4
RUN = ["run", SMOKE, "--set", f"study.trials={TRIALS}", "--set", "references=[]", "--no-progress"]
STOP_WITHIN_S = 30  # Tune ends the round and Ray shuts down; measured 10-20 s on a loaded 2-core machine
pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- listening sockets from /proc
def _ip(hexip: str) -> str:
    b = bytes.fromhex(hexip)
    if len(b) == 4:
        return socket.inet_ntop(socket.AF_INET, b[::-1])
    return socket.inet_ntop(socket.AF_INET6, b"".join(b[i:i + 4][::-1] for i in range(0, 16, 4)))


def process_tree(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = open(stat).read()
        except OSError:
            continue
        pid, ppid = int(text.split()[0]), int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(children.get(p, []))
    return out


def listening_sockets(pids: set[int]) -> list[tuple[str, str, int, str]]:
    """(protocol, address, port, process name) of every TCP listener and bound UDP socket of ``pids``."""
    owner: dict[str, int] = {}
    for pid in pids:
        for fd in glob.glob(f"/proc/{pid}/fd/*"):
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                owner[link[8:-1]] = pid
    out = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            rows = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[9] not in owner or (proto.startswith("tcp") and f[3] != "0A"):  # 0A: LISTEN
                continue
            ip, port = f[1].split(":")
            try:
                name = Path(f"/proc/{owner[f[9]]}/comm").read_text().strip()
            except OSError:
                name = "?"
            out.append((proto, _ip(ip), int(port, 16), name))
    return out


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


# ---------------------------------------------------------------- helpers
def states(db: Path) -> dict[str, int]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict[str, int] = {}
    for t in optuna.load_study(study_name="smoke", storage=f"sqlite:///{db}").trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def start_run(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(WFSEARCH + RUN, cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_until_training(proc: subprocess.Popen, db: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            with sqlite3.connect(db, timeout=5) as con:
                if con.execute("SELECT COUNT(*) FROM trials WHERE state='RUNNING'").fetchone()[0]:
                    return
        except sqlite3.OperationalError:  # not created yet
            continue
    out, err = proc.communicate(timeout=60) if proc.poll() is not None else ("", "")
    raise AssertionError(f"no trial started training (rc {proc.poll()}): {err[-2000:]}")


def stop_with(proc: subprocess.Popen, signum: int) -> tuple[float, str]:
    t0 = time.monotonic()
    os.kill(proc.pid, signum)  # the driver only, as Ctrl-C in a terminal or a job scheduler's SIGTERM
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"{signal.Signals(signum).name}: the run did not stop within 120 s")
    return time.monotonic() - t0, err


def assert_interrupted_cleanly(db: Path, err: str, signame: str) -> None:
    counts = states(db)
    assert "RUNNING" not in counts and "WAITING" not in counts, counts
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{db}")
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed and all(t.user_attrs["status_reason"].startswith(f"interrupted: the run was stopped ({signame})")
                          for t in failed)
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"wfsearch: interrupted by {signame}: ") and "resume with: wfsearch run " in last, err[-2000:]
    assert "Traceback" not in err and "SIGABRT" not in err and "core dumped" not in err, err[-3000:]


# ---------------------------------------------------------------- tests
@pytest.mark.timeout(1200)
def test_sigint_stops_in_seconds_on_loopback_and_resumes(tmp_path):
    """Ctrl-C mid-search: exit 130 within seconds, the running trials marked interrupted, how to resume
    printed; during the run every listening socket of the run's processes is on loopback; resuming
    finishes the study with every trial counted once."""
    db = tmp_path / "studies" / "smoke" / "optuna.db"
    proc = start_run(tmp_path)
    try:
        wait_until_training(proc, db)
        sockets = listening_sockets(process_tree(proc.pid))
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert any(name in ("gcs_server", "raylet") for _, _, _, name in sockets), sockets  # Ray is up: checked for real
    exposed = [s for s in sockets if not is_loopback(s[1])]
    assert not exposed, f"listening outside loopback during a local run: {exposed}"

    seconds, err = stop_with(proc, signal.SIGINT)
    assert proc.returncode == 130, err[-3000:]
    assert seconds < STOP_WITHIN_S, f"SIGINT took {seconds:.1f} s"
    assert_interrupted_cleanly(db, err, "SIGINT")

    res = subprocess.run(WFSEARCH + RUN, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = states(db)
    assert "RUNNING" not in counts, counts
    # the budget counts distinct architectures (a re-sample is told its known result but does not count)
    from wfsearch.search.engine import distinct_budget
    from wfsearch.space import load_spec
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{db}")
    assert distinct_budget(load_spec(SMOKE, [f"study.trials={TRIALS}", "references=[]"]), study).count == TRIALS, counts


@pytest.mark.timeout(900)
def test_sigterm_stops_in_seconds_and_a_second_run_is_refused(tmp_path):
    """While a run holds the study a second `wfsearch run` on it is refused with one line (the lease lives
    in the storage, so this holds across machines too); SIGTERM then stops the first run with 143."""
    db = tmp_path / "studies" / "smoke" / "optuna.db"
    proc = start_run(tmp_path)
    try:
        wait_until_training(proc, db)
        t0 = time.monotonic()
        second = subprocess.run(WFSEARCH + RUN, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        refused_in = time.monotonic() - t0
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr[-3000:]
    assert "is being searched by another run" in lines[0] and f"pid {proc.pid}" in lines[0], lines
    assert proc.poll() is None, refused_in  # the first run goes on

    seconds, err = stop_with(proc, signal.SIGTERM)
    assert proc.returncode == 143, err[-3000:]
    assert seconds < STOP_WITHIN_S, f"SIGTERM took {seconds:.1f} s"
    assert_interrupted_cleanly(db, err, "SIGTERM")
