"""The STU output AR's C++ loops (``lindy.kernels.ar_cpu``): the same numbers and gradients as the plain
recursion (float32 and float64, every row-group and column-tail shape, y0, strided inputs, threads), used
whenever they build, and the Python loop, announced once, when they cannot."""

import logging
import shutil

import pytest
import torch

from lindy.kernels import ar_cpu, cpp, spectral
from lindy.kernels.spectral import ar_filter, ar_filter_naive
from lindy.layers import STU

F64 = torch.float64


def require_cpp_kernel():
    """Skip without a C++ toolchain; with one, a kernel that fails to build is a failure, not a skip."""
    if ar_cpu.ops() is None:
        if shutil.which("c++") and shutil.which("ninja"):
            pytest.fail(
                "a C++ compiler and ninja are here, but the AR CPU kernel did not build (see the log)"
            )
        pytest.skip("no C++ compiler or ninja: the AR CPU kernel cannot be built")


@pytest.fixture
def native(monkeypatch):
    monkeypatch.delenv(cpp.DISABLE_ENV, raising=False)
    require_cpp_kernel()


def case(batch, length, d, p, seed=0, dtype=F64):
    """x, M_y (stable: each lag's spectral radius about 0.4 / p) and y0, all requiring grad."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, d, generator=g, dtype=dtype)
    m_y = 0.4 / p * torch.randn(p, d, d, generator=g, dtype=dtype) / d**0.5
    y0 = torch.randn(batch, p, d, generator=g, dtype=dtype)
    return [t.requires_grad_(True) for t in (x, m_y, y0)]


def run(fn, x, m_y, y0, weight):
    """Outputs and the gradients of x, M_y, y0 under the loss sum(weight * y)."""
    y = fn(x, m_y, y0)
    grads = torch.autograd.grad((y * weight).sum(), (x, m_y, y0))
    return [y.detach(), *grads]


# shapes: d with a column tail (3, 37), a whole number of 64-column blocks (128) and single vectors (80);
# batches of 1..4 rows and more than one row group (9); L shorter than p; p = 1..3
SHAPES = [(2, 6, 3, 2), (5, 9, 37, 3), (8, 50, 128, 2), (3, 2, 16, 3), (9, 20, 80, 1), (1, 7, 24, 2)]


@pytest.mark.parametrize("batch,length,d,p", SHAPES)
def test_matches_the_plain_recursion_float64(native, batch, length, d, p):
    x, m_y, y0 = case(batch, length, d, p)
    weight = torch.randn(batch, length, d, dtype=F64)
    got = run(ar_filter, x, m_y, y0, weight)
    want = run(ar_filter_naive, x, m_y, y0, weight)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch,length,d,p", SHAPES)
def test_float32_is_as_accurate_as_the_python_loop(native, monkeypatch, batch, length, d, p):
    """Against the float64 truth, the float32 C++ loops err no more than the float32 Python loop they
    replace (up to a factor 2: the two round in different orders) plus an ulp of the largest value."""
    x, m_y, y0 = case(batch, length, d, p)
    weight = torch.randn(batch, length, d, dtype=F64)
    truth = run(ar_filter_naive, x, m_y, y0, weight)
    low = [t.detach().float().requires_grad_(True) for t in (x, m_y, y0)]
    got = run(ar_filter, *low, weight.float())
    monkeypatch.setenv(cpp.DISABLE_ENV, "1")
    python = run(ar_filter, *low, weight.float())
    for a, b, t in zip(got, python, truth):
        assert a.dtype == torch.float32
        err, err_python = (a.double() - t).abs().max(), (b.double() - t).abs().max()
        assert err <= 2 * err_python + 1.2e-7 * t.abs().max()


def test_gradcheck_float64_through_the_cpp_loops(native):
    x, m_y, y0 = case(2, 5, 3, 2, seed=4)
    assert type(ar_filter(x, m_y, y0).grad_fn).__name__ == "_ARFilterCPUBackward"
    assert torch.autograd.gradcheck(ar_filter, (x, m_y, y0))


def test_the_cpp_loops_are_the_ones_used_when_they_build(native, monkeypatch):
    monkeypatch.setattr(cpp, "_STATUS", {})  # keep the build memo: no second compile in this process
    x, m_y, _ = case(2, 4, 3, 2)
    y = ar_filter(x, m_y)
    assert cpp.fast_path_status()[ar_cpu.NAME] == "built"
    assert type(y.grad_fn).__name__ == "_ARFilterCPUBackward"
    monkeypatch.setenv(cpp.DISABLE_ENV, "1")  # the switch brings the Python loop back
    assert type(ar_filter(x, m_y).grad_fn).__name__ == "_ARFilterBackward"


def test_strided_input_and_gradient_and_a_two_thread_batch_split(native):
    """x a slice of a longer tensor (as the STU's inverse FFT gives it), a strided output gradient, and a
    batch of 7 split over two threads (shares of 4 and 3 rows)."""
    x_long, m_y, y0 = case(7, 30, 20, 2, seed=2)
    x = x_long.detach()[:, :13].requires_grad_(True)
    assert not x.is_contiguous()
    weight = torch.randn(7, 13, 40, dtype=F64)[..., ::2]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = run(ar_filter, x, m_y, y0, weight)
    finally:
        torch.set_num_threads(threads)
    want = run(ar_filter_naive, x, m_y, y0, weight)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_without_m_y_or_y0_gradients(native):
    x, m_y, _ = case(3, 8, 5, 2, seed=5)
    m_y = m_y.detach()
    y = ar_filter(x, m_y)  # y0 defaults to zeros
    (gx,) = torch.autograd.grad(y.square().sum(), (x,))
    y_ref = ar_filter_naive(x, m_y)
    (gx_ref,) = torch.autograd.grad(y_ref.square().sum(), (x,))
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)


def test_stu_layer_cpp_and_python_agree_float64(native, monkeypatch):
    torch.manual_seed(0)
    layer = STU(6, num_filters=3, max_len=32, ar_u=2, ar_y=2).double()
    with torch.no_grad():
        layer.M_y.normal_(0, 0.2)
    x = torch.randn(3, 32, 6, dtype=F64)
    results = []
    for flag in ("0", "1"):
        monkeypatch.setenv(cpp.DISABLE_ENV, flag)
        xr = x.clone().requires_grad_(True)
        y = layer(xr)
        y.sin().sum().backward()
        results.append([y.detach(), xr.grad, *(p.grad.clone() for p in layer.parameters())])
        layer.zero_grad()
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_a_fast_path_that_cannot_build_falls_back_and_says_so_once(monkeypatch, caplog):
    monkeypatch.delenv(cpp.DISABLE_ENV, raising=False)
    monkeypatch.setattr(cpp, "_STATUS", {})
    monkeypatch.setattr(cpp, "_LOGGED", set())
    monkeypatch.setattr(cpp, "_BUILT", {ar_cpu.NAME: (None, "unavailable: no compiler (test)")})
    x, m_y, y0 = case(2, 5, 3, 2)
    with caplog.at_level(logging.WARNING, logger=cpp.__name__):
        for _ in range(3):
            y = ar_filter(x, m_y, y0)
            assert type(y.grad_fn).__name__ == "_ARFilterBackward"
    torch.testing.assert_close(y, ar_filter_naive(x, m_y, y0), rtol=1e-12, atol=1e-12)
    assert cpp.fast_path_status() == {ar_cpu.NAME: "unavailable: no compiler (test)"}
    assert [r for r in caplog.records if ar_cpu.NAME in r.getMessage()].__len__() == 1


def test_non_cpu_dtypes_take_the_python_loop():
    assert spectral._ar_native(torch.zeros(1, 1, 1, dtype=torch.bfloat16)) is None
