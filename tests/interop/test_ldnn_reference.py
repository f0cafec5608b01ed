"""lindy's LDNN loaded from a state_dict of DeepLDNN's ``SSM`` gives the reference's outputs.

The reference code is not vendored (it is GPU-only as shipped): the state_dicts are built here from its
parameter names and shapes, with random, trained-looking values, and its forward pass is written out below
from its definition (research/models.md 2.3) on (B, H, L): the constrained Lambda, ZOH with the regularised
inverse conj(L) / (|L|^2 + 1e-7), the complex kernel materialised and its real part taken, B u per head, the
2L-point FFT convolution (the mirrored kernel [K, 0] + [0, flip K] when bidirectional), 2 C x + D u, then the
activation, head mixer, channel mixer and post-activation.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from lindy.interop.ldnn import ldnn_from_reference


def constrain(raw, neg, imag):
    re, im = raw[..., 0], raw[..., 1]
    re = {
        "clip": lambda r: r.clip(max=-1e-4),
        "softplus": lambda r: -F.softplus(r),
        "sigmoid": lambda r: -torch.sigmoid(r),
        "Gaussian": lambda r: -torch.exp(-(r**2)),
    }[neg](re)
    im = {
        "same": lambda i: i,
        "softplus": F.softplus,
        "sigmoid": torch.sigmoid,
        "Gaussian": lambda i: torch.exp(i**2),
        "clip": lambda i: i.clip(-1, 1),
        "zero": lambda i: 0 * i,
        "negtive": lambda i: i.clip(max=-1e-4),
    }[imag](im)
    return torch.complex(re, im)


def linear(sd, name, y):
    return F.linear(y, sd[f"{name}.weight"], sd[f"{name}.bias"])


def act(sd, kind, y, suffix, p_drop=0.0):
    if kind in ("half_glu1", "half_glu2", "full_glu"):
        z = F.gelu(y)
        if kind == "half_glu1":
            return z * torch.sigmoid(linear(sd, "out2" + suffix, z))
        if kind == "half_glu2":
            return y * torch.sigmoid(linear(sd, "out2" + suffix, z))
        return linear(sd, "out1" + suffix, z) * torch.sigmoid(linear(sd, "out2" + suffix, z))
    return {None: lambda t: t, "gelu": F.gelu, "tanh": torch.tanh}[kind](y)


def reference_forward(sd, u, cfg):
    """DeepLDNN's SSM forward (eval mode) on u (B, H, L) -> (B, H, L), from its definition."""
    batch, H, L = u.shape
    Cc, S, n, _ = sd["Lambda"].shape
    h = H // S
    us = u.reshape(batch, S, h, L)
    lam = constrain(sd["Lambda"], cfg.get("version_A_neg", "clip"), cfg.get("version_A_imag", "same"))
    dt = torch.exp(sd["log_dt"]).expand(Cc, S, n)
    dtA = lam * dt
    beta = (torch.exp(dtA) - 1) * lam.conj() / (lam * lam.conj() + 1e-7)
    K = (torch.exp(dtA[..., None] * torch.arange(L)) * beta[..., None]).real  # (C, S, n, L)
    v = torch.einsum("csnh,bshl->bcsnl", sd["B"], us)
    if cfg.get("bidirectional", False):
        K = F.pad(K, (0, L)) + F.pad(K.flip(-1), (L, 0))
    x = torch.fft.irfft(torch.fft.rfft(K, n=2 * L) * torch.fft.rfft(v, n=2 * L), n=2 * L)[..., :L]
    y = torch.einsum("csmn,bcsnl->bcsml", sd["C"], x)
    if cfg.get("conj_sym", True):
        y = 2 * y
    D_value = cfg.get("D_value", 0)
    if D_value == 1:
        y = y + torch.einsum("csm,bsml->bcsml", sd["D"], us)
    elif D_value != 0:
        y = y + torch.einsum("csmh,bshl->bcsml", sd["D"], us)
    y = y.permute(0, 1, 4, 2, 3).reshape(batch * Cc, L, H)  # (b c) l (s m)
    y = act(sd, cfg.get("activation", "gelu"), y, "")
    if S > 1:
        y = linear(sd, "head_mixer", y)
    y = y.reshape(batch, Cc, L, H).permute(0, 2, 1, 3).reshape(batch, L, Cc * H)
    if Cc > 1:
        y = linear(sd, "channel_mixer", y)
    y = act(sd, cfg.get("acttivation_post"), y, "_post")
    return y.transpose(1, 2)


def reference_state_dict(cfg, n, seed=0):
    """Random tensors with the reference's names and shapes (n modes per head)."""
    g = torch.Generator().manual_seed(seed)
    H, S, Cc = cfg["d_input"], cfg.get("head", 1), cfg.get("channel", 1)
    h = H // S
    re = -torch.exp(torch.randn(Cc, S, n, generator=g)) + 0.1 * torch.randn(Cc, S, n, generator=g)
    im = 10 * torch.randn(Cc, S, n, generator=g)
    lam = torch.stack([re, im], -1)
    lam[..., 0, :] = torch.tensor([1e-3, 2e-3])  # a clipped, tiny eigenvalue: there the 1e-7 matters
    dt_n = n if cfg.get("d_dt_is_n", True) else 1
    sd = {
        "Lambda": lam,
        "log_dt": math.log(1e-3) + torch.rand(Cc, S, dt_n, generator=g) * math.log(100),
        "B": torch.randn(Cc, S, n, h, generator=g),
        "C": torch.randn(Cc, S, h, n, generator=g) / math.sqrt(n),
    }
    D_value = cfg.get("D_value", 0)
    if D_value == 1:
        sd["D"] = torch.randn(Cc, S, h, generator=g)
    elif D_value != 0:
        sd["D"] = torch.randn(Cc, S, h, h, generator=g)
    linears = []
    if S > 1:
        linears.append(("head_mixer", H))
    if Cc > 1:
        linears.append(("channel_mixer", Cc * H))
    for suffix, kind in (("", cfg.get("activation", "gelu")), ("_post", cfg.get("acttivation_post"))):
        if kind == "full_glu":
            linears.append(("out1" + suffix, H))
        if kind in ("half_glu1", "half_glu2", "full_glu"):
            linears.append(("out2" + suffix, H))
    for name, fan_in in linears:
        sd[f"{name}.weight"] = torch.randn(H, fan_in, generator=g) / math.sqrt(fan_in)
        sd[f"{name}.bias"] = torch.randn(H, generator=g)
    return sd


def case(n, L, **cfg):
    """(the reference SSM's keyword arguments, modes per head, length)"""
    return cfg, n, L


GLU1 = dict(D_value=1, activation=None, acttivation_post="half_glu1", keep_d_state=True)  # the configs'
REF_LR = dict(log_dt=1e-3, Lambda=1e-3, B=1e-3, C=4e-3, D=1e-3)
INIT_ONLY = dict(Lambda_init="hippo", B_init="hippo", C_init="trunc_normal", D_init="one", t_init="uniform")
CONFIGS = [
    case(8, 33, d_input=8, d_s=16, head=2, **GLU1),
    case(8, 100, d_input=8, d_s=16, head=2, bidirectional=True, **{**GLU1, "acttivation_post": "half_glu2"},
         lr=REF_LR, trainable=dict(B=True), **INIT_ONLY),
    case(2, 17, d_input=6, d_s=6, head=3, channel=2, conj_sym=False, D_value=2, activation="full_glu",
         acttivation_post="full_glu", d_dt_is_n=False, version_A_neg="softplus", version_A_imag="clip"),
    case(4, 1, d_input=4, d_s=4, bidirectional=True, keep_d_state=True, version_A_neg="Gaussian",
         version_A_imag="negtive"),  # the reference's defaults: GELU before, nothing after, no D
    case(2, 9, d_input=4, d_s=8, head=2, keep_d_state=False, D_value=1, version_A_neg="sigmoid",
         version_A_imag="softplus", acttivation_post="tanh"),  # keep_d_state=False: n = d_s / head / 2
    case(8, 512, d_input=64, d_s=128, head=16, bidirectional=True, **GLU1),
]  # fmt: skip


@pytest.mark.parametrize("cfg,n,L", CONFIGS, ids=[f"cfg{i}" for i in range(len(CONFIGS))])
def test_outputs_match_reference(cfg, n, L):
    sd = reference_state_dict(cfg, n)
    layer = ldnn_from_reference(sd, **cfg).eval()
    u = torch.randn(2, cfg["d_input"], L)
    expected = reference_forward(sd, u, cfg)
    got = layer(u.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    if not cfg.get("bidirectional", False):  # and the recurrence lindy adds gives the same numbers
        state = layer.initial_state(2)
        ys = []
        for t in range(min(L, 12)):
            y_t, state = layer.step(u[:, :, t], state)
            ys.append(y_t)
        torch.testing.assert_close(torch.stack(ys, -1), expected[..., : len(ys)], rtol=1e-5, atol=1e-5)


def test_lr_hints_follow_the_reference_lr():
    cfg, n, _ = CONFIGS[1]
    layer = ldnn_from_reference(reference_state_dict(cfg, n), **cfg)
    assert layer.C._optim == {"lr": 4e-3, "weight_decay": 0.0}
    assert layer.Lambda._optim == {"lr": 1e-3, "weight_decay": 0.0}


def test_loading_leaves_the_global_rng_alone():
    cfg, n, _ = CONFIGS[0]
    sd = reference_state_dict(cfg, n)
    torch.manual_seed(5)
    ldnn_from_reference(sd, **cfg)
    after = torch.rand(3)
    torch.manual_seed(5)
    torch.testing.assert_close(after, torch.rand(3))


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(discrete_method="bilinear"), "discrete_method"),
        (dict(max_kernel_length=10), "max_kernel_length"),
        (dict(d_output=4), "d_output"),
        (dict(speed=1), "speed"),
        (dict(head=4), "head"),
        (dict(D_value=0), "unexpected.*'D'"),
        (dict(acttivation_post=None), "unexpected.*out2_post"),
        (dict(version_A_neg="relu"), "version_A_neg"),
        (dict(activation="glu"), "activation"),
    ],
)
def test_mismatches_are_clear_errors(change, match):
    cfg, n, _ = CONFIGS[0]
    sd = reference_state_dict(cfg, n)
    with pytest.raises(ValueError, match=match):
        ldnn_from_reference(sd, **{**cfg, **change})


def test_missing_and_misshapen_tensors():
    cfg, n, _ = CONFIGS[0]
    sd = reference_state_dict(cfg, n)
    with pytest.raises(ValueError, match="missing.*'C'"):
        ldnn_from_reference({k: v for k, v in sd.items() if k != "C"}, **cfg)
    with pytest.raises(ValueError, match="'B'.*shape"):
        ldnn_from_reference({**sd, "B": sd["B"][..., :1]}, **cfg)
