"""LSSL: the issue's reference values, kernel equality with the dense Krylov kernel, learned structure,
rate scaling, learn modes and optimiser hints. (Contract checks are in tests/conformance.)"""

import math

import pytest
import torch
from torch import nn

from lindy.kernels.discretize import gbt_dense
from lindy.kernels.krylov import krylov_kernel, krylov_loop
from lindy.layers import LSSL

ABAR = [
    [0.904762, 0, 0, 0],
    [-0.149961, 0.818182, 0, 0],
    [-0.159930, -0.306165, 0.739130, 0],
    [-0.141923, -0.271694, -0.428701, 0.666667],
]
BBAR = [0.095238, 0.149961, 0.159930, 0.141923]
K_REF = [0.547052, 0.223439, 0.063994, -0.004599, -0.025622, -0.023929]
U = [0.126, -0.132, 0.640, 0.105, -0.536, 0.362]
Y_REF = [0.131929, -0.110058, 0.648683, 0.243915, -0.499424, 0.263412]


def bare_lssl(**kwargs) -> LSSL:
    """One feature, N=4, dt=0.1, C=1, D=0.5, and an identity output path, so layer(u) is the SSM's y."""
    layer = LSSL(1, d_state=4, learn=0, **kwargs).double()
    with torch.no_grad():
        layer.log_dt.fill_(math.log(0.1))
        layer.C.fill_(1.0)
        layer.D.fill_(0.5)
        layer.output_linear.weight.fill_(1.0)
        layer.output_linear.bias.zero_()
    layer.activation = nn.Identity()
    return layer.eval()


def test_reference_discretisation_kernel_and_output():
    layer = bare_lssl()
    Abar, Bbar = layer.discrete()
    torch.testing.assert_close(Abar[0], torch.tensor(ABAR, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(Bbar[0], torch.tensor(BBAR, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        layer.kernel(6)[0, 0], torch.tensor(K_REF, dtype=torch.float64), atol=1e-6, rtol=0
    )
    u = torch.tensor(U, dtype=torch.float64).view(1, 6, 1)
    y_ref = torch.tensor(Y_REF, dtype=torch.float64)
    torch.testing.assert_close(layer(u)[0, :, 0], y_ref, atol=1e-6, rtol=0)  # by convolution
    state, ys = layer.initial_state(1), []
    for t in range(6):  # by recurrence
        y_t, state = layer.step(u[:, t], state)
        ys.append(y_t[0, 0])
    torch.testing.assert_close(torch.stack(ys), y_ref, atol=1e-6, rtol=0)


def dense_reference(layer: LSSL, length: int) -> torch.Tensor:
    A, B = layer.continuous()
    Abar, Bbar = gbt_dense(A, B, layer.dt(), layer.alpha)
    return krylov_kernel(Abar, Bbar, layer.C, length)


@pytest.mark.parametrize("method", ["blocked", "cauchy"])
@pytest.mark.parametrize("N", [4, 64, 256])
@pytest.mark.parametrize("length", [1, 7, 1000, 4096])
def test_fast_kernels_equal_dense_krylov(method, N, length):
    torch.manual_seed(N + length)
    layer = LSSL(3, d_state=N, channels=2, kernel=method).double()
    assert layer.structured
    with torch.no_grad():
        k = layer.kernel(length)
    ref = dense_reference(layer, length)
    assert k.shape == (3, 2, length)
    assert ((k - ref).norm() / ref.norm()).item() <= 1e-4


@pytest.mark.parametrize("method", ["blocked", "cauchy"])
@pytest.mark.parametrize("measure", ["legt", "lagt"])
def test_other_measures_exactly(measure, method):
    layer = LSSL(2, d_state=16, measure=measure, kernel=method).double()
    with torch.no_grad():
        k = layer.kernel(300)
    ref = dense_reference(layer, 300)
    assert ((k - ref).norm() / ref.norm()).item() <= 1e-8


@pytest.mark.parametrize("method", ["blocked", "cauchy"])
def test_structure_holds_for_any_learned_value(method):
    """After an arbitrary update of (w, P, B, dt), the fast kernel still equals the dense one."""
    torch.manual_seed(0)
    layer = LSSL(4, d_state=8, learn=2, channels=2, kernel=method).double()
    with torch.no_grad():
        for p in (layer.w, layer.P, layer.B, layer.log_dt):
            p.add_(0.3 * torch.randn_like(p))
        k = layer.kernel(500)
    ref = dense_reference(layer, 500)
    assert ((k - ref).norm() / ref.norm()).item() <= 1e-8
    assert torch.allclose(
        krylov_loop(*gbt_dense(*layer.continuous(), layer.dt()), layer.C, 50), ref[..., :50]
    )


@pytest.mark.parametrize("disc", ["gbt", "zoh"])
def test_dense_parameterisation_equals_plain_powers(disc):
    layer = LSSL(2, d_state=5, measure="random", learn=1, disc=disc).double()
    assert not layer.structured
    with torch.no_grad():
        torch.testing.assert_close(layer.kernel(40), krylov_loop(*layer.discrete(), layer.C, 40))


def test_rate_resamples_a_smooth_signal():
    """At rate 2 on a twice-as-dense sampling of a smooth input, the output at the shared time points
    is nearly the output at rate 1 (the continuous-time view); unrelated rates are not."""
    torch.manual_seed(0)
    layer = LSSL(4, d_state=16, dt_min=0.002, dt_max=0.004).double().eval()
    t1 = torch.arange(400, dtype=torch.float64)

    def signal(t):
        return torch.stack([torch.sin(2 * math.pi * t / 97), torch.cos(2 * math.pi * t / 151)] * 2, -1)

    with torch.no_grad():
        y1 = layer(signal(t1)[None])
        layer.rate = 2.0
        y2 = layer(signal(torch.arange(800, dtype=torch.float64) / 2)[None])[:, ::2]
        layer.rate = 1.0
        y_wrong = layer(signal(torch.arange(800, dtype=torch.float64) / 2)[None])[:, ::2]
    err = (y2 - y1)[:, 50:].abs().max() / y1.abs().max()
    wrong = (y_wrong - y1)[:, 50:].abs().max() / y1.abs().max()
    assert err < 1e-2 and wrong > 50 * err, (err, wrong)


def test_learn_modes_and_optimiser_hints():
    fixed = LSSL(4, d_state=8, learn=0)
    assert {n for n, _ in fixed.named_parameters()} == {
        "C",
        "D",
        "output_linear.weight",
        "output_linear.bias",
    }
    shared, per_feature = LSSL(4, d_state=8, learn=1), LSSL(4, d_state=8, learn=2)
    assert (
        shared.w.shape == (1, 4, 2) and per_feature.w.shape == (4, 4, 2) and per_feature.P.shape == (4, 8, 1)
    )
    for name in ("w", "P", "B"):
        assert getattr(shared, name)._optim == {"lr": 1e-4, "weight_decay": 0.0}
    assert shared.log_dt._optim == {"lr": 1e-3, "weight_decay": 0.0}
    dense = LSSL(4, d_state=8, measure="random", learn=2)
    assert dense.A.shape == (4, 8, 8) and dense.A._optim["lr"] == 1e-4
    assert not isinstance(LSSL(4, d_state=8, learn=1, learn_dt=False).log_dt, nn.Parameter)


def test_eval_kernel_is_cached_and_refreshed_after_an_update():
    layer = LSSL(2, d_state=4).eval()
    x = torch.randn(1, 10, 2)
    with torch.no_grad():
        y = layer(x)
        assert torch.equal(layer(x), y) and layer._cache.value("kernel") is not None
        layer.C.add_(1.0)
        assert not torch.allclose(layer(x), y)
        layer.rate = 3.0
        assert layer._cache.key("kernel") == (10, 1.0)
        layer(x)
        assert layer._cache.key("kernel") == (10, 3.0)


def test_invalid_rate_is_refused():
    with pytest.raises(ValueError, match="rate must be > 0"):
        LSSL(2, d_state=4).rate = -1.0
