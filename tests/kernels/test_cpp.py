"""The build-on-first-use shim: a fast path that cannot build, or is disabled, says so once and in
``fast_path_status()``; LEM records its C++ loop's status when it runs."""

import logging
import shutil

import pytest
import torch
import torch.utils.cpp_extension

from lindy.kernels import cpp, lem_cpu
from lindy.layers import LEM


@pytest.fixture
def fresh(monkeypatch):
    """Empty status, log-once and build memo, so that each test sees its own first attempts."""
    monkeypatch.setattr(cpp, "_STATUS", {})
    monkeypatch.setattr(cpp, "_LOGGED", set())
    monkeypatch.setattr(cpp, "_BUILT", {})
    monkeypatch.delenv(cpp.DISABLE_ENV, raising=False)


def warnings_about(caplog, name):
    return [r for r in caplog.records if r.levelno >= logging.WARNING and name in r.getMessage()]


def test_a_failing_build_returns_none_and_says_so_once(fresh, tmp_path, caplog):
    source = tmp_path / "broken.cpp"
    source.write_text("this is not C++ {\n")
    name = "lindy_test_broken"
    with caplog.at_level(logging.WARNING, logger=cpp.__name__):
        for _ in range(3):  # built once (both flag sets fail), then the memo answers
            assert (
                cpp.load(name, [source], optional_flags=["-fopenmp"], build_directory=tmp_path / "b") is None
            )
    status = cpp.fast_path_status()[name]
    assert status.startswith("unavailable: ") and len(status) <= 250
    assert len(warnings_about(caplog, name)) == 1


def test_optional_flags_are_dropped_when_the_build_fails_with_them(fresh, monkeypatch, caplog):
    calls = []

    def fake_load(**kwargs):
        calls.append((kwargs["extra_cflags"], kwargs["extra_ldflags"]))
        if "-fopenmp" in kwargs["extra_cflags"]:
            raise RuntimeError("Error building extension 'x':\nno omp.h")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", fake_load)
    with caplog.at_level(logging.WARNING, logger=cpp.__name__):
        ops = cpp.load("lindy_test_fake", ["a.cpp"], extra_cflags=["-O3"], optional_flags=["-fopenmp"])
        assert cpp.load("lindy_test_fake", ["a.cpp"]) is ops  # memoised: no second build
    assert ops is not None and cpp.fast_path_status() == {"lindy_test_fake": "built"}
    # LEM's flags as before the shim: with OpenMP first, compiled and linked, then without
    assert calls == [(["-O3", "-fopenmp"], ["-fopenmp"]), (["-O3"], [])]
    assert len(warnings_about(caplog, "without -fopenmp")) == 1


def test_the_disable_switch_records_disabled_and_builds_nothing(fresh, monkeypatch, caplog):
    def no_build(*args, **kwargs):
        raise AssertionError("a disabled fast path must not build")

    monkeypatch.setattr(cpp, "_build", no_build)
    monkeypatch.setenv(cpp.DISABLE_ENV, "1")
    x = torch.randn(2, 5, 3)
    with caplog.at_level(logging.WARNING, logger=cpp.__name__):
        assert lem_cpu.ops() is None
        LEM(4, d_input=3)(x)  # the Python loop runs
    assert cpp.fast_path_status() == {lem_cpu.NAME: f"disabled: {cpp.DISABLE_ENV}=1"}
    assert len(warnings_about(caplog, lem_cpu.NAME)) == 1
    monkeypatch.setenv(cpp.DISABLE_ENV, "0")  # "0" means enabled
    assert not cpp.disabled()


def test_lem_records_its_fast_path_status_when_it_runs(monkeypatch):
    monkeypatch.delenv(cpp.DISABLE_ENV, raising=False)
    monkeypatch.setattr(cpp, "_STATUS", {})  # keep the build memo: no second compile in this process
    LEM(4, d_input=3)(torch.randn(2, 5, 3))
    status = cpp.fast_path_status()[lem_cpu.NAME]
    if shutil.which("c++") and shutil.which("ninja"):
        assert status == "built"
    else:
        assert status.startswith("unavailable: ")


def test_the_loops_flush_subnormals_only_while_they_run():
    # the C++ recurrences flush subnormals to zero on their threads (a gradient read at the last step
    # underflows on its way back through a long sequence, and subnormal arithmetic is ~15x slower); the
    # calling thread runs a share of the loop too, and must get its own floating-point mode back
    from lindy.kernels.spectral import ar_filter

    tiny = torch.tensor([1e-40])  # subnormal in float32
    assert tiny.item() != 0.0
    x = torch.randn(8, 300, 4, requires_grad=True)
    m = LEM(4, d_input=4)
    m(x)[:, -1].sum().backward()
    y = ar_filter(x, 0.5 * torch.eye(4).expand(2, 4, 4).contiguous())
    y[:, -1].sum().backward()
    assert (tiny * 2).item() != 0.0 and (torch.tensor([3e-40]) - tiny).item() != 0.0
    assert torch.isfinite(x.grad).all()
