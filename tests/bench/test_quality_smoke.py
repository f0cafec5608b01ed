"""The quality suite runs end to end on a tiny budget, resumes without re-running a cell, and tabulates."""

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def quality(monkeypatch, script_loader):
    module = script_loader(ROOT / "benchmarks" / "quality.py", "_quality_suite")
    tiny = {"length": 30, "n_train": 32, "n_val": 16, "n_test": 16}
    monkeypatch.setitem(module.TASKS, "adding", ("adding", tiny))
    monkeypatch.setattr(module, "WIDTHS", (8, 16))
    return module


def test_smoke_two_families_one_task(quality, tmp_path):
    args = ["--tasks", "adding", "--families", "s4d", "ldnn", "--seeds", "0", "--steps", "2"]
    args += ["--params", "3000", "--batch", "8", "--threads", "1", "--out", str(tmp_path / "q")]
    args += ["--runs", str(tmp_path / "runs")]
    assert quality.main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(r["task"], r["family"]) for r in rows] == [("adding", "s4d"), ("adding", "ldnn")]
    assert all(r["metric"] == "mse" and r["score"] >= 0 and r["params"] > 0 for r in rows)
    assert "| adding (mse) |" in (tmp_path / "q.md").read_text()
    assert (tmp_path / "q.png").stat().st_size > 0
    assert quality.main(args) == 0  # resumed: every cell is done, nothing runs again
    assert len((tmp_path / "q.jsonl").read_text().splitlines()) == 2
    assert all(r["steps"] == 2 and r["batch"] == 8 and r["data"]["length"] == 30 for r in rows)


def test_a_new_budget_or_task_definition_runs_again_and_is_tabulated_apart(quality, tmp_path):
    args = ["--tasks", "adding", "--families", "s4d", "--seeds", "0", "--params", "3000", "--batch", "8"]
    args += ["--threads", "1", "--out", str(tmp_path / "q"), "--runs", str(tmp_path / "runs")]
    assert quality.main([*args, "--steps", "2"]) == 0
    # another budget: its own run folder, so the resumed cell is not the 2-step one
    assert quality.main([*args, "--steps", "3", "--runs", str(tmp_path / "runs3")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in rows] == [2, 3]
    assert "(1 seeds," in (tmp_path / "q.md").read_text()  # only the 3-step row in the table
    quality.TASKS["adding"] = ("adding", {**quality.TASKS["adding"][1], "length": 31})
    assert quality.main([*args, "--steps", "3", "--runs", str(tmp_path / "runs31")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [r["data"]["length"] for r in rows] == [30, 30, 31]
    # --report tabulates what is there and runs nothing, not even a missing family
    assert quality.main([*args, "--steps", "2", "--families", "s4d", "ldnn", "--report"]) == 0
    assert len((tmp_path / "q.jsonl").read_text().splitlines()) == 3
    assert (tmp_path / "q.md").read_text().count("(1 seeds,") == 0  # length 30 is no longer the task


def test_heatmap_colours_best_one_worst_zero_and_a_tie_one_half(quality):
    def row(task, family, score, higher):
        return {"task": task, "family": family, "score": score, "higher_is_better": higher}

    rows = [row("acc", "a", 0.9, True), row("acc", "a", 0.7, True), row("acc", "b", 0.5, True)]
    rows += [row("acc", "c", 0.6, True), row("mse", "a", 2.0, False), row("mse", "b", 1.0, False)]
    rows += [row("flat", "a", 0.5, True), row("flat", "b", 0.5, True)]
    grid, means = quality.normalised_grid(rows, ["acc", "mse", "flat"], ["a", "b", "c"])
    assert means[0].tolist() == pytest.approx([0.8, 0.5, 0.6])
    assert grid[0].tolist() == pytest.approx([1.0, 0.0, 1 / 3])
    assert grid[1, :2].tolist() == [0.0, 1.0]  # lower is better: the smaller error is the best
    assert grid[2, :2].tolist() == [0.5, 0.5]  # every family tied: none best, none worst
    assert all(map(math.isnan, (grid[1, 2], grid[2, 2], means[1, 2])))  # no run, no colour
