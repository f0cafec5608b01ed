"""Load the standalone S4D of state-spaces/s4 (``models/s4/s4d.py``) into a lindy ``S4D``.

The reference stores ``D`` (H,), ``kernel.log_dt`` (H,), ``kernel.C`` (H, N/2, 2), ``kernel.log_A_real``
(H, N/2), ``kernel.A_imag`` (H, N/2) and ``output_linear.0`` = Conv1d(H, 2H, 1) followed by GLU over
channels. It uses S4D-Lin's parameterisation with ZOH and B = 1 folded into C, which lindy's S4D reproduces
with ``disc="zoh"``, ``learn_B=False``. The reference takes (B, H, L); lindy takes (B, L, H).
"""

from __future__ import annotations

import torch

from lindy.layers.s4d import S4D

_REQUIRED = (
    "D",
    "kernel.log_dt",
    "kernel.C",
    "kernel.log_A_real",
    "kernel.A_imag",
    "output_linear.0.weight",
    "output_linear.0.bias",
)


def s4d_from_reference(state_dict: dict[str, torch.Tensor], **config) -> S4D:
    """Build a lindy S4D whose outputs equal the reference S4D loaded with ``state_dict``.

    ``config`` is passed to ``S4D`` (e.g. ``dropout``); d_model and d_state are read from the tensors.
    """
    missing = [k for k in _REQUIRED if k not in state_dict]
    if missing:
        raise ValueError(
            f"state_dict is missing reference S4D keys {missing}; expected keys {list(_REQUIRED)}"
        )
    H, n_modes, _ = state_dict["kernel.C"].shape
    for name in ("kernel.log_dt", "D"):
        if tuple(state_dict[name].shape) != (H,):
            raise ValueError(
                f"state_dict[{name!r}] must have shape ({H},), got {tuple(state_dict[name].shape)}"
            )
    weight = state_dict["output_linear.0.weight"]
    if tuple(weight.shape) != (2 * H, H, 1):
        raise ValueError(
            f"output_linear.0.weight must have shape ({2 * H}, {H}, 1), got {tuple(weight.shape)}"
        )
    config = {"disc": "zoh", "learn_B": False, **config}
    layer = S4D(H, d_state=2 * n_modes, **config)
    ours = {
        "log_dt": state_dict["kernel.log_dt"],
        "log_A_real": state_dict["kernel.log_A_real"],
        "A_imag": state_dict["kernel.A_imag"],
        "C": state_dict["kernel.C"],
        "D": state_dict["D"],
        "output_linear.weight": weight[..., 0],
        "output_linear.bias": state_dict["output_linear.0.bias"],
        "B": torch.stack([torch.ones(H, n_modes), torch.zeros(H, n_modes)], -1),  # the reference's B is 1
    }
    layer.load_state_dict({k: v.detach().to(layer.C.dtype) for k, v in ours.items()})
    return layer
