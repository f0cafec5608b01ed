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


# ----------------------------------------------------------------------------------------------------
# recurrent="lds": the spectral term as the distilled LDS (SpectraLDS)
# ----------------------------------------------------------------------------------------------------
def step_loop(m, x):
    state, ys = m.initial_state(x.shape[0]), []
    for t in range(x.shape[1]):
        y_t, state = m.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, 1), state


def fit_error_bound(m, x):
    """max over t of |y_lds - y_exact|_o, bounded from the fit's per-filter MSE alone.

    y_lds - y = sum_f sum_{s <= t} e_f[s] (v_{t-s} M_f)_o with e_f the fit's error on filter f (lags
    s < L <= max_len) and v the LDS input (u, or x_hat = u M_in). By Cauchy-Schwarz in s,
    |.| <= sum_f ||e_f||_2 ||(v M_f)_o||_2 with ||e_f||_2 = sqrt(max_len mse_f): the fit's error, no slack.
    """
    fit = m.lds_fit()
    err = (m.max_len * fit.mse).sqrt()  # (F,)
    if m.form == "exact":
        ms = torch.cat([m.M_phi_plus, m.M_phi_minus]) if m.two_branches else m.M_phi_plus
        signal = torch.stack([(x @ mf).norm(dim=1) for mf in ms], 1)  # (B, F, d_out)
    else:
        xhat = x @ m.M_inputs
        mf = torch.cat([m.M_filters, m.M_filters_minus]) if m.two_branches else m.M_filters
        signal = xhat.norm(dim=1)[:, None, :] * mf.abs()[None]  # (B, F, d_out)
    return (err[None, :, None] * signal).sum(1)  # (B, d_out)


@pytest.mark.parametrize("form", ["exact", "approx"])
def test_lds_step_matches_forward_to_the_fit_error(form):
    # lds_state=16 (8 eigenvalues a branch) leaves a real fit error (MSE ~ 1e-5) for the bound to bite on
    m = layer(d_model=3, d_input=2, num_filters=6, max_len=128, form=form, recurrent="lds", lds_state=16)
    x = torch.randn(2, 128, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = m(x)
        y_lds, _ = step_loop(m, x)
        bound = fit_error_bound(m, x)
    gap = (y_lds - y).abs().amax(1)  # (B, d_out)
    assert (gap <= bound * (1 + 1e-9) + 1e-12).all(), (gap, bound)
    assert gap.max() > 1e-6 * bound.max()  # the LDS is not secretly the exact filter
    assert m.lds_fit().mse.max() > 1e-8


def test_lds_with_the_default_state_is_exact_to_round_off():
    m = layer(d_model=2, num_filters=4, max_len=64, recurrent="lds", ar_u=2, shift=1)
    x = torch.randn(2, 64, 2, dtype=F64)
    assert m.lds_fit().mse.max() < 1e-28  # 160 eigenvalues for 64 taps: the fit interpolates
    assert m.state_shape() == ((2, 160, 2), (1, 2), (1, 2))  # O(1) in max_len
    torch.testing.assert_close(step_loop(m, x)[0], m(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("form", ["exact", "approx"])
def test_lds_chunked_equals_the_step_loop(form):
    m = layer(
        d_model=2,
        num_filters=4,
        max_len=32,
        form=form,
        recurrent="lds",
        lds_state=12,
        ar_u=3,
        ar_y=2,
        shift=2,
    )
    set_(m, M_y=0.2 * torch.randn(2, 2, 2))
    x = torch.randn(2, 90, 2, dtype=F64)  # past max_len: the LDS has no window to run out of
    want, want_state = step_loop(m, x)
    state, ys = m.initial_state(2), []
    for a, b in [(0, 1), (1, 8), (8, 40), (40, 90)]:
        y, state = m.forward_with_state(x[:, a:b], state)
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys, 1), want, rtol=1e-9, atol=1e-10)
    for got, ref in zip(state, want_state):
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-10)


def test_lds_of_set_filters_and_hankel_l():
    m = layer(d_model=2, num_filters=3, max_len=40, hankel="L", recurrent="lds", lds_state=20)
    fit = m.lds_fit()
    assert fit.readout.shape == (20, 3) and torch.equal(fit.eigenvalues[10:], -fit.eigenvalues[:10])
    from lindy.kernels.spectral import spectral_filters

    custom = layer(d_model=2, num_filters=3, max_len=40, hankel="L", recurrent="lds", lds_state=20)
    custom.set_filters(2 * spectral_filters(40, 3, "L"))
    torch.testing.assert_close(custom.lds_fit().readout, 2 * fit.readout)
    x = torch.randn(1, 40, 2, dtype=F64)
    with torch.no_grad():
        gap = (step_loop(custom, x)[0] - custom(x)).abs().amax(1)
        assert (gap <= fit_error_bound(custom, x) * (1 + 1e-9) + 1e-12).all()


@pytest.mark.parametrize("recurrent", ["exact", "lds"])
@pytest.mark.parametrize("form", ["exact", "approx"])
def test_step_caches_follow_the_parameters(form, recurrent):
    """The step keeps its projections and psi between calls: an in-place update (an optimiser step)
    must reach the next step, and a step under autograd still gets gradients."""
    m = layer(d_model=2, num_filters=3, max_len=16, form=form, recurrent=recurrent, lds_state=40)
    x = torch.randn(2, 16, 2, dtype=F64)
    with torch.no_grad():
        step_loop(m, x)
        for p in m.parameters():
            p.mul_(1.5)
        torch.testing.assert_close(step_loop(m, x)[0], m(x), rtol=1e-9, atol=1e-9)
        m.float()  # .to() swaps the storage without bumping the version
        x32 = x.float()
        # float32 round-off of the LDS (~3e-5 here); stale float64 caches would fail outright
        torch.testing.assert_close(step_loop(m, x32)[0], m(x32), rtol=1e-3, atol=1e-3)
        m.double()
    y, _ = step_loop(m, x)
    y.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
