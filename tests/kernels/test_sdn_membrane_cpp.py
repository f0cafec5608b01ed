"""The fused SDN membrane's C++ loop (``lindy.kernels.sdn_cpu``): the torch path's numbers (float64 to
1e-12, float32 to its rounding) in the neurons' (B, L, H) layout, with a history, v_th, H not a multiple
of the vector width, L < k; chunks, steps and two threads give the numbers of one call; the fused neuron
(``spikes``: membrane, threshold and surrogate gradient in one pass) gives the torch path's spikes bit for
bit and its gradients to rounding; used whenever it builds, and the torch path, announced once, when it
cannot."""

import logging
import shutil

import pytest
import torch

from lindy.kernels import cpp, sdn_cpu
from lindy.kernels.surrogate import SURROGATES, spike
from lindy.layers import sdn as sdn_module
from lindy.layers.sdn import FusedSDN, SDNNeuron

F64 = torch.float64


def require_cpp_kernel():
    """Skip without a C++ toolchain; with one, a kernel that fails to build is a failure, not a skip."""
    if sdn_cpu.ops() is None:
        if shutil.which("c++") and shutil.which("ninja"):
            pytest.fail(
                "a C++ compiler and ninja are here, but the SDN CPU kernel did not build (see the log)"
            )
        pytest.skip("no C++ compiler or ninja: the SDN CPU kernel cannot be built")


@pytest.fixture
def native(monkeypatch):
    monkeypatch.delenv(cpp.DISABLE_ENV, raising=False)
    require_cpp_kernel()


def random_sdn(seed=0, dtype=F64):
    """A frozen FusedSDN (d = k = 8) whose weights put hidden units on both sides of the ReLUs."""
    g = torch.Generator().manual_seed(seed)
    sdn = FusedSDN()
    with torch.no_grad():
        for p in sdn.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=F64))
    return sdn.to(dtype).requires_grad_(False).eval()


def inputs(b, length, h, seed=1, dtype=F64):
    """x (B, L, H) and a history (B, H, k)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, length, h, generator=g, dtype=dtype), torch.randn(b, h, 8, generator=g, dtype=dtype)


def torch_path(sdn, x, history=None, v_th=1.0):
    """The torch path, v_th SDN(x / v_th): FusedSDN.forward on x transposed to (B, H, L), then back."""
    hist = None if history is None else history / v_th
    return (sdn(x.transpose(1, 2) / v_th, hist) * v_th).transpose(1, 2)


# H: 1, a tail only (5), 37 (a 32-wide block, then a tail), 24 and 48 (single vectors after the blocks),
# 128 (whole blocks), 100 (float64: 6 blocks of 16, a tail of 4); L shorter than k (3, 1), equal (8), longer
SHAPES = [(2, 40, 5), (3, 9, 37), (1, 3, 16), (2, 8, 1), (2, 50, 128), (1, 1, 33), (2, 20, 100), (2, 12, 24)]
SHAPES += [(1, 17, 48)]


def time_last(x):
    """x (B, L, H) as the transpose of a contiguous (B, H, L), as channels-first callers pass it."""
    return x.transpose(1, 2).contiguous().transpose(1, 2)


@pytest.mark.parametrize("b,length,h", SHAPES)
@pytest.mark.parametrize("with_history", [False, True])
@pytest.mark.parametrize("v_th", [1.0, 0.7])
@pytest.mark.parametrize("layout", ["features_last", "time_last"])
def test_matches_the_torch_path_float64(native, b, length, h, with_history, v_th, layout):
    sdn = random_sdn()
    x, hist = inputs(b, length, h)
    x = time_last(x) if layout == "time_last" else x
    hist = hist if with_history else None
    got = sdn.features_last(x, hist, v_th)
    assert got.shape == x.shape and got.dtype == F64 and got.stride() == x.stride()
    torch.testing.assert_close(got, torch_path(sdn, x, hist, v_th), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 12])
def test_other_kernel_sizes(native, k):
    """k is a runtime size of the loop (d = 8 is compiled in)."""
    torch.manual_seed(k)
    sdn = FusedSDN(8, kernel_size=k).double().requires_grad_(False).eval()
    x = torch.randn(2, 20, 19, dtype=F64)
    hist = torch.randn(2, 19, k, dtype=F64)
    for layout in (lambda t: t, time_last):
        got = sdn.features_last(layout(x), hist, 0.9)
        torch.testing.assert_close(got, torch_path(sdn, x, hist, 0.9), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_both_layouts_give_the_same_numbers(native, dtype):
    """Vectorised over H or over time, every output goes through the same arithmetic."""
    sdn = random_sdn(seed=2, dtype=dtype)
    x, hist = inputs(3, 45, 37, seed=2, dtype=dtype)
    assert torch.equal(sdn.features_last(x, hist, 0.7), sdn.features_last(time_last(x), hist, 0.7))


@pytest.mark.parametrize("b,length,h", SHAPES)
def test_float32_is_as_accurate_as_the_torch_path(native, b, length, h):
    """Against the float64 truth (the same float32 weights and inputs), the float32 C++ loop errs no more
    than the float32 torch path it replaces (up to a factor 2: they round in different orders) plus an ulp
    of the largest value."""
    sdn32 = random_sdn(seed=3, dtype=torch.float32)
    sdn64 = random_sdn(seed=3, dtype=torch.float32).double()  # the float32 weights, exactly, in float64
    x, hist = inputs(b, length, h, seed=4, dtype=torch.float32)
    truth = torch_path(sdn64, x.double(), hist.double(), 0.7)
    got = sdn32.features_last(x, hist, 0.7)
    ref = torch_path(sdn32, x, hist, 0.7)
    assert got.dtype == torch.float32
    err, err_torch = (got.double() - truth).abs().max(), (ref.double() - truth).abs().max()
    assert err <= 2 * err_torch + 1.2e-7 * truth.abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("layout", ["features_last", "time_last"])
def test_chunks_and_steps_give_the_numbers_of_one_call(native, dtype, layout):
    neuron = SDNNeuron(tau=0.125, v_th=0.8, sdn=random_sdn(seed=5, dtype=dtype))
    x, _ = inputs(3, 30, 37, seed=6, dtype=dtype)
    x = time_last(x) if layout == "time_last" else x
    whole, s_whole = neuron.membrane(x), neuron(x)
    state, parts, spikes = None, [], []
    for lo, hi in [(0, 3), (3, 4), (4, 15), (15, 30)]:  # chunks shorter than k, one step, longer ones
        parts.append(neuron.membrane(x[:, lo:hi], state))
        s, state = neuron.forward_with_state(x[:, lo:hi], state)
        spikes.append(s)
    assert torch.equal(torch.cat(parts, 1), whole)
    assert torch.equal(torch.cat(spikes, 1), s_whole)
    state = torch.zeros(3, 37, 8, dtype=dtype)
    steps = []
    for t in range(x.shape[1]):
        s_t, state = neuron.step(x[:, t], state)
        steps.append(s_t)
    assert torch.equal(torch.stack(steps, 1), s_whole)


def test_two_threads_give_the_numbers_of_one(native):
    sdn = random_sdn(seed=7, dtype=torch.float32)
    x, hist = inputs(4, 300, 64, seed=8, dtype=torch.float32)  # more rows and series than one grain
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append([sdn.features_last(x, hist), sdn.features_last(time_last(x), hist)])
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert torch.equal(one, two)


def test_neuron_cpp_and_torch_paths_agree_float64(native, monkeypatch):
    """SDNNeuron forward and backward with LINDY_NO_CPP unset and set: the same membrane, spikes and
    surrogate gradients; the switch brings the torch path back, and the status says which ran."""
    monkeypatch.setattr(cpp, "_STATUS", {})  # keep the build memo: no second compile in this process
    neuron = SDNNeuron(tau=0.125, v_th=0.8, surrogate="atan", sdn=random_sdn(seed=9))
    x, _ = inputs(3, 40, 21, seed=10)
    results = []
    for flag in ("0", "1"):
        monkeypatch.setenv(cpp.DISABLE_ENV, flag)
        xr = x.clone().requires_grad_(True)
        s = neuron(xr)
        (s * torch.linspace(-1, 1, s.numel(), dtype=F64).view_as(s)).sum().backward()
        results.append((neuron.membrane(x), s.detach(), xr.grad))
        expected = "built" if flag == "0" else f"disabled: {cpp.DISABLE_ENV}=1"
        assert cpp.fast_path_status()[sdn_cpu.NAME] == expected
    (m_cpp, s_cpp, g_cpp), (m_torch, s_torch, g_torch) = results
    torch.testing.assert_close(m_cpp, m_torch, rtol=1e-12, atol=1e-12)
    assert torch.equal(s_cpp, s_torch)
    torch.testing.assert_close(g_cpp, g_torch, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("layout", ["features_last", "time_last"])
def test_the_fused_neuron_is_membrane_then_spike(native, surrogate, dtype, layout):
    """The fused ``spikes`` op (membrane, threshold and surrogate gradient in one pass) against the
    membrane op followed by ``surrogate.spike``: the same spikes bit for bit and the same gradients to
    the dtype's rounding, from a history (a second chunk), in x's layout."""
    neuron = SDNNeuron(tau=0.125, v_th=0.8, surrogate=surrogate, sdn=random_sdn(seed=9, dtype=dtype))
    x, _ = inputs(3, 40, 21, seed=10, dtype=dtype)
    chunk = time_last(x[:, 13:]) if layout == "time_last" else x[:, 13:].contiguous()
    weight = torch.linspace(-1, 1, chunk.numel(), dtype=dtype).view_as(chunk)
    _, state = neuron.forward_with_state(x[:, :13], None)
    xf = chunk.detach().clone().requires_grad_(True)  # clone keeps the layout
    xr = chunk.detach().clone().requires_grad_(True)
    assert neuron.sdn.fire(chunk, state, 0.8, surrogate, 1.0, True) is not None  # the fused op runs
    s_fused, _ = neuron.forward_with_state(xf, state)
    s_ref = spike(neuron.membrane(xr, state) + xr - 0.8, surrogate)
    (s_fused * weight).sum().backward()
    (s_ref * weight).sum().backward()
    assert s_fused.stride() == chunk.stride() and xf.grad.stride() == chunk.stride()
    assert 0.05 < s_fused.mean() < 0.95  # both sides of the threshold
    assert torch.equal(s_fused, s_ref)
    assert xf.grad.abs().sum() > 0
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(xf.grad, xr.grad, rtol=8 * eps, atol=8 * eps)


def test_the_fused_spikes_skip_the_gradient_when_none_is_needed(native):
    neuron = SDNNeuron(tau=0.125, sdn=random_sdn(seed=21))
    x, _ = inputs(2, 30, 9, seed=22)
    with torch.no_grad():
        s = neuron(x)
    assert s.grad_fn is None and torch.equal(s, neuron(x.clone().requires_grad_(True)).detach())


def test_a_bfloat16_current_runs_the_float32_sdn(native):
    neuron = SDNNeuron(tau=0.125, sdn=random_sdn(seed=11, dtype=torch.float32))
    x = inputs(2, 20, 9, seed=12, dtype=torch.float32)[0].bfloat16()
    m = neuron.membrane(x)
    assert m.dtype == torch.float32
    assert torch.equal(m, neuron.membrane(x.float()))


def test_a_fast_path_that_cannot_build_falls_back_and_says_so_once(monkeypatch, caplog):
    monkeypatch.delenv(cpp.DISABLE_ENV, raising=False)
    monkeypatch.setattr(cpp, "_STATUS", {})
    monkeypatch.setattr(cpp, "_LOGGED", set())
    monkeypatch.setattr(cpp, "_BUILT", {sdn_cpu.NAME: (None, "unavailable: no compiler (test)")})
    sdn = random_sdn(seed=13)
    x, hist = inputs(2, 10, 6, seed=14)
    with caplog.at_level(logging.WARNING, logger=cpp.__name__):
        for _ in range(3):
            m = sdn.features_last(x, hist, 0.5)
    assert torch.equal(m, torch_path(sdn, x, hist, 0.5))  # the torch path itself
    assert cpp.fast_path_status() == {sdn_cpu.NAME: "unavailable: no compiler (test)"}
    assert len([r for r in caplog.records if sdn_cpu.NAME in r.getMessage()]) == 1


def test_other_dtypes_widths_and_layouts_take_the_torch_path():
    x = torch.zeros(1, 4, 3)
    assert sdn_module._sdn_native(x, FusedSDN().bfloat16()) is None
    assert sdn_module._sdn_native(x, FusedSDN(d_model=4)) is None
    assert sdn_module._sdn_native(torch.zeros(4, 3), FusedSDN()) is None
    torch.manual_seed(15)
    sdn = FusedSDN(d_model=4, kernel_size=3).double().eval()  # any width still runs, on the torch path
    xs, hist = inputs(2, 6, 5, seed=16)
    torch.testing.assert_close(sdn.features_last(xs, hist[..., :3]), torch_path(sdn, xs, hist[..., :3]))


def test_the_op_names_its_bad_arguments(native):
    ops, sdn = sdn_cpu.ops(), random_sdn(seed=17)
    x, hist = inputs(2, 6, 5, seed=18)
    weights = (
        sdn.conv1.weight[:, 0, :],
        sdn.conv1.bias,
        sdn.conv2.weight[:, :, 0],
        sdn.conv2.bias,
        sdn.conv3.weight[0, :, 0],
        sdn.conv3.bias,
    )
    out = torch.empty_like(x)
    with pytest.raises(RuntimeError, match=r"history must be a \(B, k, H\)"):
        ops.membrane(x, hist, *weights, 1.0, out)  # (B, H, k), not (B, k, H)
    with pytest.raises(RuntimeError, match="x must be a contiguous"):
        ops.membrane(x[:, ::2], None, *weights, 1.0, out[:, ::2])  # neither layout
    with pytest.raises(RuntimeError, match="b2 must be"):
        ops.membrane(x, None, *weights[:3], weights[3][:4], *weights[4:], 1.0, out)
    with pytest.raises(RuntimeError, match="out must be"):
        ops.membrane(x, None, *weights, 1.0, out.float())
    spikes, grad = torch.empty_like(x), torch.empty_like(x)
    with pytest.raises(RuntimeError, match="x must be a contiguous"):
        ops.spikes(x[:, ::2], None, *weights, 1.0, 0, 1.0, spikes[:, ::2], None)
    with pytest.raises(RuntimeError, match="grad must be"):
        ops.spikes(x, None, *weights, 1.0, 0, 1.0, spikes, grad[:, :3])
    with pytest.raises(RuntimeError, match="spikes must be"):
        ops.spikes(x, None, *weights, 1.0, 0, 1.0, spikes.float(), grad)
    with pytest.raises(RuntimeError, match=r"surrogate must be 0 \(piecewise_quadratic\)"):
        ops.spikes(x, None, *weights, 1.0, 3, 1.0, spikes, grad)
    with pytest.raises(RuntimeError, match="alpha must be > 0"):
        ops.spikes(x, None, *weights, 1.0, 0, 0.0, spikes, grad)


def test_under_torch_compile(native):
    """The op's shape-only fake lets torch.compile trace a neuron (aot_eager: no code generation)."""
    neuron = SDNNeuron(tau=0.125, sdn=random_sdn(seed=19, dtype=torch.float32))
    x = inputs(2, 16, 9, seed=20, dtype=torch.float32)[0]
    compiled = torch.compile(neuron.membrane, backend="aot_eager")
    torch.testing.assert_close(compiled(x), neuron.membrane(x), rtol=0, atol=0)
    spikes = torch.compile(neuron, backend="aot_eager")
    torch.testing.assert_close(spikes(x), neuron(x), rtol=0, atol=0)


def test_the_ops_surrogate_codes_name_every_surrogate():
    assert sorted(sdn_cpu.SURROGATE_CODES) == sorted(SURROGATES)
