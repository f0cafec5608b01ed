"""Weights without pickles: ``model.safetensors`` + ``config.json``, and loading them back.

lindy export runs/<experiment>/<stamp>          # -> runs/.../export/{model.safetensors,config.json}
model = lindy.load_pretrained("runs/.../export")

Both files are written atomically and readable by others (``lindy._atomic``: 0o644 under umask 022).
Loading checks the weights against the model that config.json describes before copying any of them, and
names every mismatch at once: missing keys, unexpected keys, and shape mismatches with both shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

from lindy._atomic import atomic_write, atomic_write_text
from lindy.data.base import TaskInfo
from lindy.models import SequenceModel, build_model


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    from safetensors.torch import save_file

    from lindy.train.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in state["model"].items()}
    # a tied decoder shares storage with the embedding: safetensors stores each storage once
    if "decoder.weight" in tensors and state["model_config"].get("tie_embeddings"):
        tensors.pop("decoder.weight")
    atomic_write(out / "model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    config = {"model": state["model_config"], "info": state["info"], "format": "lindy-1"}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2))
    return out


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a JSON file ({err}); expected one made by `lindy export`") from None
    missing = [k for k in ("model", "info") if not isinstance(config, dict) or k not in config]
    if missing:
        raise ValueError(f"{path}: no {missing} entries; expected one made by `lindy export`")
    return config


def weight_mismatches(expected: dict, tensors: dict, optional=()) -> list[str]:
    """One line per difference between a model's ``state_dict()`` (``expected``) and loaded ``tensors``:
    missing keys (except ``optional`` ones), unexpected keys, and shapes that differ (both shapes)."""
    lines = [f"missing: {k}" for k in expected if k not in tensors and k not in optional]
    lines += [f"unexpected: {k}" for k in tensors if k not in expected]
    lines += [
        f"shape of {k}: model {tuple(expected[k].shape)}, file {tuple(tensors[k].shape)}"
        for k in expected
        if k in tensors and tuple(expected[k].shape) != tuple(tensors[k].shape)
    ]
    return lines


def load_pretrained(path: str | Path, device="cpu") -> SequenceModel:
    """Build the model described by ``<path>/config.json`` and load ``<path>/model.safetensors``.

    Raises ``ValueError`` listing every missing, unexpected or wrongly shaped weight when config.json and
    the weights do not describe the same model (the model is not partly loaded)."""
    from safetensors.torch import load_file

    path = Path(path)
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} not found: expected a folder made by `lindy export`")
    config = _read_config(path / "config.json")
    model = build_model(config["model"], TaskInfo(**config["info"]))
    tensors = load_file(str(path / "model.safetensors"), device=str(device))
    tied = bool(config["model"].get("tie_embeddings"))
    # a tied decoder is stored once, as the embedding (export_checkpoint drops decoder.weight)
    problems = weight_mismatches(model.state_dict(), tensors, ("decoder.weight",) if tied else ())
    if problems:
        listing = "\n  ".join(problems)
        raise ValueError(
            f"{path}: model.safetensors does not match the model config.json describes "
            f"({len(problems)} differences):\n  {listing}"
        )
    model.load_state_dict(tensors, strict=not tied)
    return model.to(device).eval()
