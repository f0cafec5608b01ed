"""Load a reference LEM model (tk-rusch/LEM: ``cell`` = LEMCell + ``classifier`` = Linear readout).

The reference state_dict holds ``cell.inp2hid.{weight,bias}`` (4d x d_in), ``cell.hid2hid.{weight,bias}``
(3d x d), ``cell.transform_z.{weight,bias}`` (d x d) and ``classifier.{weight,bias}`` (n_out x d), the
packing lindy's LEM uses. The reference runs time-major (L, B, d_in) and reads out the last y (its
classification tasks) or every y (FitzHugh-Nagumo); lindy takes (B, L, d_in).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lindy.layers.lem import LEM

_CELL = (
    "inp2hid.weight",
    "inp2hid.bias",
    "hid2hid.weight",
    "hid2hid.bias",
    "transform_z.weight",
    "transform_z.bias",
)


class LEMReadout(nn.Module):
    """LEM followed by a linear readout of the last state (``readout="last"``) or of every state ("all").

    x: (B, L, d_in) -> (B, n_out) or (B, L, n_out).
    """

    def __init__(self, d_input: int, d_model: int, d_output: int, *, dt: float, readout: str = "last"):
        super().__init__()
        if readout not in ("last", "all"):
            raise ValueError(f"readout must be one of ['last', 'all'], got {readout!r}")
        self.readout = readout
        self.lem = LEM(d_model, d_input=d_input, dt=dt)
        self.classifier = nn.Linear(d_model, d_output)

    def forward(self, x: Tensor) -> Tensor:
        y = self.lem(x)
        return self.classifier(y[:, -1] if self.readout == "last" else y)


def lem_from_reference(state_dict: dict[str, Tensor], dt: float, *, readout: str = "last") -> LEMReadout:
    """A lindy LEM + readout with the same outputs as the reference model loaded with ``state_dict``."""
    missing = [
        k
        for k in [f"cell.{n}" for n in _CELL] + ["classifier.weight", "classifier.bias"]
        if k not in state_dict
    ]
    if missing:
        raise ValueError(f"state_dict is missing reference LEM keys {missing}")
    four_d, d_input = state_dict["cell.inp2hid.weight"].shape
    d_model = four_d // 4
    d_output = state_dict["classifier.weight"].shape[0]
    model = LEMReadout(d_input, d_model, d_output, dt=dt, readout=readout)
    ours = {f"lem.{n}": state_dict[f"cell.{n}"] for n in _CELL}
    ours.update(
        {
            "classifier.weight": state_dict["classifier.weight"],
            "classifier.bias": state_dict["classifier.bias"],
        }
    )
    model.load_state_dict({k: v.detach().to(torch.float32) for k, v in ours.items()})
    return model
