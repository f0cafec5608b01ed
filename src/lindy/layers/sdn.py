"""SDN, the surrogate dynamic network (Shen, Wang et al., AAAI 2025), and the spiking neurons built on it.

An SDN predicts the LIF's decayed membrane m_t = tau u_{t-1} (``lindy.kernels.lif``) from the input
current in parallel, so a spiking layer trains without iterating the neuron. Training form (193 params,
d = 8 channels, k = 8 taps), on x (..., L), time last:

    h = W_enc x                                    (1x1, no bias: 8)
    h = ReLU(BN(dwconv_k(h)))                      (depthwise, left padding k: sees x_{t-k..t-1} only)
    h = ReLU(BN(W_f h + b_f) + h)                  (1x1 feature mix with residual)
    m = W_dec h + b_dec                            (1x1 decoder) -> (..., L)

``SDN.fused()`` folds the encoder and both BatchNorms into the 153-parameter ``FusedSDN`` (conv1 (8, 1, k),
conv2 (8, 8, 1), conv3 (1, 8, 1), each with a bias), the form the reference ships and lindy ships at tau
0.2 and 0.125 (``SDN.pretrained(tau=...)``, ``lindy/weights/``, trained by ``benchmarks/train_sdn.py``).

Neurons map a current x (B, L, H) to spikes (B, L, H), time on dim 1:

- ``SDNNeuron``: m_hat = v_th SDN(x / v_th) without gradient (the LIF's scale invariance lets one SDN
  trained at v_th = 1 serve every threshold); s = H(m_hat + x - v_th) with the surrogate gradient through
  the explicit x only (the reference's rule). Its step keeps the last k inputs and equals its forward.
  On CPU the membrane is one fused C++ loop over (B, L, H) (``FusedSDN.features_last``,
  ``lindy.kernels.sdn_cpu``), the torch path its announced fallback. ``neuron="lif"`` swaps in the
  exact LIF (forward and step).
- ``LIFNeuron``: the exact LIF iterated with surrogate gradients, ``mode`` "bptt" or "sltt" (baselines).

``neuron_agreement(model, x)`` reports how often each SDN neuron's spikes agree with the exact LIF's on the
model's real activations. ``spike_agreement``/``membrane_mae`` are the SDN metrics.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lindy.kernels import memory
from lindy.kernels.lif import LIF_MODES, lif_spikes, lif_step
from lindy.kernels.surrogate import check_surrogate, spike
from lindy.layers.base import SequenceLayer, check_choice, check_finite_number, register_layer

__all__ = [
    "SDN",
    "FusedSDN",
    "SDNNeuron",
    "LIFNeuron",
    "SpikingNeuron",
    "NEURONS",
    "build_neuron",
    "neuron_agreement",
    "spike_agreement",
    "membrane_mae",
    "pretrained_path",
]

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
PRETRAINED_TAUS = (0.125, 0.2)
NEURONS = ("sdn", "lif", "bptt", "sltt")


def pretrained_path(tau: float) -> Path:
    """The shipped fused SDN for ``tau`` (lindy/weights/sdn_tau<tau>.safetensors)."""
    if tau not in PRETRAINED_TAUS:
        raise ValueError(
            f"lindy ships SDNs for tau in {PRETRAINED_TAUS}, got tau={tau!r}; train one with "
            "benchmarks/train_sdn.py --tau ..."
        )
    return WEIGHTS / f"sdn_tau{tau}.safetensors"


def _as_rows(x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """(..., L) -> (rows, 1, L) and the leading shape."""
    return x.reshape(-1, 1, x.shape[-1]), x.shape[:-1]


class SDN(nn.Module):
    """The training form of the SDN: x (..., L) -> predicted membrane m_hat (..., L); 193 parameters."""

    def __init__(self, d_model: int = 8, kernel_size: int = 8):
        super().__init__()
        self.d_model, self.kernel_size = d_model, kernel_size
        self.encoder = nn.Conv1d(1, d_model, 1, bias=False)
        self.temporal = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model)
        self.temporal_norm = nn.BatchNorm1d(d_model)
        self.feature = nn.Conv1d(d_model, d_model, 1)
        self.feature_norm = nn.BatchNorm1d(d_model)
        self.decoder = nn.Conv1d(d_model, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        lead, length, k = x.shape[:-1], x.shape[-1], self.kernel_size
        # channels last over the unfolded windows (x_{t-k} .. x_{t-1}, left padding k: strictly causal);
        # encoder then depthwise conv = one causal filter per channel, e_c w_c; BatchNorm1d normalises
        # the (rows L, d) values per channel exactly as it would (rows, d, L)
        windows = F.pad(x.reshape(-1, length), (k, 0)).unfold(-1, k, 1)[:, :length].reshape(-1, k)
        taps = self.encoder.weight[:, 0, 0, None] * self.temporal.weight[:, 0, :]  # (d, k)
        h = F.relu(self.temporal_norm(torch.addmm(self.temporal.bias, windows, taps.T)))
        f = torch.addmm(self.feature.bias, h, self.feature.weight[:, :, 0].T)
        h = F.relu(self.feature_norm(f) + h)
        return torch.addmv(self.decoder.bias, h, self.decoder.weight[0, :, 0]).reshape(*lead, length)

    @torch.no_grad()
    def fused(self) -> FusedSDN:
        """The 153-parameter inference form with the same outputs in eval mode (same dtype as self)."""
        fused = FusedSDN(self.d_model, self.kernel_size).to(self.decoder.weight)

        def fold(norm: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            return scale, norm.bias - norm.running_mean * scale

        s1, t1 = fold(self.temporal_norm)
        w1 = self.encoder.weight[:, 0, 0, None] * self.temporal.weight[:, 0, :] * s1[:, None]  # (d, k)
        fused.conv1.weight.copy_(w1.unsqueeze(1))
        fused.conv1.bias.copy_(self.temporal.bias * s1 + t1)
        s2, t2 = fold(self.feature_norm)
        fused.conv2.weight.copy_(self.feature.weight * s2[:, None, None])
        fused.conv2.bias.copy_(self.feature.bias * s2 + t2)
        fused.conv3.weight.copy_(self.decoder.weight)
        fused.conv3.bias.copy_(self.decoder.bias)
        return fused.eval()

    @staticmethod
    def pretrained(tau: float = 0.125) -> FusedSDN:
        """lindy's trained SDN for ``tau`` (0.125 or 0.2), fused, frozen, in eval mode."""
        return FusedSDN.load(pretrained_path(tau))


class FusedSDN(nn.Module):
    """The inference form: m_hat = conv3(ReLU(conv2(h) + h)), h = ReLU(conv1(x)) with conv1 strictly causal.

    x (..., L) -> (..., L). ``forward(x, history)`` continues a stream: ``history`` (..., k) holds the k
    inputs before x (zeros at the start), so chunks give the numbers of one call.
    Parameter names follow the reference's TorchScript file (conv1, conv2, conv3).
    """

    def __init__(self, d_model: int = 8, kernel_size: int = 8, tau: float | None = None):
        super().__init__()
        self.d_model, self.kernel_size, self.tau = d_model, kernel_size, tau
        self.conv1 = nn.Conv1d(1, d_model, kernel_size)
        self.conv2 = nn.Conv1d(d_model, d_model, 1)
        self.conv3 = nn.Conv1d(d_model, 1, 1)

    def forward(self, x: Tensor, history: Tensor | None = None) -> Tensor:
        lead, length, k = x.shape[:-1], x.shape[-1], self.kernel_size
        rows = x.reshape(-1, length)
        if history is None:
            rows = F.pad(rows, (k, 0))
        else:
            rows = torch.cat([history.reshape(-1, k).to(rows), rows], -1)
        # channels last, as fused matmuls over the unfolded windows: a Conv1d with one input channel
        # and short rows is ~10x slower on CPU; (rows L, d) hidden values, the memory that bounds this
        windows = rows.unfold(-1, k, 1)[:, :length].reshape(-1, k)  # rows of x_{t-k} .. x_{t-1}
        h = torch.addmm(self.conv1.bias, windows, self.conv1.weight[:, 0, :].T).relu_()
        h = torch.addmm(self.conv2.bias, h, self.conv2.weight[:, :, 0].T).add_(h).relu_()
        return torch.addmv(self.conv3.bias, h, self.conv3.weight[0, :, 0]).reshape(*lead, length)

    @torch.no_grad()
    def features_last(self, x: Tensor, history: Tensor | None = None, v_th: float = 1.0) -> Tensor:
        """v_th SDN(x / v_th) for x (B, L, H), time on dim 1, without gradient: (B, L, H) in self's dtype.

        ``history`` (B, H, k) holds the k inputs before x (the SDN neuron's state; None: zeros), so
        chunks give the numbers of one call. On CPU in float32/float64 (d = 8) one fused C++ loop
        (``lindy.kernels.sdn_cpu``, fast path ``lindy_sdn_cpu``) computes it in this layout with
        1 / v_th folded into conv1 and v_th into conv3, vectorised over H, or over time when x is the
        transpose of a contiguous (B, H, L) (the result then has that layout too); elsewhere, or when
        it cannot build (said once in the log and in ``lindy.kernels.cpp.fast_path_status()``),
        ``forward`` runs on x transposed.
        """
        native = _sdn_native(x, self)
        if native is None:
            rows = x.transpose(1, 2) / v_th  # (B, H, L)
            hist = None if history is None else history / v_th
            return (self(rows.to(self.conv1.weight.dtype), hist) * v_th).transpose(1, 2)
        x, history = self._native_layout(x, history)
        out = torch.empty_like(x)  # x's layout
        native.membrane(x, history, *self._native_weights(), float(v_th), out)
        return out

    @torch.no_grad()
    def fire(
        self,
        x: Tensor,
        history: Tensor | None,
        v_th: float,
        surrogate: str,
        alpha: float,
        with_grad: bool,
    ) -> tuple[Tensor, Tensor | None] | None:
        """The SDN neuron's spikes s = 1[(m_hat + x) - v_th >= 0] and, if ``with_grad``, the surrogate's
        g((m_hat + x) - v_th), both (B, L, H) in self's dtype and x's layout, for x (B, L, H) in self's
        dtype; m_hat = ``features_last(x, history, v_th)``. One C++ pass that never writes m_hat to memory
        (the same spikes, bit for bit, as ``features_last`` then ``surrogate.spike``); None where the C++
        op does not apply (the caller then runs that torch path).
        """
        native = _sdn_native(x, self)
        if native is None or x.dtype != self.conv1.weight.dtype:
            return None
        x, history = self._native_layout(x, history)
        s = _pooled_like(x)
        g = _pooled_like(x) if with_grad else None
        from lindy.kernels import sdn_cpu  # imported already by _sdn_native

        code = sdn_cpu.SURROGATE_CODES.index(surrogate)
        native.spikes(x, history, *self._native_weights(), float(v_th), code, float(alpha), s, g)
        return s, g

    def _native_layout(self, x: Tensor, history: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """x (B, L, H) in self's dtype, contiguous, or left the transpose of a contiguous (B, H, L) (the C++
        loop then runs along time, with no transpose copy either way); ``history`` (B, H, k) as the
        window's rows (B, k, H) in x's layout."""
        dtype = self.conv1.weight.dtype
        x = x.to(dtype)
        time_last = not x.is_contiguous() and x.transpose(1, 2).is_contiguous()
        if not time_last:
            x = x.contiguous()
        if history is not None:
            history = history.to(dtype)
            history = (
                history.contiguous().transpose(1, 2) if time_last else history.transpose(1, 2).contiguous()
            )
        return x, history

    def _native_weights(self) -> tuple[Tensor, ...]:
        """W1 (d, k), b1, W2 (d, d), b2, w3 (d), b3: the C++ op's weight arguments."""
        return (
            self.conv1.weight[:, 0, :],
            self.conv1.bias,
            self.conv2.weight[:, :, 0],
            self.conv2.bias,
            self.conv3.weight[0, :, 0],
            self.conv3.bias,
        )

    # -- files
    def save(self, path: str | Path) -> None:
        """Write the weights (float32) and tau/d_model/kernel_size metadata as safetensors."""
        from safetensors.torch import save_file

        meta = {"d_model": str(self.d_model), "kernel_size": str(self.kernel_size), "tau": str(self.tau)}
        save_file({k: v.detach().float().contiguous() for k, v in self.state_dict().items()}, str(path), meta)

    @classmethod
    def load(cls, path: str | Path) -> FusedSDN:
        """A frozen FusedSDN (eval, requires_grad False) from ``save``'s safetensors file."""
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        tau = None if meta.get("tau") in (None, "None") else float(meta["tau"])
        model = cls(int(meta.get("d_model", 8)), int(meta.get("kernel_size", 8)), tau)
        model.load_state_dict(state)
        return model.requires_grad_(False).eval()

    def to_torchscript(self, path: str | Path, length: int = 1024) -> None:
        """Save a traced module in the reference's layout: (B, 1, L) -> squeezed (B, L), conv1 padded k."""
        ref = _ReferenceLayout(self).eval()
        traced = torch.jit.trace(ref, torch.randn(64, 1, length, dtype=self.conv1.weight.dtype))
        traced.save(str(path))


def _sdn_native(x: Tensor, sdn: FusedSDN):
    """The C++ op when it applies (CPU tensors, a float32/float64 SDN with d = 8, x (B, L, H)), else None
    (then the torch path runs)."""
    weight = sdn.conv1.weight
    if (
        x.device.type != "cpu"
        or weight.device.type != "cpu"
        or weight.dtype not in (torch.float32, torch.float64)
        or sdn.d_model != 8
        or x.dim() != 3
        or not x.is_floating_point()
    ):
        return None
    from lindy.kernels import sdn_cpu  # lazy: cpp pulls in torch.utils.cpp_extension only when needed

    return sdn_cpu.ops()


class _ReferenceLayout(nn.Module):
    """The reference's traced graph: conv1 with symmetric padding k, keep the first L, ..., squeeze."""

    def __init__(self, fused: FusedSDN):
        super().__init__()
        k = fused.kernel_size
        self.conv1 = nn.Conv1d(1, fused.d_model, k, padding=k)
        self.conv2 = nn.Conv1d(fused.d_model, fused.d_model, 1)
        self.conv3 = nn.Conv1d(fused.d_model, 1, 1)
        self.load_state_dict(fused.state_dict())
        self.to(fused.conv1.weight)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.conv1(x)[..., : x.shape[-1]])
        h = F.relu(self.conv2(h) + h)
        return self.conv3(h).squeeze()


# ----------------------------------------------------------------------------------------------------
# neurons: (B, L, H) currents -> (B, L, H) spikes; states per (B, H)
# ----------------------------------------------------------------------------------------------------
class SDNNeuron(nn.Module):
    """Spikes from an SDN's membrane prediction: s = H(m_hat + x - v_th), surrogate gradient through x.

    Args:
        tau: the leak the SDN was trained for (selects ``SDN.pretrained(tau)`` unless ``sdn`` is given).
        v_th: threshold; m_hat = v_th SDN(x / v_th) (scale invariance of the LIF with v_r = 0).
        surrogate, alpha: the surrogate gradient (``lindy.kernels.surrogate``) and its width/slope.
        neuron: "sdn", or "lif" for the exact LIF (forward and step; BPTT surrogate gradients).
        sdn: a FusedSDN to use instead of the shipped one (e.g. the reference's, ``interop``).
    State: "sdn" the last k inputs (B, H, k); "lif" the membrane (B, H).
    """

    def __init__(
        self,
        tau: float = 0.125,
        v_th: float = 1.0,
        surrogate: str = "piecewise_quadratic",
        alpha: float | None = None,
        *,
        neuron: str = "sdn",
        sdn: FusedSDN | None = None,
    ):
        super().__init__()
        check_choice("neuron", neuron, ("sdn", "lif"))
        self.tau = check_finite_number("tau", tau, low=0.0, high=1.0)
        self.v_th = check_finite_number("v_th", v_th, positive=True)
        self.surrogate, self.alpha = surrogate, check_surrogate(surrogate, alpha)
        self.neuron = neuron
        self.sdn = (sdn if sdn is not None else SDN.pretrained(self.tau)).requires_grad_(False)

    def state_width(self) -> tuple[int, ...]:
        """The per-feature state: (k,) for the SDN's input window, () for the LIF's membrane."""
        return (self.sdn.kernel_size,) if self.neuron == "sdn" else ()

    def membrane(self, x: Tensor, history: Tensor | None = None) -> Tensor:
        """m_hat (B, L, H) for x (B, L, H) without gradient; ``history`` (B, H, k) the inputs before x.

        In the wider of x's and the SDN's dtypes (float32 for a bf16 x: the threshold test needs it).
        """
        with torch.no_grad(), _without_autocast(x):
            m = self.sdn.features_last(x.detach(), history, self.v_th)
            return m.to(torch.promote_types(m.dtype, x.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_state(x, None)[0]

    def forward_with_state(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """A chunk x (B, L, H) from ``state`` (None: the start) -> (spikes (B, L, H), new state)."""
        if self.neuron == "lif":
            s, u = lif_spikes(
                x, self.tau, self.v_th, u0=state, surrogate=self.surrogate, alpha=self.alpha, dim=1
            )
            return s, u
        k = self.sdn.kernel_size
        window = x.detach()[:, -k:].transpose(1, 2)  # only the last k inputs can enter the new state
        if state is not None:
            window = torch.cat([state, window], -1)
        window = F.pad(window, (max(k - window.shape[-1], 0), 0))[..., -k:].contiguous()
        return self._fire(x, state).to(x.dtype), window

    def _fire(self, x: Tensor, history: Tensor | None) -> Tensor:
        """s = H(m_hat + x - v_th) with the surrogate gradient through x, in the wider of x's and the SDN's
        dtypes: on CPU one fused C++ pass (``FusedSDN.fire``), else ``membrane`` then ``spike``."""
        dtype = torch.promote_types(self.sdn.conv1.weight.dtype, x.dtype)
        xw = x.to(dtype)
        with_grad = torch.is_grad_enabled() and xw.requires_grad
        with _without_autocast(x):
            fused = self.sdn.fire(xw.detach(), history, self.v_th, self.surrogate, self.alpha, with_grad)
        if fused is None:
            return spike(self.membrane(x, history) + xw - self.v_th, self.surrogate, self.alpha)
        s, g = fused
        return _SurrogateSpike.apply(xw, s, g) if with_grad else s

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """x_t (B, H), state -> (s_t (B, H), new state); the same numbers as ``forward``."""
        if self.neuron == "lif":
            return lif_step(state, x_t, self.tau, self.v_th)
        s, state = self.forward_with_state(x_t.unsqueeze(1), state)
        return s[:, 0], state


def _without_autocast(x: Tensor):
    """Autocast off on x's device: the SDN runs in its own precision (float32 under bf16 autocast: a
    membrane near the threshold would otherwise flip spikes)."""
    device = x.device.type
    return torch.autocast(device, enabled=False) if device in ("cpu", "cuda") else nullcontext()


def _pooled_like(x: Tensor) -> Tensor:
    """An uninitialised tensor of x's shape, dtype and layout (contiguous, or the transpose of a contiguous
    (B, H, L)) from ``kernels.memory``'s pool: a fresh 33 MB buffer costs a page fault per 4 KiB on CPU."""
    if x.is_contiguous():
        return memory.empty(*x.shape, dtype=x.dtype, device=x.device, reuse=True)
    b, length, h = x.shape
    return memory.empty(b, h, length, dtype=x.dtype, device=x.device, reuse=True).transpose(1, 2)


class _SurrogateSpike(torch.autograd.Function):
    """Spikes s computed outside autograd, with dL/dx = dL/ds * g (g the surrogate at x's potential)."""

    @staticmethod
    def forward(ctx, x: Tensor, s: Tensor, g: Tensor) -> Tensor:
        ctx.save_for_backward(g)
        return s

    @staticmethod
    def backward(ctx, grad: Tensor):
        (g,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: an out= product would not be differentiable
            return grad * g, None, None
        return torch.mul(grad, g, out=_pooled_like(g)), None, None


class LIFNeuron(nn.Module):
    """The exact LIF iterated over time with surrogate gradients: ``mode`` "bptt" or "sltt" (baselines).

    Forward, step and state (the membrane, (B, H)) are the exact LIF's; only the backward differs.
    """

    def __init__(
        self,
        tau: float = 0.125,
        v_th: float = 1.0,
        surrogate: str = "piecewise_quadratic",
        alpha: float | None = None,
        *,
        mode: str = "bptt",
        v_r: float = 0.0,
    ):
        super().__init__()
        check_choice("mode", mode, LIF_MODES)
        self.tau = check_finite_number("tau", tau, low=0.0, high=1.0)
        self.v_th = check_finite_number("v_th", v_th, positive=True)
        self.v_r = check_finite_number("v_r", v_r)
        self.surrogate, self.alpha, self.mode = surrogate, check_surrogate(surrogate, alpha), mode

    def state_width(self) -> tuple[int, ...]:
        return ()

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_state(x, None)[0]

    def forward_with_state(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        return lif_spikes(
            x,
            self.tau,
            self.v_th,
            self.v_r,
            u0=state,
            surrogate=self.surrogate,
            alpha=self.alpha,
            mode=self.mode,
            dim=1,
        )

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return lif_step(state, x_t, self.tau, self.v_th, self.v_r)


def build_neuron(
    neuron: str = "sdn",
    tau: float = 0.125,
    v_th: float = 1.0,
    surrogate: str = "piecewise_quadratic",
    alpha: float | None = None,
    sdn: FusedSDN | None = None,
) -> nn.Module:
    """ "sdn" | "lif" -> SDNNeuron; "bptt" | "sltt" -> LIFNeuron of that mode."""
    check_choice("neuron", neuron, NEURONS)
    if neuron in ("sdn", "lif"):
        return SDNNeuron(tau, v_th, surrogate, alpha, neuron=neuron, sdn=sdn)
    return LIFNeuron(tau, v_th, surrogate, alpha, mode=neuron)


# ----------------------------------------------------------------------------------------------------
# metrics and the agreement report
# ----------------------------------------------------------------------------------------------------
def spike_agreement(m_hat: Tensor, x: Tensor, spikes: Tensor, v_th: float = 1.0) -> float:
    """mean 1[(m_hat_t + x_t >= v_th) == s_t], the SDN's "Acc@1"."""
    return ((m_hat + x >= v_th).to(spikes.dtype) == spikes).double().mean().item()


def membrane_mae(m_hat: Tensor, mem: Tensor) -> float:
    """mean |m_hat - m|."""
    return (m_hat - mem).abs().double().mean().item()


@torch.no_grad()
def neuron_agreement(model: nn.Module, *inputs) -> dict[str, float]:
    """{neuron name: fraction of (batch, step, feature) where its SDN spikes equal the exact LIF's}.

    Runs ``model(*inputs)`` once, recording the current each ``SDNNeuron`` (neuron="sdn") receives, and
    compares its spikes with the exact LIF's (same tau, v_th) on that current.
    """
    seen: dict[str, float] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, SDNNeuron) and module.neuron == "sdn":

            def record(mod, args, out, name=name):
                exact, _ = lif_spikes(args[0], mod.tau, mod.v_th, dim=1)
                seen[name] = (out == exact).double().mean().item()

            hooks.append(module.register_forward_hook(record))
    try:
        model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return seen


# ----------------------------------------------------------------------------------------------------
# a neuron as a sequence layer (registered: the conformance suite checks the neurons' contract)
# ----------------------------------------------------------------------------------------------------
class SpikingNeuron(SequenceLayer):
    """H independent neurons as a layer: x (B, L, H) currents -> (B, L, H) spikes.

    ``neuron``: "sdn" (SDN prediction), "lif" (exact), "bptt", "sltt" (exact LIF, baseline gradients).
    Every neuron's step equals its forward. Its parameters are the frozen SDN's (none for the LIF ones).
    """

    def __init__(
        self,
        d_model: int,
        *,
        neuron: str = "sdn",
        tau: float = 0.125,
        v_th: float = 1.0,
        surrogate: str = "piecewise_quadratic",
        alpha: float | None = None,
    ):
        super().__init__(d_model)
        self.neuron = build_neuron(neuron, tau, v_th, surrogate, alpha)
        self.register_buffer("_dtype_ref", torch.zeros(()), persistent=False)

    @property
    def param_dtype(self) -> torch.dtype | None:
        return self._dtype_ref.dtype

    def _forward(self, x: Tensor) -> Tensor:
        return self.neuron(x)

    def state_shape(self) -> tuple[int, ...]:
        return (self.d_model, *self.neuron.state_width())

    def _step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self.neuron.step(x_t, state)

    def _forward_with_state(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self.neuron.forward_with_state(x, state)


register_layer(
    "spiking_neuron",
    SpikingNeuron,
    test_configs={"sdn": {}, "sdn-tau0.2-atan": dict(tau=0.2, surrogate="atan", v_th=0.5)},
    invalid_configs=[dict(neuron="izhikevich"), dict(tau=1.5), dict(surrogate="relu"), dict(alpha=0.0)],
    differentiable=False,
    bench_kwargs=dict(neuron="sdn"),
)
