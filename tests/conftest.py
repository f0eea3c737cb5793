"""Shared fixtures. Test modules that run many tiny models opt into one torch thread with
``pytestmark = pytest.mark.usefixtures("one_thread")``."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for the module: tiny tensors run faster on one, and the CI machine's cores
    are shared (OpenMP threads spin under contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
