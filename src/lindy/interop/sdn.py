"""The reference SDN file and SpikingSSM (SS4D) weights of shenshuaijie/SDN as lindy modules.

``sdn_from_reference(path)``: the shipped ``mem_pred_d8k8_...pkl`` is a TorchScript zip (``<name>/data.pkl``
pickles the module tree, ``<name>/data/<i>`` hold the raw storages, ``<name>/code/`` the TorchScript
source). It is read without running anything from it: ``data.pkl`` is unpickled by an allow-list unpickler
that builds nothing but plain placeholder objects for the module classes, and tensors from the raw
storages (no ``torch.jit.load``, no ``torch.load``, no class of the file's choosing is imported).

``spikingssm_from_reference(state_dict, *, sdn_path=None, **config)``: an ``SS4D`` state dict (the S4D-Lin
kernel ``kernel.{log_dt, C, log_A_real, A_imag}``, or S4's ``SSMKernelDiag`` with trainable B
``kernel.{inv_dt, C, B, A_real, A_imag}``; ``D``, ``ln_vth``, ``output_linear.0.*``) as a lindy
``SpikingSSM`` with the same outputs, its neuron the official SDN (``sdn_path``) or lindy's.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from lindy.layers.sdn import FusedSDN, SDNNeuron
from lindy.layers.spiking_ssm import SpikingSSM

__all__ = ["read_torchscript_tensors", "sdn_from_reference", "spikingssm_from_reference"]

_STORAGES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
}


class _Module:
    """Placeholder for a pickled TorchScript module: only its attribute dict is kept."""

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {})


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _rebuild_tensor(storage: Tensor, offset: int, size, stride, *_ignored) -> Tensor:
    return torch.as_strided(storage, tuple(size), tuple(stride), offset).clone()


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__."):
            return _Module
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _StorageType(_STORAGES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a tensor or module record")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent record {pid!r}")
        raw = self.archive.read(f"{self.prefix}data/{key}")
        flat = torch.frombuffer(bytearray(raw), dtype=storage_type.dtype)
        return flat[:numel]


def read_torchscript_tensors(path: str | Path) -> dict[str, Tensor]:
    """{dotted name: tensor} of every tensor attribute in a TorchScript zip, without executing its code."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path}: not a TorchScript file (a zip archive with data.pkl): {err}") from err
    with archive:
        names = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if not names:
            raise ValueError(f"{path}: not a TorchScript file: no <name>/data.pkl in the archive")
        prefix = names[0][: -len("data.pkl")]
        try:
            root = _Unpickler(archive.read(names[0]), archive, prefix).load()
        except (pickle.UnpicklingError, KeyError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: data.pkl is not a plain module of tensors: {err}") from err
    out: dict[str, Tensor] = {}

    def walk(obj, name: str) -> None:
        for key, value in vars(obj).items():
            if isinstance(value, Tensor):
                out[f"{name}{key}"] = value
            elif isinstance(value, _Module):
                walk(value, f"{name}{key}.")

    if not isinstance(root, _Module):
        raise ValueError(f"{path}: data.pkl does not hold a module")
    walk(root, "")
    return out


def sdn_from_reference(path: str | Path, *, tau: float | None = 0.125) -> FusedSDN:
    """The reference's fused SDN file as a frozen lindy ``FusedSDN`` with the same outputs.

    ``tau`` records what the file reproduces (the shipped one: 0.125, see models.md 5.2).
    """
    tensors = read_torchscript_tensors(path)
    want = {
        "conv1.weight": 3,
        "conv1.bias": 1,
        "conv2.weight": 3,
        "conv2.bias": 1,
        "conv3.weight": 3,
        "conv3.bias": 1,
    }
    missing = sorted(set(want) - set(tensors))
    if missing or any(tensors[k].dim() != d for k, d in want.items()):
        raise ValueError(
            f"{path}: not a fused SDN (conv1 (d, 1, k), conv2 (d, d, 1), conv3 (1, d, 1), with biases); "
            f"tensors found: {sorted((k, tuple(v.shape)) for k, v in tensors.items())}"
        )
    d, one, k = tensors["conv1.weight"].shape
    shapes_ok = (
        one == 1
        and tensors["conv2.weight"].shape == (d, d, 1)
        and tensors["conv3.weight"].shape == (1, d, 1)
        and tensors["conv1.bias"].shape == (d,)
        and tensors["conv2.bias"].shape == (d,)
        and tensors["conv3.bias"].shape == (1,)
    )
    if not shapes_ok:
        raise ValueError(
            f"{path}: tensor shapes are not a fused SDN's: "
            f"{ {k_: tuple(v.shape) for k_, v in tensors.items()} }"
        )
    model = FusedSDN(d, k, tau)
    model.load_state_dict({key: tensors[key].float() for key in want})
    return model.requires_grad_(False).eval()


def spikingssm_from_reference(
    state_dict: Mapping[str, Tensor], *, sdn_path: str | Path | None = None, **config
) -> SpikingSSM:
    """A reference ``SS4D`` as a lindy ``SpikingSSM`` (same outputs; see the module docstring).

    ``config``: the keyword arguments the SS4D was built with (d_model, d_state, neuron, learnable_vth,
    shared_vth, bidirectional, trainable_B, dropout, ...); widths are read from the tensors, init-only
    ones (dt_min, dt_max, lr, transposed, ...) are ignored. ``sdn_path``: the reference's SDN file for the
    neuron (default: lindy's SDN at tau 0.125, the reference's neuron tau).
    """
    sd = dict(state_dict)
    trainable_b = bool(config.get("trainable_B", "kernel.inv_dt" in sd))
    c = sd.get("kernel.C")
    if c is None or "D" not in sd or "output_linear.0.weight" not in sd:
        raise ValueError(
            f"not an SS4D state dict (needs D, kernel.C, output_linear.0.*), got keys {sorted(sd)}"
        )
    channels, h, modes, _ = c.shape
    bidirectional = bool(config.get("bidirectional", channels == 2))
    if channels != (2 if bidirectional else 1):
        raise ValueError(
            f"kernel.C has {channels} channel(s); bidirectional={bidirectional} needs "
            f"{2 if bidirectional else 1} (channels > 1 without bidirectional is not supported)"
        )
    learnable_vth = bool(config.get("learnable_vth", "ln_vth" in sd))
    shared_vth = bool(config.get("shared_vth", learnable_vth and sd["ln_vth"].numel() == 1))
    neuron = config.get("neuron", "sdn")
    layer = SpikingSSM(
        h,
        d_state=2 * modes,
        bidirectional=bidirectional,
        trainable_B=trainable_b,
        neuron=neuron,
        tau=0.125,
        learnable_vth=learnable_vth,
        shared_vth=shared_vth,
        dropout=float(config.get("dropout", 0.0)),
    )
    if sdn_path is not None and neuron == "sdn":
        layer.neuron = SDNNeuron(0.125, sdn=sdn_from_reference(sdn_path))
    new = {
        "D": sd["D"].reshape(h),
        "C": c[0],
        "output_linear.weight": sd["output_linear.0.weight"][..., 0],
        "output_linear.bias": sd["output_linear.0.bias"],
    }
    if bidirectional:
        new["C_reverse"] = c[1]
    if learnable_vth:
        new["ln_vth"] = sd["ln_vth"].reshape(-1)
    if trainable_b:
        # S4's SSMKernelDiag: A = -exp(A_real) - i A_imag, dt = exp(inv_dt) ('exp' transforms)
        new["log_dt"] = sd["kernel.inv_dt"].reshape(h)
        new["log_A_real"] = sd["kernel.A_real"]
        new["A_imag"] = -sd["kernel.A_imag"]
        new["B"] = sd["kernel.B"].reshape(h, modes, 2)
    else:
        for key in ("log_dt", "log_A_real", "A_imag"):
            new[key] = sd[f"kernel.{key}"]
    with torch.no_grad():
        for key, value in new.items():
            target = (
                layer.get_parameter(key) if key in dict(layer.named_parameters()) else layer.get_buffer(key)
            )
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{key}: shape {tuple(value.shape)} does not fit {tuple(target.shape)}")
            target.copy_(value)
    return layer
