"""SpikingSSM (Shen, Wang et al., AAAI 2025): S4D with its GELU replaced by a spiking neuron.

Per feature h (H of them), with the S4D-Lin kernel K_h (B = 1 fixed, or trainable) and skip D_h:

    z = (K * u + D u) / exp(ln_vth)         (causal FFT convolution, two kernels when bidirectional, and the
                                             learnable threshold, per feature or shared, folded into K, D)
    s = neuron(z)                           (spikes in {0, 1}: SDN prediction, exact LIF, BPTT, SLTT)
    out = GLU(W dropout(s) + b)             (dropout mask tied over L; W: H -> 2H)

The layer is S4D's (``lindy.layers.s4d``: its parameters, kernel, recurrence and chunk), with the output
path replaced, so no second Vandermonde or recurrence. Recurrent mode: S4D's exact recurrence plus the
neuron's step (the SDN's window of the last k inputs, or the LIF's membrane); the state is
(S4D modes (B, H, N/2, 2), neuron state). Spikes turn rounding differences between the FFT and the
recurrence into flips when a potential is within rounding of the threshold, so the registry declares no
exact recurrence; with ``neuron="lif"`` step and forward agree wherever no potential is that close.

``firing_rate`` holds the mean spike rate of the last forward (for sparsity reports), ``sparsity_report``
collects it over a model with the energy estimate of the feature-mixing layers (``lindy.train.evaluate``
averages it over a whole split, for summary.json, ``lindy eval`` and TensorBoard).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from lindy.kernels.diag_ssm import diag_chunk, diag_step
from lindy.kernels.fft_conv import causal_conv
from lindy.layers.base import check_finite_number, register_layer
from lindy.layers.s4d import S4D
from lindy.layers.sdn import build_neuron

__all__ = ["SpikingSSM", "TiedDropout", "sparsity_report", "sparsity_from_rates", "spiking_layers"]
__all__ += ["E_MAC_PJ", "E_AC_PJ"]

#: energy per multiply-accumulate and per accumulate, Horowitz (ISSCC 2014), 45 nm, 32-bit float, in pJ
E_MAC_PJ, E_AC_PJ = 4.6, 0.9


class TiedDropout(nn.Module):
    """Dropout with one mask per (example, feature), shared over time: (B, L, H) or (B, H)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (x.shape[0], 1, x.shape[-1]) if x.dim() == 3 else x.shape
        keep = torch.rand(shape, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1 - self.p)


class SpikingSSM(S4D):
    """Spiking S4D layer. x: (batch, length, d_model) -> y: (batch, length, d_model).

    Args:
        d_model: H features.  d_state: N (N/2 complex modes).  bidirectional: two kernels, no recurrence.
        trainable_B: learn B (init 1), else B = 1 fixed (the reference's S4DKernel).
        neuron: "sdn" | "lif" | "bptt" | "sltt" (``lindy.layers.sdn``).  tau: the neuron's leak.
        learnable_vth, shared_vth: the threshold exp(ln_vth), per feature or one for all.
        dropout: tied over L, on the spikes.  dt_min, dt_max, lr: as S4D (lr caps A, B, dt's lr).
        surrogate, alpha: the surrogate gradient of the spike.
    Parameters: S4D's (log_dt, log_A_real, A_imag, B, C [+ C_reverse], D, output_linear), ln_vth (H,) or
    (1,), and the neuron's frozen SDN (``neuron.sdn.*``, requires_grad False).
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 64,
        bidirectional: bool = False,
        trainable_B: bool = False,
        neuron: str = "sdn",
        tau: float = 0.125,
        learnable_vth: bool = True,
        shared_vth: bool = False,
        dropout: float = 0.0,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        lr: float | None = 1e-3,
        surrogate: str = "piecewise_quadratic",
        alpha: float | None = None,
    ):
        check_finite_number("dropout", dropout, low=0.0, high=1.0)
        super().__init__(
            d_model,
            d_state=d_state,
            init="lin",
            disc="zoh",
            dt_min=dt_min,
            dt_max=dt_max,
            lr=lr,
            bidirectional=bidirectional,
            learn_B=trainable_B,
        )
        self.neuron_kind, self.trainable_B = neuron, bool(trainable_B)
        self.learnable_vth, self.shared_vth = bool(learnable_vth), bool(shared_vth)
        self.activation = nn.Identity()  # S4D's GELU: replaced by the neuron in _output
        self.neuron = build_neuron(neuron, tau, 1.0, surrogate, alpha)
        if self.learnable_vth:
            self.ln_vth = nn.Parameter(torch.zeros(1 if self.shared_vth else d_model))
        self.dropout = TiedDropout(dropout)
        self.firing_rate: Tensor | None = None

    # ------------------------------------------------------------------------------------------------
    def _scale(self, y: Tensor) -> Tensor:
        return y / torch.exp(self.ln_vth) if self.learnable_vth else y

    def _kernels(self, length: int) -> tuple[Tensor, Tensor | None]:
        """S4D's kernels divided by the threshold: (K * u + D u) / v = (K / v) * u + (D / v) u, so the
        division costs (H, L) operations instead of (B, L, H) forward and backward."""
        k, k_rev = super()._kernels(length)
        if not self.learnable_vth:
            return k, k_rev
        inv = torch.exp(-self.ln_vth)[:, None]
        return k * inv, None if k_rev is None else k_rev * inv

    def _mix(self, s: Tensor) -> Tensor:
        # at least float32: a bf16 mean (autocast) would round the rate to 3 digits
        self.firing_rate = s.detach().mean(dtype=torch.promote_types(s.dtype, torch.float32))
        return self.glu(self.output_linear(self.dropout(s)))

    def _output(self, y: Tensor) -> Tensor:
        """The whole-sequence output path (S4D's ``_forward`` calls it with y (B, L, H))."""
        return self._mix(self.neuron(y))  # y is already divided by the threshold (``_kernels``)

    # ------------------------------------------------------------------------------------------------
    def state_shape(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return super().state_shape(), (self.d_model, *self.neuron.state_width())

    def _step(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        modes, cell = state
        _, abar, bbar = self._discrete()
        y, modes = diag_step(abar, bbar, self.C, modes, x_t)
        s, cell = self.neuron.step(self._scale(y + self.D * x_t), cell)
        return self._mix(s), (modes, cell)

    def _forward_with_state(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple]:
        modes, cell = state
        log_abar, abar, bbar = self._discrete()
        k, _ = self._kernels(x.shape[1])
        u = rearrange(x, "b l h -> b h l")
        free, modes = diag_chunk(log_abar, abar, bbar, self.C, modes, u)
        # k is already divided by the threshold (``_kernels``), the state's part is not
        free = rearrange(free, "b h l -> b l h")
        y = rearrange(causal_conv(u, k), "b h l -> b l h") + self._scale(free)
        s, cell = self.neuron.forward_with_state(y, cell)
        return self._mix(s), (modes, cell)


def spiking_layers(model: nn.Module) -> dict[str, SpikingSSM]:
    """{module name ("layer" for the model itself): SpikingSSM} of every spiking layer in ``model``."""
    return {name or "layer": m for name, m in model.named_modules() if isinstance(m, SpikingSSM)}


def sparsity_from_rates(layers: dict[str, SpikingSSM], rates: dict[str, float], length: float) -> dict:
    """The report of ``sparsity_report`` from per-layer firing rates (``rates``: name -> r, names of
    ``layers``) over sequences of ``length`` steps (a mean length where they vary)."""
    if not rates:
        return {"firing_rate": {}, "sparsity": None}
    macs = {
        n: length * layers[n].output_linear.in_features * layers[n].output_linear.out_features for n in rates
    }
    neurons = sum(layers[n].d_model for n in rates)
    mean_rate = sum(rates[n] * layers[n].d_model for n in rates) / neurons
    return {
        "firing_rate": dict(rates),
        "sparsity": 1.0 - mean_rate,
        "energy_ann_j": sum(macs.values()) * E_MAC_PJ * 1e-12,
        "energy_snn_j": sum(rates[n] * macs[n] for n in rates) * E_AC_PJ * 1e-12,
    }


def sparsity_report(model: nn.Module, length: int) -> dict:
    """Firing rates of the last forward and the energy estimate of the feature-mixing layers.

    Per SpikingSSM layer (by module name): its firing rate r (spikes per neuron and step). Network
    sparsity 1 - (mean rate over every neuron). Energy per example of the output projections (H -> 2H per
    step, ``length`` steps): dense input, MACs x 4.6 pJ; spikes, r MACs accumulates x 0.9 pJ (Horowitz 45
    nm, as the paper).
    """
    layers = spiking_layers(model)
    rates = {n: float(m.firing_rate) for n, m in layers.items() if m.firing_rate is not None}
    return sparsity_from_rates(layers, rates, length)


register_layer(
    "spiking_ssm",
    SpikingSSM,
    test_configs={
        "sdn": dict(d_state=4),
        "lif": dict(d_state=4, neuron="lif"),
        "bidirectional": dict(d_state=4, bidirectional=True),
        "trainable-B-shared-vth-sltt": dict(d_state=6, trainable_B=True, shared_vth=True, neuron="sltt"),
        "tau0.2-bptt-atan": dict(d_state=4, tau=0.2, neuron="bptt", surrogate="atan", learnable_vth=False),
    },
    invalid_configs=[
        dict(d_state=3),
        dict(dt_min=float("nan")),
        dict(neuron="gelu"),
        dict(tau=0.3),
        dict(dropout=1.5),
        dict(surrogate="relu"),
    ],
    exact_recurrence=False,
    differentiable=False,
    bench_kwargs=dict(d_state=64),
)
