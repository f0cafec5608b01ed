"""One run, one folder, one writer: collision-free folders, a lock held by a real process, refusing a
non-empty folder, and ``resume=auto`` choosing only a run of the same configuration."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from lindy.train.config import compose_config
from lindy.train.fingerprint import fingerprint
from lindy.train.resume import find_resumable, open_run
from lindy.train.rundir import RunFolderError, RunLock
from lindy.train.settings import read_settings


def test_two_runs_started_in_the_same_second_get_their_own_folders(tiny, tmp_path):
    """Both runs get the same timestamp (forced) and the same folder name (what ran is the same; they
    differ only in a setting that is not part of it): one folder each, each with its own results."""
    env = {
        **os.environ,
        "LINDY_RUN_STAMP": "20250101-000000",
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }
    args = [*tiny, "trainer.max_epochs=1", "trainer.max_steps=2", f"trainer.run_root={tmp_path}"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lindy.train", *args, f"trainer.log_every_steps={k}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = sorted((tmp_path / "tiny").iterdir())
    assert len(folders) == 2, folders
    assert {f.name.split("_")[0] for f in folders} == {"20250101-000000", "20250101-000000-2"}
    assert {OmegaConf.load(f / "config.yaml").trainer.log_every_steps for f in folders} == {1, 2}
    for f in folders:
        summary = json.loads((f / "summary.json").read_text())
        assert summary["steps"] == 2 and summary["experiment"] == "tiny"
        assert "data=adding" in summary["overrides"] and summary["run"].startswith("tiny data=adding")
        assert "trainer.max_steps=2" not in summary["overrides"]  # how long, not what
        assert "data=adding" in f.name  # the folder says what ran


def test_a_second_writer_fails_at_once_naming_the_process_that_holds_the_folder(tiny, tmp_path, lindy_cli):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from lindy.train.rundir import RunLock; RunLock({str(run)!r}); print('held', flush=True); "
            "import time; time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.time()
        proc = lindy_cli([*tiny, f"trainer.run_dir={run}"])
        assert proc.returncode == 2, proc.stderr
        assert f"run folder {run} is in use by process {holder.pid}" in proc.stderr
        assert time.time() - started < 60  # at once: before any data or model is built
        assert os.listdir(run) == [".lock"]
        # resume=auto on a run that is still training is a second writer too
        proc = lindy_cli([*tiny, f"trainer.run_dir={run}", "trainer.resume=auto"])
        assert proc.returncode == 2 and f"process {holder.pid}" in proc.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    RunLock(run).release()  # the OS released the dead holder's lock


def _settings(cfg):
    return read_settings(cfg)


def test_a_new_run_refuses_a_non_empty_folder_unless_asked_to_overwrite(tiny, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "metrics.csv", "summary.json", "notes.txt"):
        (run / name).write_text("old")
    cfg = compose_config([*tiny, f"trainer.run_dir={run}"])
    with pytest.raises(RunFolderError, match=r"is not empty \(it holds last\.pt, metrics\.csv, notes\.txt"):
        open_run(cfg, _settings(cfg), True)
    cfg = compose_config([*tiny, f"trainer.run_dir={run}", "trainer.overwrite=true"])
    start = open_run(cfg, _settings(cfg), True)
    try:
        assert start.resume_path is None and "removed the previous run's files" in start.notes[0]
        assert sorted(os.listdir(run)) == [".lock", "notes.txt"]  # only lindy's files go
    finally:
        start.release()


def test_folder_creation_is_collision_free_and_a_failed_set_up_leaves_no_folder(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("LINDY_RUN_STAMP", "S")
    cfg = compose_config([*tiny, f"trainer.run_root={tmp_path}"])
    starts = [open_run(cfg, _settings(cfg), True, ["seed=3"]) for _ in range(3)]
    assert [s.run_dir.name for s in starts] == ["S_seed=3", "S-2_seed=3", "S-3_seed=3"]
    for s in starts:
        s.abandon()  # made here, still empty: removed again
    assert list((tmp_path / "tiny").iterdir()) == []


def _fake_run(folder, overrides, tiny, *, finished=False, checkpoint=True):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(compose_config([*tiny, *overrides]), resolve=True))
    if checkpoint:
        (folder / "last.pt").write_bytes(b"")
    if finished:
        (folder / "summary.json").write_text("{}")


def test_resume_auto_continues_only_a_run_of_the_same_configuration(tiny, tmp_path):
    root = tmp_path / "tiny"
    _fake_run(root / "a", ["data.length=30"], tiny)  # another data set: never taken over
    _fake_run(root / "b", ["seed=1"], tiny, finished=True)
    _fake_run(root / "c", ["trainer.max_epochs=5", "trainer.threads=2"], tiny)  # safe differences only
    _fake_run(root / "d", [], tiny, checkpoint=False)  # died before its first checkpoint

    found, _ = find_resumable(root, compose_config(list(tiny)))
    assert found == root / "c"
    found, why = find_resumable(root, compose_config([*tiny, "seed=2"]))
    assert found is None and "no unfinished run of 'tiny' with this configuration" in why
    assert "starting a fresh run" in why and "seed: 0 (the run) -> 2 (now)" in why
    with pytest.raises(RunFolderError, match=r"has finished: .*b \(summary\.json\)"):
        find_resumable(root, compose_config([*tiny, "seed=1"]))
    assert fingerprint(compose_config([*tiny, "trainer.eval_every_steps=3"])) == fingerprint(
        compose_config(list(tiny))
    )
    assert fingerprint(compose_config([*tiny, "trainer.precision=bf16"])) != fingerprint(
        compose_config(list(tiny))
    )


def test_resume_auto_in_a_finished_run_folder_is_refused(tiny, tmp_path):
    _fake_run(tmp_path / "run", [], tiny, finished=True)
    cfg = compose_config([*tiny, f"trainer.run_dir={tmp_path / 'run'}", "trainer.resume=auto"])
    with pytest.raises(RunFolderError, match="holds a finished run"):
        open_run(cfg, _settings(cfg), True)
    assert os.listdir(tmp_path / "run") != []  # nothing removed
