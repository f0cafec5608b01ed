"""lindy's S4D loaded from a state_dict of the state-spaces/s4 standalone S4D gives the same outputs.

The reference code is not vendored: the state_dict is built here from its parameter names and shapes, and
its forward pass is written out below from its definition (complex Vandermonde kernel, ZOH with B folded
into C, FFT convolution padded to 2L, D skip, GELU, Conv1d(H, 2H, 1) + GLU over channels), on (B, H, L).
"""

import math

import pytest
import torch

from lindy.interop import s4d_from_reference


def reference_state_dict(H, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_dt = torch.rand(H, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)
    conv = torch.nn.Conv1d(H, 2 * H, 1)
    return {
        "D": torch.randn(H, generator=g),
        "kernel.C": torch.randn(H, N // 2, 2, generator=g) * math.sqrt(0.5),
        "kernel.log_dt": log_dt,
        # trained-looking values rather than the init, so that every parameter matters
        "kernel.log_A_real": math.log(0.5) + 0.3 * torch.randn(H, N // 2, generator=g),
        "kernel.A_imag": math.pi * torch.arange(N // 2).repeat(H, 1)
        + 0.1 * torch.randn(H, N // 2, generator=g),
        "output_linear.0.weight": conv.weight.detach(),
        "output_linear.0.bias": conv.bias.detach(),
    }


def reference_forward(sd, u):
    """The reference S4D forward on u: (B, H, L), written from its definition."""
    L = u.shape[-1]
    dt = torch.exp(sd["kernel.log_dt"])
    C = torch.view_as_complex(sd["kernel.C"].contiguous())
    A = -torch.exp(sd["kernel.log_A_real"]) + 1j * sd["kernel.A_imag"]
    dtA = A * dt[:, None]
    K = (
        2
        * torch.einsum(
            "hn,hnl->hl", C * (torch.exp(dtA) - 1.0) / A, torch.exp(dtA[..., None] * torch.arange(L))
        ).real
    )
    y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(K, n=2 * L), n=2 * L)[..., :L]
    y = torch.nn.functional.gelu(y + u * sd["D"][:, None])
    y = torch.nn.functional.conv1d(y, sd["output_linear.0.weight"], sd["output_linear.0.bias"])
    return torch.nn.functional.glu(y, dim=-2)


@pytest.mark.parametrize("H,N,L", [(8, 16, 100), (4, 64, 1024), (3, 2, 1)])
def test_outputs_match_reference(H, N, L):
    sd = reference_state_dict(H, N)
    layer = s4d_from_reference(sd).eval()
    u = torch.randn(2, H, L)
    expected = reference_forward(sd, u)
    got = layer(u.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_step_mode_matches_reference_forward():
    sd = reference_state_dict(4, 8)
    layer = s4d_from_reference(sd).double().eval()
    sd64 = {k: v.double() for k, v in sd.items()}
    u = torch.randn(1, 4, 20, dtype=torch.float64)
    state, ys = layer.initial_state(1), []
    for t in range(u.shape[-1]):
        y_t, state = layer.step(u[:, :, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, -1), reference_forward(sd64, u), rtol=1e-9, atol=1e-10)


def test_missing_keys_are_named():
    sd = reference_state_dict(4, 8)
    del sd["kernel.A_imag"]
    with pytest.raises(ValueError, match="kernel.A_imag"):
        s4d_from_reference(sd)
