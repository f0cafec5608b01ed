"""lindy.kernels.memory.empty: torch.empty with huge-page advice for large CPU buffers, and their pool."""

import pytest
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


BIG = (memory.MIN_BYTES // 4 + 1024,)  # float32 elements, above the pooling threshold


@pytest.fixture
def empty_pool():
    memory.release_cached()
    yield
    memory.release_cached()


def test_pool_hands_a_buffer_out_again_only_once_nothing_references_it(empty_pool):
    a = memory.empty(*BIG, dtype=torch.float32, reuse=True)
    ptr = a.data_ptr()
    view = a[10:]
    del a
    b = memory.empty(*BIG, dtype=torch.float32, reuse=True)
    assert b.data_ptr() != ptr  # a's storage is still reached through `view`
    saved = b.untyped_storage()  # a storage handle also counts
    del view, b
    c = memory.empty(*BIG, dtype=torch.float32, reuse=True)
    assert c.data_ptr() == ptr
    d = memory.empty(*BIG, dtype=torch.float32, reuse=True)
    assert d.data_ptr() not in (ptr, saved.data_ptr())
    del saved
    e = memory.empty(*BIG, dtype=torch.float32, reuse=True)
    assert e.data_ptr() not in (ptr, d.data_ptr())  # b's storage, free again
    array = e.numpy()  # a NumPy array keeps its tensor, hence the storage
    del e
    f = memory.empty(*BIG, dtype=torch.float32, reuse=True)
    assert f.data_ptr() not in (ptr, d.data_ptr(), array.ctypes.data)
    assert memory.cached_bytes() == (0, 4 * BIG[0] * 4)
    del c, d, f, array
    assert memory.release_cached() == 4 * BIG[0] * 4
    assert memory.cached_bytes() == (0, 0)


def test_pool_respects_its_size_limit_and_other_sizes_and_modes(empty_pool, monkeypatch):
    monkeypatch.setattr(memory, "POOL_MAX_BYTES", (BIG[0] + 1) * 4)  # room for one buffer
    a = memory.empty(*BIG, dtype=torch.float32, reuse=True)
    ptr = a.data_ptr()
    other = memory.empty(BIG[0] + 1, dtype=torch.float32, reuse=True)  # the pool forgets a (in use)
    del a, other
    assert memory.cached_bytes()[0] == (BIG[0] + 1) * 4
    b = memory.empty(*BIG, dtype=torch.float32, reuse=True)
    assert memory.cached_bytes()[1] == BIG[0] * 4
    del b
    with torch.inference_mode():  # inference tensors could not be saved for backward by a later caller
        memory.release_cached()
        c = memory.empty(*BIG, dtype=torch.float32, reuse=True)
    assert memory.cached_bytes() == (0, 0) and c.shape == BIG
    assert ptr != 0


def test_lem_graphs_alive_together_keep_their_own_saved_buffers(empty_pool):
    """Two forwards before either backward: the second must not reuse the first one's saved gates."""
    from lindy.layers import LEM

    torch.manual_seed(0)
    layer = LEM(64, d_input=2, dt=0.3)
    B, L = 8, 600  # G is 8 * 600 * 256 floats, 4.9 MB: pooled
    xs = [torch.randn(B, L, 2, requires_grad=True) for _ in range(2)]
    expected = []
    for x in xs:  # one graph at a time
        layer(x).sin().sum().backward()
        expected.append(x.grad.clone())
        x.grad = None
    losses = [layer(x).sin().sum() for x in xs]  # both graphs alive
    for loss in losses[::-1]:
        loss.backward()
    for x, g in zip(xs, expected):
        torch.testing.assert_close(x.grad, g, rtol=0, atol=0)


def test_lem_compiles_with_pooled_buffers(empty_pool):
    from lindy.layers import LEM

    torch.manual_seed(0)
    layer = LEM(64, d_input=2, dt=0.3)
    x = torch.randn(8, 600, 2)
    compiled = torch.compile(layer, backend="aot_eager")
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-5)
