"""The layer contract every lindy sequence layer implements.

A layer maps x: (batch, length, d_input) -> y: (batch, length, d_model) (d_input = d_model unless the layer
takes another input width, as LEM does) in two modes that give the same numbers:

- parallel: ``forward(x)`` (a convolution or a scan over the whole sequence), used for training;
- recurrent: ``initial_state(batch_size)``, ``step(x_t, state) -> (y_t, state)`` and
  ``forward_with_state(x, state) -> (y, state)`` (chunked streaming), used for inference.

A state is a tensor or a tuple of tensors whose first dimension is the batch. Layers without a recurrent
form (bidirectional ones) raise ``NotImplementedError`` from the recurrent methods with the reason.

Inputs are checked before any work: shape, dtype, a batch and a length of at least one, and finiteness. A
NaN or inf in the input gets an error naming its position, because the FFT of a parallel mode would spread
it to every step of the sequence, the steps before it included, while the step mode would not. The
finiteness check costs one pass over the input; ``set_finite_check(False)`` or the environment variable
``LINDY_CHECK_FINITE=0`` turns it off, and it is skipped while torch.compile traces. A model checks its
own input once (``inputs_checked``): its layers see activations, whose blow-up the trainer reports.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lindy._checks import check_choice, check_finite_number, check_positive_int

State = Tensor | tuple[Tensor, ...]

__all__ = [
    "SequenceLayer",
    "State",
    "LayerSpec",
    "LAYERS",
    "register_layer",
    "build_layer",
    "register_ssm_param",
    "init_log_dt",
    "check_dt_range",
    "fold_skip",
    "KernelCache",
    "check_sequence_input",
    "check_step_input",
    "check_finite_number",
    "check_positive_int",
    "check_choice",
    "refuse_non_finite_state_dict",
    "check_finite_input",
    "set_finite_check",
    "inputs_checked",
]


# ----------------------------------------------------------------------------------------------------
# input checks: every message names the argument and the value it expected
# ----------------------------------------------------------------------------------------------------
def check_sequence_input(x: Any, d_model: int, *, name: str = "x", dtype: torch.dtype | None = None) -> None:
    """Raise a clear error unless ``x`` is a floating (batch, length, d_model) tensor with length >= 1.

    (``d_model`` here is the width the layer expects at its input, i.e. its ``d_input``.)

    ``dtype`` is the layer's parameter dtype: a float input of another dtype is refused outside autocast
    (a silent up/down cast would hide a float64 check that really ran in float32).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, length, {d_model}), got {type(x)}")
    if x.dim() != 3:
        raise ValueError(
            f"{name} must have 3 dims (batch, length, d_model={d_model}), got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != d_model:
        raise ValueError(f"{name} last dim must be d_model={d_model}, got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have length >= 1, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must have batch >= 1, got shape {tuple(x.shape)}")
    _check_float_dtype(x, name, dtype)
    check_finite_input(x, name, ("batch", "step", "feature"))


def check_step_input(x_t: Any, d_model: int, *, name: str = "x_t", dtype: torch.dtype | None = None) -> None:
    """Raise a clear error unless ``x_t`` is a floating (batch, d_model) tensor."""
    if not isinstance(x_t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, {d_model}), got {type(x_t)}")
    if x_t.dim() != 2 or x_t.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape (batch, d_model={d_model}), got {tuple(x_t.shape)}")
    if x_t.shape[0] == 0:
        raise ValueError(f"{name} must have batch >= 1, got shape {tuple(x_t.shape)}")
    _check_float_dtype(x_t, name, dtype)
    check_finite_input(x_t, name, ("batch", "feature"))


_FINITE_CHECK = {"enabled": os.environ.get("LINDY_CHECK_FINITE", "1").strip() not in ("0", "false", "off")}
_CHECKED = threading.local()  # depth of inputs_checked() scopes in this thread


def set_finite_check(enabled: bool) -> bool:
    """Turn the non-finite input check on or off for this process; returns the previous setting."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    previous, _FINITE_CHECK["enabled"] = _FINITE_CHECK["enabled"], enabled
    return previous


@contextmanager
def inputs_checked() -> Iterator[None]:
    """Within this scope layers skip the finiteness check (their caller checked the real input)."""
    _CHECKED.depth = getattr(_CHECKED, "depth", 0) + 1
    try:
        yield
    finally:
        _CHECKED.depth -= 1


def check_finite_input(x: Tensor, name: str, dims: Sequence[str]) -> None:
    """Raise a ValueError naming the first NaN/inf of ``x`` by ``dims`` (e.g. batch, step, feature)."""
    if not _FINITE_CHECK["enabled"] or getattr(_CHECKED, "depth", 0) or torch.compiler.is_compiling():
        return
    # one reduction (NaN and inf survive a sum) instead of an elementwise mask: 0.3 ms instead of 9 ms on
    # (8, 4096, 128); only a non-finite sum (a NaN, an inf, or an overflow of finite values) looks closer
    if not x.is_floating_point() or bool(torch.isfinite(x.sum())):
        return
    bad = (~torch.isfinite(x)).nonzero()
    if len(bad) == 0:
        return
    where = ", ".join(f"{d} {int(i)}" for d, i in zip(dims, bad[0]))
    raise ValueError(
        f"{name} contains NaN or inf ({len(bad)} value(s), the first at {where}: {x[tuple(bad[0])].item()}); "
        "expected finite values. A parallel (FFT) mode would spread it to every step of that sequence. "
        "Clean the input, or turn this check off with LINDY_CHECK_FINITE=0 or "
        "lindy.layers.base.set_finite_check(False)"
    )


def _check_float_dtype(x: Tensor, name: str, dtype: torch.dtype | None) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (float32, float64, bfloat16), got dtype {x.dtype}")
    autocast = torch.is_autocast_enabled(x.device.type) if x.device.type in ("cpu", "cuda") else False
    if dtype is not None and x.dtype != dtype and not autocast:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the layer's parameters are {dtype}; "
            f"convert one of them (e.g. layer.to({x.dtype}) or x.to({dtype})), or run under torch.autocast"
        )


# ----------------------------------------------------------------------------------------------------
# optimiser hints
# ----------------------------------------------------------------------------------------------------
def register_ssm_param(
    module: nn.Module,
    name: str,
    tensor: Tensor,
    *,
    lr: float | None = None,
    weight_decay: float = 0.0,
    trainable: bool = True,
) -> None:
    """Register ``tensor`` on ``module`` as an SSM parameter (or a buffer when not trainable).

    Trainable ones carry ``param._optim = {"lr": lr, "weight_decay": weight_decay}`` (the state-spaces/s4
    convention), which ``lindy.train`` turns into optimiser groups. By default the hinted lr is a cap: the
    group's lr is min(global lr, lr), so a small global lr is never raised (``optimizer.hint_lr=absolute``
    uses it as is, as the s4 framework does); ``lr=None`` means the global lr.
    They also carry ``_ssm = True`` so that mixed precision keeps them in float32.
    """
    if not trainable:
        module.register_buffer(name, tensor)
        return
    param = nn.Parameter(tensor)
    hints = {"weight_decay": weight_decay}
    if lr is not None:
        hints["lr"] = lr
    param._optim = hints  # type: ignore[attr-defined]
    param._ssm = True  # type: ignore[attr-defined]
    module.register_parameter(name, param)


# ----------------------------------------------------------------------------------------------------
# the shell of a convolutional SSM layer: dt init, kernel cache, skip. Plain helpers, no class tree:
# each family keeps its own kernel and output path.
# ----------------------------------------------------------------------------------------------------
def check_dt_range(dt_min: Any, dt_max: Any) -> tuple[float, float]:
    """(dt_min, dt_max) as floats, both finite and > 0 with dt_min <= dt_max, else a ValueError."""
    dt_min = check_finite_number("dt_min", dt_min, positive=True)
    dt_max = check_finite_number("dt_max", dt_max, positive=True)
    if dt_min > dt_max:
        raise ValueError(f"dt_min must be <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    return dt_min, dt_max


def init_log_dt(shape: int | Sequence[int], dt_min: float, dt_max: float) -> Tensor:
    """log dt ~ U[log dt_min, log dt_max], float32 of ``shape`` (one step per feature, head or state).

    Log-uniform steps spread the SSM's timescales over [dt_min, dt_max] (S4, S4D, LSSL, LDNN).
    Draws ``torch.rand(shape)`` from the global generator.
    """
    dt_min, dt_max = check_dt_range(dt_min, dt_max)
    low, high = math.log(dt_min), math.log(dt_max)
    return torch.rand(shape) * (high - low) + low


def fold_skip(k: Tensor, D: Tensor) -> Tensor:
    """K with D added at lag 0: (..., L) kernel, (...) skip -> (..., L).

    The skip D u is a convolution with D at lag 0, so folding it into the kernel's first tap gives the same
    numbers in one convolution and saves a pass over the (B, L, H) activations.
    """
    return torch.cat([k[..., :1] + D.to(k.dtype).unsqueeze(-1), k[..., 1:]], dim=-1)


class KernelCache:
    """Eval-mode cache of values a layer builds from its SSM parameters (kernels, discretised matrices).

    ``cache.get(name, params, extra, build, training=module.training)`` returns ``build()``, reused while
    not training and with grad disabled (a training kernel needs its graph), and only while the key is the
    same: the parameters'
    in-place versions (``_version``, which every optimiser step and ``load_state_dict`` bump), device,
    dtype, and the caller's ``extra`` (length, rate, ...). ``build`` runs with autocast off, so SSM numerics
    stay in the parameters' precision under mixed precision. Outside eval the cache is emptied.
    """

    def __init__(self):
        self._entries: dict[str, tuple[tuple, Any]] = {}

    def get(
        self, name: str, params: Sequence[Tensor], extra: tuple, build: Callable[[], Any], *, training: bool
    ) -> Any:
        """``build()``, or its cached value when not ``training``, grad is off and the key is unchanged."""
        ref = params[0]
        use = not training and not torch.is_grad_enabled()
        key = (extra, ref.device, ref.dtype, tuple(p._version for p in params)) if use else None
        if use and name in self._entries and self._entries[name][0] == key:
            return self._entries[name][1]
        with torch.autocast(ref.device.type, enabled=False):
            value = build()
        if use:
            self._entries[name] = (key, value)
        else:
            self._entries.pop(name, None)
        return value

    def key(self, name: str) -> tuple | None:
        """The caller's ``extra`` key of the cached entry ``name`` (None when nothing is cached)."""
        entry = self._entries.get(name)
        return None if entry is None else entry[0][0]

    def value(self, name: str) -> Any:
        """The cached value of ``name`` (None when nothing is cached)."""
        entry = self._entries.get(name)
        return None if entry is None else entry[1]


# ----------------------------------------------------------------------------------------------------
# the base class
# ----------------------------------------------------------------------------------------------------
class SequenceLayer(nn.Module):
    """Base class of lindy sequence layers: (batch, length, d_input) -> (batch, length, d_model).

    Subclasses implement ``_forward(x)`` (parallel mode) and, when causal, ``initial_state``,
    ``_step(x_t, state)`` and optionally ``_forward_with_state`` (the default loops over ``_step``).
    The public methods validate their inputs and then call these.
    """

    #: whether the layer has a recurrent form (bidirectional layers do not)
    recurrent: bool = True

    def __init__(self, d_model: int, *, d_input: int | None = None):
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)
        self.d_input = check_positive_int("d_input", d_input) if d_input is not None else d_model
        # A checkpoint with NaN/inf in it fails on load, naming the tensor, before anything is copied.
        self.register_load_state_dict_pre_hook(refuse_non_finite_state_dict)

    # -- dtype of the layer's parameters, used to refuse silently mismatched inputs
    @property
    def param_dtype(self) -> torch.dtype | None:
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return None

    # -- parallel mode
    def forward(self, x: Tensor) -> Tensor:
        check_sequence_input(x, self.d_input, dtype=self.param_dtype)
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    # -- recurrent mode
    def _require_recurrent(self) -> None:
        if not self.recurrent:
            raise NotImplementedError(
                f"{type(self).__name__} has no recurrent form in this configuration "
                "(a bidirectional layer sees the future); build it with bidirectional=False to stream"
            )

    def state_shape(self) -> tuple[int, ...] | tuple[tuple[int, ...], ...] | None:
        """The state of one example: a shape, or a tuple of shapes for a tuple state (None: undeclared)."""
        return None

    def initial_state(self, batch_size: int, device=None, dtype=None) -> State:
        """Zeros of (batch_size, *state_shape()) in the parameters' device and dtype unless given."""
        shape = self.state_shape()
        if shape is None:
            raise NotImplementedError(f"{type(self).__name__} does not implement initial_state")
        check_positive_int("batch_size", batch_size)
        ref = next((p for p in self.parameters() if p.is_floating_point()), None)
        device = device if device is not None else (ref.device if ref is not None else None)
        dtype = dtype if dtype is not None else (ref.dtype if ref is not None else None)
        if shape and isinstance(shape[0], tuple):
            return tuple(torch.zeros(batch_size, *s, device=device, dtype=dtype) for s in shape)
        return torch.zeros(batch_size, *shape, device=device, dtype=dtype)

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """One recurrent step: x_t (batch, d_input) -> y_t (batch, d_model), new state."""
        self._require_recurrent()
        check_step_input(x_t, self.d_input, dtype=self.param_dtype)
        self._check_state(state, x_t)
        return self._step(x_t, state)

    def _step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        raise NotImplementedError

    def forward_with_state(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """Process a chunk starting from ``state``; chunked calls equal one call over the whole sequence."""
        self._require_recurrent()
        check_sequence_input(x, self.d_input, dtype=self.param_dtype)
        self._check_state(state, x)
        return self._forward_with_state(x, state)

    def _check_state(self, state: Any, x: Tensor) -> None:
        """A state of the declared shapes, for x's batch, device and (outside autocast) parameter dtype.

        Without it a batch-1 state would broadcast over a larger batch silently, and a wrong dtype or
        device would fail deep inside the recurrence.
        """
        shape = self.state_shape()
        if shape is None:
            return
        shapes = shape if shape and isinstance(shape[0], tuple) else (shape,)
        tensors = state if isinstance(state, tuple) and len(shapes) > 1 else (state,)
        how = "from initial_state(batch_size) or a previous step"
        if len(tensors) != len(shapes) or not all(isinstance(t, Tensor) for t in tensors):
            kind = f"a tuple of {len(shapes)} tensors" if len(shapes) > 1 else "a tensor"
            raise TypeError(f"state must be {kind} ({how}), got {type(state).__name__}")
        batch, dtype = x.shape[0], self.param_dtype
        autocast = torch.is_autocast_enabled(x.device.type) if x.device.type in ("cpu", "cuda") else False
        for i, (t, s) in enumerate(zip(tensors, shapes)):
            name = f"state[{i}]" if len(shapes) > 1 else "state"
            if tuple(t.shape) != (batch, *s):
                raise ValueError(
                    f"{name} must have shape (batch={batch}, {', '.join(map(str, s))}) for this input "
                    f"({how}), got {tuple(t.shape)}"
                )
            if t.device != x.device:
                raise ValueError(f"{name} is on {t.device} but the input is on {x.device}; move one of them")
            if dtype is not None and t.dtype != dtype and not autocast:
                raise TypeError(
                    f"{name} has dtype {t.dtype} but the layer's parameters are {dtype}; {how} gives the "
                    "right one"
                )

    def _forward_with_state(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        ys = []
        for t in range(x.shape[1]):
            y_t, state = self._step(x[:, t], state)
            ys.append(y_t)
        return torch.stack(ys, dim=1), state


def refuse_non_finite_state_dict(module: nn.Module, state_dict: Mapping, prefix: str, *args) -> None:
    """A ``load_state_dict`` pre-hook: raise, naming the tensor, if any incoming tensor is NaN or inf.

    It runs before the module (the outermost one first) copies anything, so a refused load leaves the
    module exactly as it was.
    """
    for key, tensor in state_dict.items():
        if not key.startswith(prefix) or not isinstance(tensor, Tensor):
            continue
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            raise ValueError(
                f"{type(module).__name__}: loaded tensor {key[len(prefix) :]!r} contains NaN or inf; "
                "expected finite values (the module is unchanged)"
            )


# ----------------------------------------------------------------------------------------------------
# registry: configs name layers by lower-case name; the conformance suite runs over every entry
# ----------------------------------------------------------------------------------------------------
@dataclass
class LayerSpec:
    """A registered layer: its factory, the tiny configurations the conformance suite runs, and what the
    layer promises (capability flags), which the suite and the speed benchmark read instead of special cases.
    """

    name: str
    factory: Callable[..., SequenceLayer]
    #: id -> keyword arguments for tiny conformance instances (d_model is supplied by the suite)
    test_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: keyword arguments that must be refused with a ValueError naming the argument (e.g. a NaN dt_min)
    invalid_configs: list[dict[str, Any]] = field(default_factory=list)
    #: the recurrent mode gives forward's numbers (False for a layer whose parallel mode approximates its
    #: step, e.g. a spiking layer whose fast neuron predicts the exact LIF); the suite then checks that
    #: chunked streaming equals the step loop instead
    exact_recurrence: bool = True
    #: outputs are differentiable, so finite differences check the gradients (False for spikes: the suite
    #: then checks that surrogate gradients reach the input and every trainable parameter, finite)
    differentiable: bool = True
    #: constructor keyword arguments at the speed benchmark's shape (B=8, H=128, state size ~64)
    bench_kwargs: dict[str, Any] = field(default_factory=dict)


LAYERS: dict[str, LayerSpec] = {}


def register_layer(
    name: str,
    cls: type | None = None,
    *,
    test_configs: dict[str, dict[str, Any]] | None = None,
    invalid_configs: list[dict[str, Any]] | None = None,
    exact_recurrence: bool = True,
    differentiable: bool = True,
    bench_kwargs: dict[str, Any] | None = None,
):
    """Register a layer class under ``name`` (lower case) with its conformance configs and capabilities.

    Call it at the bottom of the layer's file, ``register_layer("s4d", S4D, test_configs=...)``, so the
    file reads maths first; it also works as a class decorator when ``cls`` is omitted. The conformance
    suite (tests/conformance) instantiates every entry of ``test_configs`` at tiny sizes and checks the
    whole contract; each entry of ``invalid_configs`` must raise ``ValueError``.
    """

    def decorate(layer_cls):
        key = name.lower()
        if key in LAYERS and LAYERS[key].factory is not layer_cls:
            raise ValueError(f"layer name {key!r} is already registered to {LAYERS[key].factory}")
        LAYERS[key] = LayerSpec(
            key,
            layer_cls,
            dict(test_configs or {"default": {}}),
            list(invalid_configs or []),
            exact_recurrence=bool(exact_recurrence),
            differentiable=bool(differentiable),
            bench_kwargs=dict(bench_kwargs or {}),
        )
        return layer_cls

    return decorate if cls is None else decorate(cls)


def build_layer(name_or_cls: str | type, d_model: int, **kwargs) -> SequenceLayer:
    """Build a layer from its registered name (``"s4d"``) or its class."""
    if isinstance(name_or_cls, str):
        key = name_or_cls.lower()
        if key not in LAYERS:
            raise ValueError(f"layer must be one of {sorted(LAYERS)}, got {name_or_cls!r}")
        return LAYERS[key].factory(d_model, **kwargs)
    return name_or_cls(d_model, **kwargs)
