"""Sparsity measured: a model with spiking layers reports per-layer firing rates, network sparsity
(1 - rate) and the energy estimate in summary.json, ``lindy eval`` and TensorBoard; others report none."""

import json

import pytest
import torch

from lindy.data import TaskInfo
from lindy.layers.spiking_ssm import E_AC_PJ, E_MAC_PJ
from lindy.models import SequenceModel
from lindy.train.evaluate import evaluate

CPU = torch.device("cpu")
INFO = TaskInfo(d_input=2, d_output=3, length=16, task="classification", metric="accuracy")


def spiking_model(seed=0):
    torch.manual_seed(seed)
    return SequenceModel(2, 3, d_model=6, n_layers=2, layer="spiking_ssm", layer_kwargs=dict(d_state=4))


def data(n=10, length=16):
    g = torch.Generator().manual_seed(1)
    return torch.utils.data.TensorDataset(torch.randn(n, length, 2, generator=g) * 3, torch.arange(n) % 3)


def test_evaluate_reports_rates_over_the_whole_split():
    model, dataset = spiking_model(), data()
    one = evaluate(model, dataset, INFO, batch=10, device=CPU)
    three = evaluate(model, dataset, INFO, batch=3, device=CPU)  # batches of 3, 3, 3, 1
    report = one["sparsity"]
    rates = report["firing_rate"]
    assert set(rates) == {"blocks.0.layer", "blocks.1.layer"}
    assert all(0.0 < r < 1.0 for r in rates.values())
    assert report["sparsity"] == pytest.approx(1 - sum(rates.values()) / 2)
    macs = 16 * 6 * 12  # per layer and example: L steps of the H -> 2H projection
    assert report["energy_ann_j"] == pytest.approx(2 * macs * E_MAC_PJ * 1e-12)
    assert report["energy_snn_j"] == pytest.approx(sum(rates.values()) * macs * E_AC_PJ * 1e-12)
    for key, rate in rates.items():  # the mean over every spike, however the split is batched
        assert three["sparsity"]["firing_rate"][key] == pytest.approx(rate, rel=1e-6)
    # by hand: the spikes of the whole split
    spikes = {}
    hooks = [
        model.get_submodule(k).neuron.register_forward_hook(lambda m, a, out, k=k: spikes.setdefault(k, out))
        for k in rates
    ]
    with torch.no_grad():
        model(dataset.tensors[0])
    for h in hooks:
        h.remove()
    for key, rate in rates.items():
        assert rate == pytest.approx(spikes[key].double().mean().item(), rel=1e-6)


def test_models_without_spiking_layers_report_no_sparsity():
    torch.manual_seed(0)
    model = SequenceModel(2, 3, d_model=6, n_layers=1, layer="s4d", layer_kwargs=dict(d_state=4))
    assert set(evaluate(model, data(), INFO, batch=4, device=CPU)) == {"loss", "accuracy"}


def test_a_spiking_run_records_its_sparsity(tmp_path, lindy_cli):
    run = tmp_path / "spiking"
    args = [
        "experiment=spikingssm/smnist_embedded",
        "data=adding",
        "data.length=20",
        "data.n_train=32",
        "data.n_val=16",
        "data.n_test=16",
        "model.d_model=8",
        "model.n_layers=2",
        "layer.d_state=4",
        "loader.batch_size=16",
        "trainer.max_epochs=1",
        "trainer.threads=1",
        "trainer.tensorboard=true",
        f"trainer.run_dir={run}",
    ]
    proc = lindy_cli(args, check=True)
    summary = json.loads((run / "summary.json").read_text())
    report = summary["sparsity"]
    assert set(summary["test"]) == {"loss", "mse"}
    assert set(report["firing_rate"]) == {"blocks.0.layer", "blocks.1.layer"}
    assert all(0.0 <= r <= 1.0 for r in report["firing_rate"].values())
    assert 0.0 <= report["sparsity"] <= 1.0
    assert 0.0 <= report["energy_snn_j"] < report["energy_ann_j"]
    assert "sparsity" in proc.stdout and "J dense" in proc.stdout

    out = lindy_cli(["eval", str(run)], module="lindy.cli", check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["sparsity"] == report  # the same numbers

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val_sparsity", "val_energy_snn_j", "val_firing_rate/blocks.0.layer"} <= tags
    assert all(0.0 <= e.value <= 1.0 for e in events.Scalars("val_sparsity"))
