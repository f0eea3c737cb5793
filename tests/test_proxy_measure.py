"""Cost measurement: params/MACs from the model library, peak memory, interleaved throughput, the cache."""
from __future__ import annotations

import json

import pytest
import torch

from wfsearch.errors import UserError
from wfsearch.models import ArchConfig, build, cost
from wfsearch.proxy import measure as M
from wfsearch.proxy.cache import MeasureCache
from wfsearch.proxy.measure import measure_arch, peak_memory_bytes, resolved_clock
from wfsearch.space import ThroughputSpec

ARCH = ArchConfig(img_size=32, patch_size=4, embed_dim=16, depth=2, num_classes=4)
TINY = ThroughputSpec(img_size=32, batch_size=2, reference="weightformer_test", device="cpu", warmup=0,
                      repeats=3, iters=1, arch={"num_classes": 4})  # deployed: ARCH as it is


pytestmark = pytest.mark.usefixtures("one_thread")


def test_measure_arch_reports_every_cost():
    c = measure_arch(ARCH, TINY, cache=MeasureCache())
    at = cost(ARCH, 32)
    assert c["params"] == at["params"] and c["macs"] == at["macs"]
    assert c["activation_bytes"] == at["activation_bytes"]
    assert c["throughput_img_s"] > 0 and c["reference_throughput"] > 0 and c["throughput_ratio"] > 0
    assert c["peak_memory_bytes"] > 4 * c["params"]  # at least the fp32 weights
    assert c["latency_highres_ms"] is None and c["device"].startswith("cpu:")
    # per-repeat values kept, each median with its 90% interval, the ratio paired repeat by repeat
    assert len(c["throughput_img_s_samples"]) == len(c["reference_samples"]) == len(c["ratio_samples"]) == 3
    assert c["ratio_samples"] == [a / b for a, b in zip(c["throughput_img_s_samples"], c["reference_samples"])]
    for key in ("throughput_img_s", "throughput_ratio", "reference_throughput"):
        iv = c[f"{key}_interval"]
        assert iv["low"] <= c[key] == iv["value"] <= iv["high"] and iv["level"] == 0.75, key


def test_timm_names_and_target_resolution():
    c = measure_arch("weightformer_test", TINY.model_copy(update={"img_size": 64, "reference": None}),
                     cache=MeasureCache())
    assert c["macs"] == cost(build(ARCH).arch.replace(embed_dim=32, depth=4, num_classes=10), 64)["macs"]
    assert c["throughput_ratio"] is None and c["activation_bytes"] is not None


def test_cache_hits_skip_measurement_and_cross_processes_through_disk(tmp_path, monkeypatch):
    first = measure_arch(ARCH, TINY, cache=tmp_path)
    files = list(tmp_path.glob("measure-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["value"]["params"] == first["params"]

    def boom(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(M, "measure_throughput", boom)
    assert measure_arch(ARCH, TINY, cache=tmp_path) == first  # this process's memory
    assert measure_arch(ARCH, TINY, cache=MeasureCache(tmp_path)) == first  # another process: the disk
    with pytest.raises(AssertionError, match="measured again"):  # a different batch is a different key
        measure_arch(ARCH, TINY.model_copy(update={"batch_size": 3}), cache=tmp_path)


def test_peak_memory_grows_with_batch_and_training():
    model = build(ARCH)
    small = peak_memory_bytes(model, 32, 2, "cpu", train=False)
    big = peak_memory_bytes(model, 32, 16, "cpu", train=False)
    step = peak_memory_bytes(model, 32, 16, "cpu", train=True)
    params = sum(p.numel() * 4 for p in model.parameters())
    assert params < small < big < step
    assert step > 4 * params  # weights, gradients and two AdamW moments


def test_highres_latency_per_image():
    s = TINY.model_copy(update={"highres": 64, "highres_batch_size": 2, "reference": None})
    c = measure_arch(ARCH, s, cache=MeasureCache())
    assert c["latency_highres_ms"] > 0


def test_the_spec_section_or_its_json_dict_and_errors():
    """A trial passes the spec's throughput section as its JSON dict: it measures the same network."""
    c = measure_arch(ARCH, TINY.model_dump(mode="json"), cache=MeasureCache())
    assert c["params"] == cost(ARCH, 32)["params"]
    plain = {**TINY.model_dump(mode="json"), "arch": {}}  # measured as given: the deployed network of `deployed`
    deployed = measure_arch(ThroughputSpec(**plain).deployed(ARCH), plain, cache=MeasureCache())
    assert deployed["params"] == cost(ARCH.replace(num_classes=1000), 32)["params"]  # ImageNet's head by default
    with pytest.raises(UserError, match=r"^spec: throughput\.batch_size: 0: Input should be greater than or equal"):
        measure_arch(ARCH, {"batch_size": 0})
    with pytest.raises(UserError, match=r"^spec: throughput\.compile: 'fast': must be one of \['none', 'default', "
                                        r"'max-autotune'\]"):
        measure_arch(ARCH, {"compile": "fast"})


class _Probe(torch.nn.Module):
    """Records the order in which the models run."""

    def __init__(self, name, calls):
        super().__init__()
        self.name, self.calls = name, calls

    def forward(self, x):
        self.calls.append(self.name)
        return x


def _order(repeats, **kw):
    calls = []
    M.measure_throughput({"a": _Probe("a", calls), "b": _Probe("b", calls)}, 8, 1, "cpu", warmup=0,
                         repeats=repeats, iters=1, **kw)
    return calls


def test_interleaved_throughput_alternates_order():
    assert _order(4, alternate=True) == ["a", "b", "b", "a", "a", "b", "b", "a"]


def test_shuffled_order_covers_both_orders_and_every_repeat():
    calls = _order(40, shuffle=True)
    pairs = [tuple(calls[i:i + 2]) for i in range(0, len(calls), 2)]
    assert len(pairs) == 40 and set(pairs) == {("a", "b"), ("b", "a")}


def test_single_threaded_cpu_uses_process_time():
    assert resolved_clock("auto", torch.device("cpu")) == "process"  # the module runs with one thread
    assert resolved_clock("wall", torch.device("cpu")) == "wall"
    assert resolved_clock("auto", torch.device("cuda")) == "wall"
    c = measure_arch(ARCH, TINY, cache=MeasureCache())
    assert c["clock"] == "process"
    with pytest.raises(UserError, match="throughput.clock"):
        measure_arch(ARCH, {"clock": "sundial"})


def test_freed_heap_pages_go_back_to_the_os_after_a_measurement():
    """glibc keeps freed heap pages under steady_allocations; release_memory gives them back (malloc_trim), and
    measure_arch calls it when it is done, so a worker measuring one architecture after another stays bounded."""
    from wfsearch.proxy import allocator

    if allocator._glibc() is None:
        pytest.skip("not glibc")
    allocator.steady_allocations()
    blocks = [torch.ones(256 * 1024) for _ in range(200)]  # 1 MiB each: below the mmap threshold, on the heap
    del blocks
    assert allocator.release_memory() is True
    calls = []
    import wfsearch.proxy.measure as measure

    original = measure.release_memory
    measure.release_memory = lambda: calls.append(1) or original()
    try:
        measure_arch(ARCH, TINY.model_copy(update={"reference": None}), cache=MeasureCache())
    finally:
        measure.release_memory = original
    assert calls == [1]
