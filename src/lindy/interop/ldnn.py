"""Load DeepLDNN's layer (leonty1/DeepLDNN, ``ldnn_multihead_A_complex.SSM``) into a lindy ``LDNN``.

The reference's parameters have lindy's names and shapes: ``Lambda`` (C, S, n, 2), ``log_dt`` (C, S, n) or
(C, S, 1), ``B`` (C, S, n, h), ``C`` (C, S, h, n), ``D`` (C, S, h) or (C, S, h, h) (absent with
``D_value=0``), and the Linear layers ``head_mixer``, ``channel_mixer``, ``out1``, ``out2``, ``out1_post``,
``out2_post``. Its ZOH inverts Lambda as conj(Lambda) / (|Lambda|^2 + 1e-7), which the lindy layer does with
``zoh_eps=1e-7``. The reference takes and returns (B, H, L); lindy takes (B, L, H).
"""

from __future__ import annotations

import torch

from lindy.layers.ldnn import LDNN, LR_KEYS

__all__ = ["ldnn_from_reference"]

# the reference SSM's own defaults, for keywords the caller did not pass
REFERENCE_DEFAULTS = dict(
    d_input=1,
    d_output=None,
    d_s=256,
    bidirectional=False,
    channel=1,
    head=1,
    dropout=0.0,
    dt_min=1e-3,
    dt_max=1e-1,
    d_dt_is_n=True,
    lr=None,
    D_value=0,
    conj_sym=True,
    keep_d_state=False,
    discrete_method="zoh",
    version_A_neg="clip",
    version_A_imag="same",
    max_real_Lambda=1e-4,
    max_kernel_length=None,
    activation="gelu",
    acttivation_post=None,
)
# init-only or unused by this layer's forward (some come from the reference's Hydra configs)
IGNORED = {
    "trainable", "Lambda_init", "B_init", "C_init", "D_init", "t_init", "l_max", "transposed", "complex_ssm",
    "version_B_imag", "version_C_imag", "postact", "hyper_act", "verbose", "_name_",
}  # fmt: skip
REFERENCE_EPS = 1e-7
_IDENTITY = (None, "id", "identity", "linear")


def _lambda_real(version: str) -> str:
    """The reference's ``version_A_neg`` (matched by substring, in its order) as lindy's ``lambda_real``."""
    for key, ours in (
        ("softplus", "softplus"),
        ("sigmoid", "sigmoid"),
        ("Gaussian", "gaussian"),
        ("clip", "clip"),
    ):
        if isinstance(version, str) and key in version:
            return ours
    raise ValueError(f"version_A_neg must contain softplus, sigmoid, Gaussian or clip, got {version!r}")


def _lambda_imag(version) -> str:
    """The reference's ``version_A_imag`` as lindy's ``lambda_imag`` (same order of substring tests)."""
    if version in ("identity", None, "same"):
        return "same"
    pairs = [("softplus", "softplus"), ("sigmoid", "sigmoid"), ("Gaussian", "gaussian"), ("clip", "clip")]
    pairs += [("zero", "zero")]
    for key, ours in pairs:
        if isinstance(version, str) and key in version:
            return ours
    if isinstance(version, str) and "negtive" in version:
        return "negative"
    raise ValueError(f"version_A_imag {version!r} is not one of the reference's options")


def _activation(name, what: str):
    if name in _IDENTITY:
        return None
    if name in ("glu", "modrelu"):
        raise ValueError(f"{what}={name!r} changes the width or needs a size: not supported")
    return name


def ldnn_from_reference(state_dict: dict[str, torch.Tensor], **config) -> LDNN:
    """A lindy LDNN whose outputs equal DeepLDNN's ``SSM(**config)`` loaded with ``state_dict``.

    ``config``: the keyword arguments the reference was built with (its defaults fill the rest); the
    init-only ones are accepted and ignored, except ``lr`` which becomes the same lr hints. The modes per head
    are read from ``Lambda``'s shape (so ``d_s`` and ``keep_d_state`` need no interpretation). The returned
    layer is in training mode, as a fresh module; call ``.eval()`` to compare outputs.
    """
    unknown = sorted(set(config) - set(REFERENCE_DEFAULTS) - IGNORED)
    if unknown:
        raise ValueError(
            f"unknown reference SSM keyword(s) {unknown}; expected among {sorted(REFERENCE_DEFAULTS)}"
        )
    cfg = {**REFERENCE_DEFAULTS, **config}
    if "Lambda" not in state_dict or state_dict["Lambda"].dim() != 4:
        raise ValueError("state_dict needs 'Lambda' of shape (channel, head, n, 2) from the reference SSM")
    H, S, Cc = cfg["d_input"], cfg["head"], cfg["channel"]
    channels, heads, n, _ = state_dict["Lambda"].shape
    if (channels, heads) != (Cc, S):
        raise ValueError(
            f"Lambda has shape {tuple(state_dict['Lambda'].shape)}, expected (channel={Cc}, head={S}, n, 2)"
        )
    if cfg["d_output"] not in (None, H):
        raise ValueError(
            f"d_output must equal d_input={H} (lindy layers keep the width), got {cfg['d_output']}"
        )
    if cfg["discrete_method"] != "zoh":
        raise ValueError(
            f"discrete_method must be 'zoh' (its only working one), got {cfg['discrete_method']!r}"
        )
    if cfg["max_kernel_length"] is not None:
        raise ValueError(
            f"max_kernel_length must be None (a full-length kernel), got {cfg['max_kernel_length']!r}"
        )
    lr = cfg["lr"]
    layer_lr = None if lr is None else {k: v for k, v in dict(lr).items() if k in LR_KEYS}
    D_form = "none" if cfg["D_value"] == 0 else ("vector" if cfg["D_value"] == 1 else "matrix")
    with torch.random.fork_rng(devices=[]):  # building draws an init that the load replaces
        layer = LDNN(
            H,
            d_state=S * n,
            heads=S,
            channels=Cc,
            bidirectional=bool(cfg["bidirectional"]),
            conj_sym=bool(cfg["conj_sym"]),
            dt_min=cfg["dt_min"],
            dt_max=cfg["dt_max"],
            dt_per_state=bool(cfg["d_dt_is_n"]),
            lambda_real=_lambda_real(cfg["version_A_neg"]),
            lambda_imag=_lambda_imag(cfg["version_A_imag"]),
            max_real_lambda=float(cfg["max_real_Lambda"]),
            D=D_form,
            activation=_activation(cfg["activation"], "activation"),
            post_activation=_activation(cfg["acttivation_post"], "acttivation_post"),
            dropout=float(cfg["dropout"]),
            init="reference",
            lr=layer_lr,
            zoh_eps=REFERENCE_EPS,
        )
    ours = layer.state_dict()
    missing, extra = sorted(set(ours) - set(state_dict)), sorted(set(state_dict) - set(ours))
    if missing or extra:
        raise ValueError(
            f"state_dict does not match the reference SSM built with this config: missing {missing}, "
            f"unexpected {extra}"
        )
    for key, value in ours.items():
        if tuple(state_dict[key].shape) != tuple(value.shape):
            raise ValueError(
                f"state_dict[{key!r}] has shape {tuple(state_dict[key].shape)}, expected {tuple(value.shape)}"
            )
    layer.load_state_dict({k: v.detach().to(torch.float32) for k, v in state_dict.items()})
    return layer
