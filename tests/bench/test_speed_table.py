"""The speed benchmark builds each layer from its registry entry and produces its table (a tiny run).

Speed itself is never asserted here (that is what benchmarks/ is for): only that the benchmark runs, takes
the benchmark shape from ``LayerSpec.bench_kwargs``, and reports every case beside the floor.
"""

import pytest
import torch

from lindy.bench import speed
from lindy.layers.base import LAYERS


def test_benchmark_layers_take_their_registry_kwargs(monkeypatch):
    spec = LAYERS["s4d"]
    monkeypatch.setattr(spec, "bench_kwargs", dict(d_state=6))
    assert speed.build("s4d", 4, 16).d_state == 6
    assert isinstance(speed.build(speed.FLOOR, 4, 16), speed.FFTConvFloor)


def test_tiny_run_reports_every_case_beside_the_floor():
    rows = speed.run(["s4d", "lssl"], [16], 2, 4, 1, 0, torch.device("cpu"), memory=False)
    assert [(r["layer"], r["L"]) for r in rows] == [(speed.FLOOR, 16), ("s4d", 16), ("lssl", 16)]
    assert rows[0]["fwdbwd_vs_floor"] == 1.0 and all(r["fwdbwd_ms"] > 0 for r in rows)
    assert "| s4d | 16 |" in speed.markdown(rows)


def test_bad_options_are_refused_naming_the_option(capsys):
    for argv, option in [
        (["--lengths", "1024", "0"], "--lengths"),
        (["--lengths", "-5"], "--lengths"),
        (["--rounds", "0"], "--rounds"),
        (["--layers", "s4dd"], "--layers"),
    ]:
        with pytest.raises(SystemExit) as err:
            speed.main(argv)
        assert err.value.code == 2
        assert option in capsys.readouterr().err
