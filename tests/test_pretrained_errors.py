"""Exports others can read, and ``load_pretrained`` errors that say what does not match."""

from __future__ import annotations

import dataclasses
import json
import os
import stat

import pytest
import torch

import lindy
from lindy.data import TaskInfo
from lindy.models import build_model
from lindy.pretrained import export_checkpoint, weight_mismatches

INFO = TaskInfo(d_input=2, d_output=3, length=8, task="classification", metric="accuracy")
MODEL = {"d_model": 8, "n_layers": 1, "layer": "s4d"}


@pytest.fixture
def export(tmp_path, monkeypatch):
    """An export folder made by ``export_checkpoint`` from a tiny model's checkpoint state."""
    torch.manual_seed(0)
    model = build_model(MODEL, INFO)
    state = {"model": model.state_dict(), "model_config": MODEL, "info": dataclasses.asdict(INFO)}
    monkeypatch.setattr("lindy.train.checkpoint.load_checkpoint", lambda path: state)
    old = os.umask(0o022)
    try:
        out = export_checkpoint(tmp_path / "best.pt", tmp_path / "export")
    finally:
        os.umask(old)
    return out, model


def test_exported_files_are_readable_by_others(export):
    out, _ = export
    for name in ("model.safetensors", "config.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]  # no temp files


def test_round_trip(export):
    out, model = export
    x = torch.rand(2, 8, 2)
    torch.testing.assert_close(lindy.load_pretrained(out)(x), model.eval()(x), rtol=0, atol=0)


def test_mismatch_lists_missing_unexpected_and_shapes_in_one_message(export):
    from safetensors.torch import load_file, save_file

    out, _ = export
    tensors = load_file(str(out / "model.safetensors"))
    tensors.pop("final_norm.bias")
    tensors["blocks.0.extra"] = torch.zeros(1)
    tensors["decoder.weight"] = torch.zeros(5, 8)
    save_file(tensors, str(out / "model.safetensors"))
    with pytest.raises(ValueError) as err:
        lindy.load_pretrained(out)
    message = str(err.value)
    assert "3 differences" in message and str(out) in message
    assert "missing: final_norm.bias" in message
    assert "unexpected: blocks.0.extra" in message
    assert "shape of decoder.weight: model (3, 8), file (5, 8)" in message
    assert len(message.splitlines()) == 4  # one headline, one line per difference


def test_config_for_another_model_names_the_shapes(export):
    out, _ = export
    config = json.loads((out / "config.json").read_text())
    config["model"]["n_layers"] = 2
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"missing: blocks\.1\.layer\.log_dt"):
        lindy.load_pretrained(out)


def test_unreadable_config_is_named(export):
    out, _ = export
    (out / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json: not a JSON file"):
        lindy.load_pretrained(out)
    (out / "config.json").write_text("[]")
    with pytest.raises(ValueError, match=r"config\.json: no \['model', 'info'\] entries"):
        lindy.load_pretrained(out)


def test_weight_mismatches_allows_the_tied_decoder():
    expected = {"embedding.weight": torch.zeros(4, 2), "decoder.weight": torch.zeros(4, 2)}
    assert weight_mismatches(expected, {"embedding.weight": torch.zeros(4, 2)}, ("decoder.weight",)) == []
    assert weight_mismatches(expected, {"embedding.weight": torch.zeros(4, 2)}) == ["missing: decoder.weight"]
