"""The bare SDN as a trainable model (``model=sdn``): input currents -> predicted LIF membranes, per step.

    x (B, L, C) currents, C = d_input  ->  m_hat[b, :, c] = SDN(x[b, :, c])   (one shared SDN per channel)
    y = m_hat                          when d_output == C (the LIF data set: 1 -> 1, the 193-parameter SDN)
    y = W m_hat + b                    otherwise (a linear readout C -> d_output per step)

The SDN (``lindy.layers.SDN``) is strictly causal: m_hat_t sees x_{t-k} .. x_{t-1}. Its parameters are
``sdn.*``, so a trained model's ``model.sdn.fused()`` is the 153-parameter form ``SDN.pretrained`` loads.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from lindy.layers.base import check_positive_int, check_sequence_input
from lindy.layers.sdn import SDN

__all__ = ["SDNModel"]


class SDNModel(nn.Module):
    """SDN over each input channel, (B, L, d_input) -> (B, L, d_output); see the module docstring.

    Args:
        d_input, d_output: channels in and out (from the data set).
        d_model: the SDN's hidden channels (8 in the reference).  kernel_size: its causal taps (8).
    """

    def __init__(self, d_input: int, d_output: int, *, d_model: int = 8, kernel_size: int = 8):
        super().__init__()
        self.d_input = check_positive_int("d_input", d_input)
        self.d_output = check_positive_int("d_output", d_output)
        self.sdn = SDN(check_positive_int("d_model", d_model), check_positive_int("kernel_size", kernel_size))
        # a readout only where the widths differ: on membrane data the model is the SDN alone
        self.readout = nn.Linear(d_input, d_output) if d_output != d_input else None

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, d_input) float -> (B, L, d_output)."""
        check_sequence_input(x, self.d_input, dtype=self.sdn.decoder.weight.dtype)
        m = rearrange(self.sdn(rearrange(x, "b l c -> b c l")), "b c l -> b l c")
        return m if self.readout is None else self.readout(m)
