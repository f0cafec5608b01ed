"""LEM: the check value, the hand-written BPTT against autograd through a plain loop, interop."""

import math
import shutil

import pytest
import torch
from torch import nn

from lindy.interop import lem_from_reference
from lindy.kernels import lem_cpu, lem_scan
from lindy.kernels.lem_scan import LEMScan
from lindy.layers import LEM


def require_cpp_kernel():
    """Skip without a C++ toolchain; with one, a kernel that fails to build is a failure, not a skip."""
    if lem_cpu.ops() is None:
        if shutil.which("c++") and shutil.which("ninja"):
            pytest.fail(
                "a C++ compiler and ninja are here, but the LEM CPU kernel did not build (see the log)"
            )
        pytest.skip("no C++ compiler or ninja: the LEM CPU kernel cannot be built")


def check_value_layer():
    layer = LEM(2, d_input=1, dt=0.5)
    with torch.no_grad():
        layer.inp2hid.weight.copy_(torch.arange(1, 9, dtype=torch.float32).unsqueeze(1) / 10)
        layer.inp2hid.bias.zero_()
        layer.hid2hid.weight.copy_(
            torch.tensor([[-0.3, -0.25], [-0.2, -0.15], [-0.1, -0.05], [0, 0.05], [0.1, 0.15], [0.2, 0.25]])
        )
        layer.hid2hid.bias.zero_()
        layer.transform_z.weight.copy_(torch.tensor([[0.5, -0.25], [0.25, 0.5]]))
        layer.transform_z.bias.copy_(torch.tensor([0.1, -0.1]))
    return layer


def test_check_value():
    layer = check_value_layer()
    x = torch.tensor([1.0, -0.5, 2.0]).view(1, 3, 1)
    y_expected = torch.tensor([[0.147761, 0.155821], [0.081292, 0.043598], [0.282444, 0.291213]])
    z_expected = torch.tensor([[0.173587, 0.198775], [0.064897, 0.081539], [0.329800, 0.372945]])
    torch.testing.assert_close(layer(x)[0], y_expected, rtol=0, atol=1e-6)
    state = layer.initial_state(1)
    for t in range(3):
        y, state = layer.step(x[:, t], state)
        torch.testing.assert_close(y[0], y_expected[t], rtol=0, atol=1e-6)
        torch.testing.assert_close(state[1][0], z_expected[t], rtol=0, atol=1e-6)


def plain_loop(layer, x, y, z):
    """LEM written the reference's way: one autograd graph node set per step."""
    d, dt = layer.d_model, layer.dt
    ys = []
    for t in range(x.shape[1]):
        v2, v1, vy, vz = layer.inp2hid(x[:, t]).chunk(4, 1)
        w2, w1, wz = layer.hid2hid(y).chunk(3, 1)
        g_y, g_z = dt * torch.sigmoid(v2 + w2), dt * torch.sigmoid(v1 + w1)
        z = (1 - g_z) * z + g_z * torch.tanh(vz + wz)
        y = (1 - g_y) * y + g_y * torch.tanh(layer.transform_z(z) + vy)
        ys.append(y)
    assert d == y.shape[-1]
    return torch.stack(ys, 1), y, z


@pytest.mark.parametrize("native", [True, False], ids=["cpp", "python"])
def test_scan_gradcheck_float64(native, monkeypatch):
    if not native:
        monkeypatch.setenv("LINDY_NO_CPP", "1")
    else:
        require_cpp_kernel()
    torch.manual_seed(0)
    B, L, d_in, d = 2, 5, 2, 3
    args = [
        torch.randn(B, L, d_in),
        torch.randn(4 * d, d_in),
        torch.randn(4 * d),
        torch.randn(3 * d, d) / 2,
        torch.randn(3 * d),
        torch.randn(d, d) / 2,
        torch.randn(d),
        torch.randn(B, d),
        torch.randn(B, d),
    ]
    args = [a.double().requires_grad_(True) for a in args]

    def fn(*a):
        return LEMScan.apply(*a, 0.7)

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "d_in,batch,tile_steps",
    [(3, 3, None), (20, 3, None), (3, 19, None), (3, 19, 3)],
    ids=["projected-per-step", "projected-first", "batch-split-over-threads", "batch-split-small-tiles"],
)
def test_cpp_and_python_loops_agree_float64(d_in, batch, tile_steps, monkeypatch):
    require_cpp_kernel()
    torch.manual_seed(3)
    d, L = 7, 41
    if tile_steps:  # backward tiles of 3 steps: several folds, odd-length blocks and a shorter last one
        monkeypatch.setattr(lem_scan, "BACKWARD_TILE_BYTES", tile_steps * batch * 4 * d * 8)
    layer = LEM(d, d_input=d_in, dt=0.4).double()
    x = torch.randn(batch, L, d_in, dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # batch 19 splits into shares of 10 and 9 rows, one per thread
    results = []
    try:
        for flag in ("0", "1"):
            monkeypatch.setenv("LINDY_NO_CPP", flag)
            xr = x.clone().requires_grad_(True)
            Y, (y, z) = layer.forward_with_state(xr, layer.initial_state(batch, dtype=torch.float64))
            # a strided, partly zero output gradient and gradients into both final states
            (Y[:, ::2].sin().sum() + y.square().sum() + (z * 0.5).sum()).backward()
            results.append([Y.detach(), z.detach(), xr.grad, *(p.grad.clone() for p in layer.parameters())])
            layer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d_input,d,L", [(1, 16, 50), (5, 8, 3)])
def test_matches_plain_autograd_loop_float32(d_input, d, L):
    torch.manual_seed(1)
    layer = LEM(d, d_input=d_input, dt=0.3)
    x = torch.randn(4, L, d_input, requires_grad=True)
    y0, z0 = (torch.randn(4, d, requires_grad=True) for _ in range(2))
    Y, (y, z) = layer.forward_with_state(x, (y0, z0))
    loss = Y.pow(2).sum() + (y * 0.3).sum() + z.sin().sum()
    grads = torch.autograd.grad(loss, [x, y0, z0, *layer.parameters()])
    Y2, y2, z2 = plain_loop(layer, x, y0, z0)
    loss2 = Y2.pow(2).sum() + (y2 * 0.3).sum() + z2.sin().sum()
    grads2 = torch.autograd.grad(loss2, [x, y0, z0, *layer.parameters()])
    torch.testing.assert_close(Y, Y2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z, z2, rtol=1e-5, atol=1e-5)
    names = ["x", "y0", "z0", *(n for n, _ in layer.named_parameters())]
    for name, g, g2 in zip(names, grads, grads2):
        torch.testing.assert_close(g, g2, rtol=1e-5, atol=1e-5, msg=name)


def test_stacks_in_the_backbone_with_input_gradients():
    from lindy.models import SequenceModel

    model = SequenceModel(2, 3, d_model=8, n_layers=2, layer="lem", layer_kwargs=dict(dt=0.5))
    x = torch.randn(2, 10, 2, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # unlike the reference CUDA kernel
    assert all(p.grad is not None for p in model.parameters())


def test_init_range_and_reference_packing():
    layer = LEM(16, d_input=3)
    bound = 1 / math.sqrt(16)
    assert all(p.abs().max() <= bound for p in layer.parameters())
    assert layer.inp2hid.weight.shape == (64, 3) and layer.hid2hid.weight.shape == (48, 16)


@pytest.mark.parametrize("readout", ["last", "all"])
def test_reference_checkpoint_loads_with_the_same_outputs(readout):
    torch.manual_seed(2)
    d_in, d, n_out, dt = 3, 6, 4, 0.4
    ref = {
        "cell.inp2hid.weight": torch.rand(4 * d, d_in) - 0.5,
        "cell.inp2hid.bias": torch.rand(4 * d) - 0.5,
        "cell.hid2hid.weight": torch.rand(3 * d, d) - 0.5,
        "cell.hid2hid.bias": torch.rand(3 * d) - 0.5,
        "cell.transform_z.weight": torch.rand(d, d) - 0.5,
        "cell.transform_z.bias": torch.rand(d) - 0.5,
        "classifier.weight": nn.init.kaiming_normal_(torch.empty(n_out, d)),
        "classifier.bias": torch.rand(n_out) - 0.5,
    }
    model = lem_from_reference(ref, dt, readout=readout)
    x = torch.randn(5, 2, d_in)  # the reference is time-major: (L, B, d_in)
    # the reference forward, written from its equations with its parameter names
    y = z = torch.zeros(2, d)
    ys = []
    for t in range(5):
        v2, v1, vy, vz = (x[t] @ ref["cell.inp2hid.weight"].T + ref["cell.inp2hid.bias"]).chunk(4, 1)
        w2, w1, wz = (y @ ref["cell.hid2hid.weight"].T + ref["cell.hid2hid.bias"]).chunk(3, 1)
        g_y, g_z = dt * torch.sigmoid(v2 + w2), dt * torch.sigmoid(v1 + w1)
        z = (1 - g_z) * z + g_z * torch.tanh(vz + wz)
        y = (1 - g_y) * y + g_y * torch.tanh(
            z @ ref["cell.transform_z.weight"].T + ref["cell.transform_z.bias"] + vy
        )
        ys.append(y)
    hidden = y if readout == "last" else torch.stack(ys, 1)
    expected = hidden @ ref["classifier.weight"].T + ref["classifier.bias"]
    torch.testing.assert_close(model(x.transpose(0, 1)), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="cell.hid2hid.weight"):
        lem_from_reference({k: v for k, v in ref.items() if k != "cell.hid2hid.weight"}, dt)
