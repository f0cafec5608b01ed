"""lindy.kernels.memory.empty: torch.empty with huge-page advice for large CPU buffers."""

import torch

from lindy.kernels import memory


def test_small_and_large_buffers_behave_as_torch_empty():
    small = memory.empty(3, 4, dtype=torch.float64)
    assert small.shape == (3, 4) and small.dtype == torch.float64 and small.is_contiguous()
    n = memory.MIN_BYTES // 4 + 123  # above the threshold, not a whole number of pages
    large = memory.empty(n, dtype=torch.float32)
    assert large.shape == (n,) and large.dtype == torch.float32
    large.fill_(2.5)  # the whole buffer is writable and keeps its values
    assert large.sum().item() == 2.5 * n
