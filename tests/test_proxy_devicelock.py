"""The device lock (one measurement at a time, training steps pause for it) and steady allocations."""
from __future__ import annotations

import multiprocessing as mp
import threading

import pytest
import torch

from wfsearch.proxy import measure as M
from wfsearch.proxy.allocator import steady_allocations
from wfsearch.proxy.devicelock import DeviceLock, device_key, device_lock
from wfsearch.space import ThroughputSpec

fcntl = pytest.importorskip("fcntl")


def _hold_exclusive(directory, entered, release):
    with DeviceLock("cpu", directory).exclusive():
        entered.set()
        release.wait(30)


def _events(tmp_path):
    ctx = mp.get_context("fork")  # the child only holds a lock: no torch work after the fork
    entered, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_exclusive, args=(str(tmp_path), entered, release))
    return proc, entered, release


@pytest.mark.parametrize("mode", ["shared", "exclusive"])  # a training step; a second measurement
def test_waits_for_a_measurement_in_another_process(tmp_path, mode):
    proc, entered, release = _events(tmp_path)
    proc.start()
    try:
        assert entered.wait(60)
        done = threading.Event()

        def take():
            with getattr(DeviceLock("cpu", tmp_path), mode)():
                done.set()

        threading.Thread(target=take, daemon=True).start()
        assert not done.wait(0.5), f"a {mode} holder ran inside another process's measurement"
        release.set()
        assert done.wait(30), "it never ran after the measurement"
    finally:
        release.set()
        proc.join(30)


def test_a_measurement_waits_for_the_step_in_flight_and_steps_share(tmp_path):
    lock_a, lock_b, meter = DeviceLock("cpu", tmp_path), DeviceLock("cpu", tmp_path), DeviceLock("cpu", tmp_path)
    order = []
    with lock_a.shared():
        with lock_b.shared():  # two trainers' steps overlap freely
            pass

        trying, entered = threading.Event(), threading.Event()

        def measure():
            trying.set()
            with meter.exclusive():
                entered.set()
                order.append("measurement")

        t = threading.Thread(target=measure, daemon=True)
        t.start()
        assert trying.wait(30)  # the measurement asks for the device while the step holds it
        assert not entered.wait(0.3), "a measurement entered during a step"
        order.append("step ends")
    assert entered.wait(30), "the measurement never ran after the step"
    t.join(30)
    assert order == ["step ends", "measurement"]


def test_a_dead_measurer_releases_the_device(tmp_path):
    proc, entered, _ = _events(tmp_path)
    proc.start()
    assert entered.wait(60)
    proc.kill()
    proc.join(30)
    got = threading.Event()
    t = threading.Thread(target=lambda: (DeviceLock("cpu", tmp_path).shared().__enter__(), got.set()), daemon=True)
    t.start()
    assert got.wait(10)


def test_device_keys_and_one_lock_object_per_device(tmp_path, monkeypatch):
    monkeypatch.setenv("WFSEARCH_LOCK_DIR", str(tmp_path))
    assert device_key("cpu") == "cpu"
    assert device_lock("cpu") is device_lock(torch.device("cpu"))
    with device_lock("cpu").exclusive():
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu.data.lock", "cpu.gate.lock"]


def test_measure_arch_takes_the_device_exclusively(tmp_path, monkeypatch):
    from wfsearch.models import ArchConfig
    from wfsearch.proxy.cache import MeasureCache

    monkeypatch.setenv("WFSEARCH_LOCK_DIR", str(tmp_path))
    seen = []
    real = M.measure_throughput

    def probe(*a, **k):
        lock = DeviceLock("cpu", tmp_path)  # another "process" tries a training step meanwhile
        fd = lock._fd("data")
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            seen.append("free")
        except BlockingIOError:
            seen.append("held")
        finally:
            lock.close()
        return real(*a, **k)

    monkeypatch.setattr(M, "measure_throughput", probe)
    arch = ArchConfig(img_size=32, patch_size=4, embed_dim=16, depth=2, num_classes=4)
    s = ThroughputSpec(img_size=32, batch_size=2, reference=None, device="cpu", warmup=0, repeats=1, iters=1)
    M.measure_arch(arch, s, cache=MeasureCache(), memory=False)
    M.measure_arch(arch, s.model_copy(update={"exclusive": False}), cache=MeasureCache(), memory=False)
    assert seen == ["held", "free"]


def test_steady_allocations_is_idempotent_on_glibc():
    import platform

    first = steady_allocations()
    assert steady_allocations() is first
    if platform.libc_ver()[0] == "glibc":
        assert first is True
