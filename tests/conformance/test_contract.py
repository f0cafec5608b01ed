"""One contract, every layer: the conformance suite of lindy.

Every layer registered with ``lindy.layers.register_layer`` (and every configuration it lists in
``test_configs``) runs through the same checks, at tiny sizes, on CPU:

- shapes and dtypes (float32 and float64 in, same dtype out);
- causality: changing x[:, t:] leaves y[:, :t] unchanged (recurrent configurations);
- the step loop equals forward; chunked forward_with_state (uneven chunks) equals forward (a layer that
  declares ``exact_recurrence=False``, whose parallel mode approximates its step, must instead give the
  step loop's numbers when streamed in chunks);
- a layer with no recurrent form raises NotImplementedError from its recurrent methods;
- float64 gradcheck with respect to the input and every parameter (a layer that declares
  ``differentiable=False``, e.g. spikes, must instead give finite surrogate gradients to the input and to
  every trainable parameter);
- a state_dict round trip through safetensors gives the same outputs;
- torch.compile runs and matches eager;
- clear errors for wrong rank, wrong width, integer dtype, empty length or batch, a NaN or inf input
  (naming its position), a state of another batch size or dtype, non-finite loaded parameters (refused
  before anything is copied) and the layer's own invalid constructor arguments.

The backbone (``lindy.models.SequenceModel`` with per-step outputs) runs through the same checks, and so
does a toy spiking layer defined here (``tests/conformance/toy_spiking.py``), so the paths for the two
capability flags are exercised before a real spiking layer needs them. A new layer joins by registering,
nothing more; the capabilities come from its registry entry (``LayerSpec``).
"""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.func import functional_call

import lindy.layers
from lindy.layers.base import LAYERS, LayerSpec, set_finite_check

from .toy_spiking import ToySpiking

D_MODEL = 4
BATCH = 2
LENGTH = 12


def _backbone_factory(d_model, **kwargs):
    from lindy.models import SequenceModel

    return SequenceModel(d_model, 3, d_model=6, pooling="none", **kwargs)


def _cases():
    cases = []
    for name, spec in sorted(LAYERS.items()):
        for cfg_id, kwargs in spec.test_configs.items():
            cases.append(pytest.param(spec.factory, kwargs, spec, id=f"{name}-{cfg_id}"))
    plain = LayerSpec("backbone", _backbone_factory)  # the backbone promises everything
    # the backbone around a registered layer, pre- and post-norm
    if "s4d" in LAYERS:
        for norm, prenorm in [("layer", True), ("batch", False), ("rms", True)]:
            kwargs = dict(n_layers=2, layer="s4d", layer_kwargs=dict(d_state=4), norm=norm, prenorm=prenorm)
            cases.append(pytest.param(_backbone_factory, kwargs, plain, id=f"backbone-s4d-{norm}-{prenorm}"))
    # no encoder: the raw features go into the first LEM cell (the LEM paper's models), its input norm
    # over d_input features
    if "lem" in LAYERS:
        kwargs = dict(n_layers=2, layer="lem", norm="layer", residual=False, encoder=False)
        cases.append(pytest.param(_backbone_factory, kwargs, plain, id="backbone-lem-no-encoder"))
    toy = LayerSpec("toy_spiking", ToySpiking, exact_recurrence=False, differentiable=False)
    cases.append(pytest.param(ToySpiking, {}, toy, id="toy-spiking"))
    return cases


CASES = _cases()


def make(factory, kwargs, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    module = factory(D_MODEL, **copy.deepcopy(kwargs)).to(dtype)
    return module.eval()  # dropout off; batch norm uses running statistics


def inputs(module, dtype=torch.float64, length=LENGTH, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, length, module.d_input, generator=g, dtype=dtype)


def is_recurrent(module):
    return getattr(module, "recurrent", True)


def test_registry_is_populated():
    assert "s4d" in LAYERS, f"expected S4D to be registered, got {sorted(LAYERS)}"
    assert lindy.layers.build_layer("s4d", 4, d_state=4).d_model == 4


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtype(factory, kwargs, spec, dtype):
    module = make(factory, kwargs, dtype)
    x = inputs(module, dtype)
    y = module(x)
    assert y.shape[:2] == (BATCH, LENGTH)
    assert y.dtype == dtype
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_causality(factory, kwargs, spec):
    module = make(factory, kwargs)
    if not is_recurrent(module):
        pytest.skip("non-causal (bidirectional) configuration")
    x = inputs(module)
    t = LENGTH // 2
    x2 = x.clone()
    x2[:, t:] += torch.randn_like(x2[:, t:])
    y, y2 = module(x), module(x2)
    torch.testing.assert_close(y[:, :t], y2[:, :t], rtol=0, atol=1e-12)
    assert not torch.allclose(y[:, t:], y2[:, t:]), "changing the future input changed nothing after t"


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_step_loop_equals_forward(factory, kwargs, spec):
    module = make(factory, kwargs)
    x = inputs(module)
    if not is_recurrent(module):
        with pytest.raises(NotImplementedError, match="recurrent|stream|bidirectional"):
            module.step(x[:, 0], None)
        with pytest.raises(NotImplementedError, match="recurrent|stream|bidirectional"):
            module.forward_with_state(x, None)
        return
    y_steps, y = step_loop(module, x), module(x)
    if spec.exact_recurrence:
        torch.testing.assert_close(y_steps, y, rtol=1e-9, atol=1e-10)
    else:  # declared inexact: the step runs, with forward's shapes and finite values
        assert y_steps.shape == y.shape and y_steps.dtype == y.dtype and torch.isfinite(y_steps).all()


def step_loop(module, x):
    """The outputs of ``module.step`` over every position of x, from the initial state."""
    state = module.initial_state(x.shape[0], dtype=x.dtype)
    ys = []
    for t in range(x.shape[1]):
        y_t, state = module.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_chunked_equals_full(factory, kwargs, spec):
    module = make(factory, kwargs)
    if not is_recurrent(module):
        pytest.skip("non-causal (bidirectional) configuration")
    x = inputs(module)
    state = module.initial_state(BATCH, dtype=torch.float64)
    ys, start = [], 0
    for size in (1, 5, 2, 4):  # uneven chunks covering LENGTH
        y_chunk, state = module.forward_with_state(x[:, start : start + size], state)
        ys.append(y_chunk)
        start += size
    assert start == LENGTH
    # an inexact parallel mode: streaming must still be the recurrence itself, chunked or not
    want = module(x) if spec.exact_recurrence else step_loop(module, x)
    torch.testing.assert_close(torch.cat(ys, 1), want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_gradcheck_input_and_parameters(factory, kwargs, spec):
    module = make(factory, kwargs)
    if not spec.differentiable:
        check_surrogate_gradients(module)
        return
    x = inputs(module, length=5).requires_grad_(True)
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    params = tuple(module.get_parameter(n).detach().clone().requires_grad_(True) for n in names)

    def fn(x, *ps):
        return functional_call(module, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


def check_surrogate_gradients(module):
    """A non-differentiable layer's backward still reaches the input and every trainable parameter."""
    x = inputs(module, length=5).requires_grad_(True)
    torch.randn_like(module(x)).mul(module(x)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"no finite surrogate grad for {name}"


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_safetensors_round_trip(factory, kwargs, spec, tmp_path):
    module = make(factory, kwargs, torch.float32, seed=0)
    path = tmp_path / "layer.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    other = make(factory, kwargs, torch.float32, seed=123)  # different initial weights
    other.load_state_dict(load_file(str(path)))
    x = inputs(module, torch.float32)
    torch.testing.assert_close(other(x), module(x), rtol=0, atol=0)


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_torch_compile_smoke(factory, kwargs, spec):
    module = make(factory, kwargs, torch.float32)
    x = inputs(module, torch.float32)
    compiled = torch.compile(module, backend="aot_eager")
    torch.testing.assert_close(compiled(x), module(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_bad_inputs_raise_clear_errors(factory, kwargs, spec):
    module = make(factory, kwargs, torch.float32)
    d = module.d_input
    with pytest.raises(ValueError, match="3 dims"):
        module(torch.randn(LENGTH, d))
    with pytest.raises(ValueError, match=f"d_model={d}|d_input={d}"):
        module(torch.randn(BATCH, LENGTH, d + 1))
    with pytest.raises(TypeError, match="floating"):
        module(torch.ones(BATCH, LENGTH, d, dtype=torch.long))
    with pytest.raises(ValueError, match="length >= 1"):
        module(torch.randn(BATCH, 0, d))
    with pytest.raises(TypeError, match="dtype"):
        module(torch.randn(BATCH, LENGTH, d, dtype=torch.float64))


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_non_finite_input_is_refused_naming_its_position(factory, kwargs, spec):
    module = make(factory, kwargs)
    x = inputs(module)
    x[1, 7, module.d_input - 1] = float("nan")
    where = f"batch 1, step 7, feature {module.d_input - 1}"
    with pytest.raises(ValueError, match=f"NaN or inf .*{where}.*LINDY_CHECK_FINITE=0"):
        module(x)
    if is_recurrent(module):
        state = module.initial_state(BATCH, dtype=torch.float64)
        with pytest.raises(ValueError, match=f"NaN or inf .*{where}"):
            module.forward_with_state(x, state)
        x_t = x[:, 0].clone()
        x_t[0, 0] = float("inf")
        with pytest.raises(ValueError, match="x_t contains NaN or inf .*batch 0, feature 0"):
            module.step(x_t, state)
    previous = set_finite_check(False)  # the documented way to skip the check for speed
    try:
        module(x)
    finally:
        set_finite_check(previous)


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_empty_batch_and_foreign_states_are_refused(factory, kwargs, spec):
    module = make(factory, kwargs)
    with pytest.raises(ValueError, match="batch >= 1"):
        module(torch.randn(0, LENGTH, module.d_input, dtype=torch.float64))
    if not is_recurrent(module):
        return
    x = inputs(module)
    with pytest.raises(ValueError, match="batch >= 1"):
        module.step(x[:0, 0], module.initial_state(1, dtype=torch.float64))
    # a state from another batch size (a batch-1 state would broadcast silently) or dtype
    for state in (module.initial_state(1, dtype=torch.float64), module.initial_state(BATCH + 1)):
        with pytest.raises((ValueError, TypeError), match=r"state.*(shape|entries)|state.*dtype"):
            module.step(x[:, 0], state)
        with pytest.raises((ValueError, TypeError), match=r"state.*(shape|entries)|state.*dtype"):
            module.forward_with_state(x, state)
    wrong_dtype = module.initial_state(BATCH, dtype=torch.float32)
    with pytest.raises(TypeError, match="dtype"):
        module.step(x[:, 0], wrong_dtype)


@pytest.mark.parametrize("factory,kwargs,spec", CASES)
def test_non_finite_loaded_parameters_are_refused(factory, kwargs, spec):
    module = make(factory, kwargs, torch.float32)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    state = module.state_dict()
    names = [k for k, v in state.items() if v.is_floating_point() and v.numel() > 0]
    state = {k: v.clone() + 1 if k in names else v for k, v in state.items()}  # all would change...
    state[names[-1]].fill_(float("nan"))  # ...but the last one is NaN
    with pytest.raises(ValueError, match=names[-1].split(".")[-1]):
        module.load_state_dict(state)
    after = module.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items()), "a refused load changed the module"


INVALID = [
    pytest.param(spec.factory, bad, id=f"{name}-{'-'.join(bad)}")
    for name, spec in sorted(LAYERS.items())
    for bad in spec.invalid_configs
]


@pytest.mark.parametrize("factory,bad", INVALID)
def test_invalid_constructor_arguments(factory, bad):
    with pytest.raises(ValueError, match="|".join(bad)):
        factory(D_MODEL, **bad)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_d_model_must_be_positive(name):
    with pytest.raises(ValueError, match="d_model"):
        LAYERS[name].factory(0)


def test_finite_check_passes_a_finite_input_whose_sum_overflows():
    layer = lindy.layers.build_layer("s4d", 2, d_state=4)
    x = torch.full((1, 4, 2), 3e38)  # finite, but its float32 sum is inf
    assert torch.isinf(x.sum()) and torch.isfinite(x).all()
    layer(x)  # no error: only real NaN/inf values are refused
