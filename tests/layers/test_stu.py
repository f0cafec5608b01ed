"""STU: the check values of research/models.md 7.4, its forms against each other, streaming, hints."""

from __future__ import annotations

import pytest
import torch

from lindy.layers.stu import STU

F64 = torch.float64
U8 = torch.tensor([1, -1, 0.5, 2, 0, -0.5, 1, 0.25], dtype=F64)


def layer(**kwargs) -> STU:
    torch.manual_seed(0)
    kwargs = {"output": "none", **kwargs}
    return STU(kwargs.pop("d_model", 1), **kwargs).to(F64).eval()


def set_(module, **values):
    with torch.no_grad():
        for name, value in values.items():
            getattr(module, name).copy_(
                torch.as_tensor(value, dtype=F64).reshape(getattr(module, name).shape)
            )


def run(module, u=U8):
    return module(u.view(1, -1, 1))[0, :, 0]


def t64(values):
    return torch.tensor(values, dtype=F64)


PLUS = [0.625254, -0.089260, 0.091498, 1.342180, 1.123369, 0.328167, 0.620728, 0.573275]
MINUS = [0.625254, -1.161247, 1.163485, 0.529105, -0.743521, 0.241056, 0.551128, -0.334404]


def test_flash_exact_check_values():
    m = layer(num_filters=4, max_len=8)
    set_(m, M_phi_plus=torch.ones(4), M_phi_minus=torch.zeros(4))
    torch.testing.assert_close(run(m), t64(PLUS), atol=1e-6, rtol=0)
    set_(m, M_phi_plus=torch.zeros(4), M_phi_minus=torch.ones(4))
    torch.testing.assert_close(run(m), t64(MINUS), atol=1e-6, rtol=0)
    set_(m, M_phi_plus=torch.ones(4))
    want = [1.250507, -1.250507, 1.254983, 1.871285, 0.379848, 0.569223, 1.171856, 0.238871]
    torch.testing.assert_close(run(m), t64(want), atol=1e-6, rtol=0)


def test_deepmind_check_values():
    m = layer(num_filters=4, max_len=8, branches="positive", shift=2, ar_u=3, ar_y=2)
    set_(m, M_phi_plus=torch.ones(4), M_u=[0.5, 0.25, 0.125], M_y=[0.3, -0.1])
    want = [0.5, -0.1, 0.670254, 1.121816, 0.923518, 1.507054, 1.858134, 1.047402]
    torch.testing.assert_close(run(m), t64(want), atol=1e-6, rtol=0)
    y = m.forward_with_state(U8.view(1, -1, 1)[:, :3], m.initial_state(1))[0]
    torch.testing.assert_close(y[0, :, 0], t64(want[:3]), atol=1e-6, rtol=0)


def test_ar_unit_cases():
    m = layer(num_filters=2, max_len=8, branches="positive", ar_u=2, ar_y=1)
    set_(m, M_phi_plus=torch.zeros(2), M_u=[1.0, 0.0], M_y=[0.0])
    torch.testing.assert_close(run(m), U8)  # y = u
    set_(m, M_u=[0.0, 1.0])
    torch.testing.assert_close(run(m), torch.cat([U8.new_zeros(1), U8[:-1]]))  # y_t = u_{t-1}, y_0 = 0
    set_(m, M_u=[1.0, 0.0], M_y=[0.7])
    impulse = torch.zeros(8, dtype=F64)
    impulse[0] = 1
    torch.testing.assert_close(run(m, impulse), 0.7 ** torch.arange(8, dtype=F64))


def test_shared_filter_quirk_cancels_odd_lags():
    m = layer(d_model=3, num_filters=3, max_len=16, form="approx", approx_shared_filter=True)
    x = torch.zeros(1, 16, 3, dtype=F64)
    x[0, 0] = 1.0
    impulse = m(x)[0]  # the response to a unit input at t = 0: psi_o[s] (1 + (-1)^s) (x M_in)_o
    assert impulse[1::2].abs().max() < 1e-12 and impulse[0::2].abs().max() > 1e-3


def test_approx_equals_exact_with_factorised_projections():
    g = torch.Generator().manual_seed(3)
    for shared in (False, True):
        approx = layer(
            d_model=3, d_input=2, num_filters=4, max_len=12, form="approx", approx_shared_filter=shared
        )
        exact = layer(d_model=3, d_input=2, num_filters=4, max_len=12)
        m_in, mf = approx.M_inputs, approx.M_filters
        mf_minus = mf if shared else approx.M_filters_minus
        set_(exact, M_phi_plus=mf[:, None, :] * m_in[None], M_phi_minus=mf_minus[:, None, :] * m_in[None])
        x = torch.randn(2, 10, 2, generator=g, dtype=F64)
        torch.testing.assert_close(approx(x), exact(x))


@pytest.mark.parametrize("form", ["exact", "approx"])
def test_prefix_outputs_do_not_depend_on_the_length(form):
    m = layer(d_model=2, num_filters=3, max_len=20, form=form, ar_u=2, ar_y=1, shift=1)
    set_(m, M_y=[[0.2, -0.1], [0.05, 0.3]])
    x = torch.randn(2, 20, 2, dtype=F64)
    full = m(x)
    for length in (1, 7, 13):
        torch.testing.assert_close(m(x[:, :length]), full[:, :length])


@pytest.mark.parametrize("form", ["exact", "approx"])
def test_streaming_equals_forward_with_ar_terms_beyond_max_len(form):
    m = layer(d_model=2, num_filters=3, max_len=6, form=form, ar_u=3, ar_y=2, shift=2, output="glu")
    set_(m, M_y=0.2 * torch.randn(2, 2, 2))
    x = torch.randn(2, 15, 2, dtype=F64)  # longer than max_len: the filters are zero beyond 6 taps
    full = m(x)
    state, ys = m.initial_state(2), []
    for t in range(15):
        y_t, state = m.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), full)
    state, ys = m.initial_state(2), []
    for a, b in [(0, 4), (4, 5), (5, 15)]:
        y, state = m.forward_with_state(x[:, a:b], state)
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys, 1), full)


def test_hankel_l_has_one_branch_and_hints():
    m = STU(4, hankel="L", max_len=16, num_filters=3, ar_y=2)
    assert not hasattr(m, "M_phi_minus")
    assert m.M_y._optim == {"lr": 5e-5, "weight_decay": 0.0} and (m.M_y == 0).all()
    z = STU(4, init="zero", max_len=16, num_filters=3, ar_u=3)
    assert (z.M_phi_plus == 0).all() and z.M_u.abs().max() <= 2 / 4**0.5


def test_float32_and_backward():
    m = STU(8, num_filters=4, max_len=64, ar_u=2, ar_y=1)
    x = torch.randn(3, 50, 8, requires_grad=True)
    y = m(x)
    y.square().mean().backward()
    assert y.dtype == torch.float32 and torch.isfinite(x.grad).all() and m.M_phi_plus.grad.abs().sum() > 0
