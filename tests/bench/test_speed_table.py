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


def test_a_case_overrides_its_registry_kwargs_and_reports_step_latency():
    want = ("s4d", {"d_state": 6, "bidirectional": True})
    assert speed.parse_case("s4d:d_state=6,bidirectional=true") == want
    assert speed.build("s4d:d_state=6", 4, 16).d_state == 6
    rows = speed.run(["s4d:d_state=4", "s4d:bidirectional=true"], [8], 2, 4, 1, 0, torch.device("cpu"), False)
    by_case = {r["layer"]: r for r in rows}
    assert by_case["s4d:d_state=4"]["step_us_per_token"] > 0
    assert by_case["s4d:bidirectional=true"]["step_us_per_token"] is None  # no recurrent form
    with pytest.raises(ValueError, match="key=value"):
        speed.parse_case("s4d:d_state")
