"""Weights without pickles: ``model.safetensors`` + ``config.json``, and loading them back.

lindy export runs/<experiment>/<stamp>          # -> runs/.../export/{model.safetensors,config.json}
model = lindy.load_pretrained("runs/.../export")
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


def load_pretrained(path: str | Path, device="cpu") -> SequenceModel:
    """Build the model described by ``<path>/config.json`` and load ``<path>/model.safetensors``."""
    from safetensors.torch import load_file

    path = Path(path)
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} not found: expected a folder made by `lindy export`")
    config = json.loads((path / "config.json").read_text())
    model = build_model(config["model"], TaskInfo(**config["info"]))
    tensors = load_file(str(path / "model.safetensors"), device=str(device))
    strict = not config["model"].get("tie_embeddings")
    model.load_state_dict(tensors, strict=strict)
    return model.to(device).eval()
