"""An autouse fixture for the network tests: torch runs on one thread.

The CPUs are shared with training jobs, and oversubscribed OpenMP threads spin far
slower than a single one. Import it into a test module to apply it there:
``from torch_threads import one_torch_thread  # noqa: F401``.
"""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
