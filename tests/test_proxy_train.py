"""The proxy trainer: determinism, per-epoch reports, pruning, divergence and out-of-memory as statuses."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from wfsearch.errors import UserError
from wfsearch.models import ArchConfig, build
from wfsearch.proxy.data import load_dataset
from wfsearch.proxy.train import seed_everything, train_proxy
from wfsearch.space import DatasetSpec, ProxySpec, spec_from_dict


pytestmark = pytest.mark.usefixtures("one_thread")


ARCH = ArchConfig(img_size=16, patch_size=4, embed_dim=16, depth=2, num_classes=4, dynamic_blocks="all")
FAST = ProxySpec(epochs=2, batch_size=32, warmup_epochs=0.5, device="cpu")


@pytest.fixture(scope="module")
def data():
    return load_dataset(ProxySpec(img_size=16, dataset=DatasetSpec(train_size=128, val_size=64)))


def _run(data, settings=FAST, report=None, seed=0):
    seed_everything(seed)
    return train_proxy(build(ARCH), data, settings, report)


def test_same_seed_same_accuracy_on_cpu(data):
    a, b = _run(data), _run(data)
    assert a.status == "ok" and a.epochs == 2
    assert [c["accuracy"] for c in a.curve] == [c["accuracy"] for c in b.curve]
    assert [c["loss"] for c in a.curve] == [c["loss"] for c in b.curve]
    c = _run(data, FAST.model_copy(update={"seed": 1}), seed=1)
    assert [x["loss"] for x in c.curve] != [x["loss"] for x in a.curve]


def test_reports_every_epoch_and_warms_up_then_decays(data):
    seen = []
    res = _run(data, FAST.model_copy(update={"epochs": [3]}), report=lambda e, m: seen.append((e, m)))
    assert [e for e, _ in seen] == [1, 2, 3]
    for _, m in seen:
        assert 0.0 <= m["accuracy"] <= 1.0 and m["loss"] > 0
    lrs = [m["lr"] for _, m in seen]
    assert lrs[0] > lrs[-1]
    assert res.images_per_s > 0 and res.train_images == 3 * 128


def test_report_true_prunes(data):
    res = _run(data, report=lambda e, m: e >= 1)
    assert res.status == "pruned" and res.reason == "pruned at epoch 1" and len(res.curve) == 1


class Broken(nn.Module):
    def __init__(self, exc=None):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.exc = exc

    def forward(self, x):
        if self.exc is not None:
            raise self.exc
        return self.lin(x.mean((2, 3))) * float("nan")


def test_nan_loss_is_diverged_not_an_exception(data):
    res = train_proxy(Broken(), data, FAST)
    assert res.status == "diverged" and "non-finite loss at epoch 1" in res.reason and res.curve == []


def test_out_of_memory_is_a_status(data):
    res = train_proxy(Broken(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")), data, FAST)
    assert res.status == "oom" and res.reason.startswith("oom: CUDA out of memory")
    cpu = train_proxy(Broken(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ...")), data, FAST)
    assert cpu.status == "oom"
    with pytest.raises(RuntimeError, match="something else"):
        train_proxy(Broken(RuntimeError("something else")), data, FAST)


def test_the_spec_checks_the_training_settings():
    for proxy, message in (({"epochs": 2, "warmup_epochs": 3}, r"spec\.yaml: proxy\.warmup_epochs: 3\.0: must be "
                                                               r"below"),
                           ({"batch_size": 0}, r"spec\.yaml: proxy\.batch_size: 0: ")):
        with pytest.raises(UserError, match=message):
            spec_from_dict({"study": {"name": "x"}, "proxy": proxy}, "spec.yaml")
