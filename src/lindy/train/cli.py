"""``lindy train``, ``lindy eval`` and ``lindy export``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

TRAIN_HELP = """usage: lindy train [experiment=<family>/<task>] [group=<option>] [key=value ...]
       torchrun --nproc_per_node=N -m lindy.train [experiment=...] [key=value ...]

Composes lindy/configs/config.yaml with the experiment and Hydra overrides, e.g.
  lindy train experiment=s4d/smnist_embedded trainer.max_epochs=2 model.d_model=32
  lindy train data=smnist data.root=/data trainer.resume=auto
With no experiment it runs the default (s4d/smnist_embedded: offline, real MNIST subset).
An unknown key fails naming the closest valid one; every value is checked before anything is built.
Runs: a new <trainer.run_root>/<name>/<stamp>[_<overrides>] folder, or trainer.run_dir (refused when not
empty unless trainer.resume=auto or trainer.overwrite=true). Ctrl-C writes last.pt and prints the
command that resumes.
"""


def train_help() -> str:
    """TRAIN_HELP, the groups with their options and where each part's keys live."""
    from lindy.train.config import CONFIG_DIR, group_options

    lines = [TRAIN_HELP, "groups (group=<option>; each option is configs/<group>/<option>.yaml):"]
    for group in ("data", "layer", "model", "optimizer", "scheduler", "trainer"):
        options = " ".join(group_options(group))
        lines.append(
            textwrap.fill(options, 108, initial_indent=f"  {group:<10} ", subsequent_indent=" " * 13)
        )
    lines += [
        "",
        f"keys (key=value; defaults in {CONFIG_DIR}):",
        "  name, seed, loader.*        config.yaml (loader: batch_size, eval_batch_size, num_workers)",
        "  trainer.*                   trainer/default.yaml",
        "  optimizer.*, scheduler.*    optimizer/<name>.yaml, scheduler/<name>.yaml",
        "  model.*                     model/base.yaml (lindy.models.SequenceModel arguments)",
        "  layer.*, data.*             layer/<name>.yaml, data/<name>.yaml (the constructor's arguments)",
        "  an experiment (experiment/<family>/<task>.yaml) sets any of these",
        "",
        "experiments:",
    ]
    return "\n".join(lines)


def resume_command(argv: list[str], run_dir: Path, world: int = 1) -> str:
    """The command that continues the run in ``run_dir`` with the same arguments."""
    import shlex

    where = ("trainer.run_dir", "trainer.resume", "trainer.overwrite")
    keep = [a for a in argv if a.split("=", 1)[0].lstrip("+") not in where]
    launcher = (
        ["lindy", "train"] if world == 1 else ["torchrun", f"--nproc_per_node={world}", "-m", "lindy.train"]
    )
    return shlex.join([*launcher, *keep, f"trainer.run_dir={run_dir}", "trainer.resume=auto"])


def train_main(argv: list[str]) -> int:
    from lindy.train.config import compose_config, explain, list_experiments

    if any(a in ("-h", "--help") for a in argv):
        print(train_help() + "\n" + "\n".join(f"  {e}" for e in list_experiments()))
        return 0
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lindy.train.keys import suggest

    try:
        cfg = compose_config(argv)
    except (HydraException, OmegaConfBaseException) as err:
        print(f"lindy train: {suggest(explain(err), argv)}", file=sys.stderr)
        return 2
    from lindy.train.interrupt import Interrupted
    from lindy.train.loop import NonFiniteLossError, NonFiniteMetricError, Trainer

    try:
        Trainer(cfg, argv).fit()
    except (NonFiniteLossError, NonFiniteMetricError) as err:
        print(f"lindy train: stopped: {err}", file=sys.stderr)
        return 3
    except Interrupted as err:
        print(
            f"lindy train: interrupted after step {err.step}; wrote {err.checkpoint}. Resume with:\n"
            f"  {resume_command(argv, err.checkpoint.parent, err.world)}",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print("lindy train: interrupted before training started; no checkpoint written", file=sys.stderr)
        return 130
    except (OSError, ValueError) as err:  # OSError: a file that cannot be read or written, named
        print(f"lindy train: {err}", file=sys.stderr)
        return 2
    return 0


def _checkpoint_path(target: str) -> Path:
    path = Path(target)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).exists():
                return path / name
        raise FileNotFoundError(f"{path} holds no best.pt or last.pt")
    return path


def eval_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="lindy eval", description="test-split metrics of a checkpoint; writes nothing into its run"
    )
    p.add_argument("target", help="a run folder (uses best.pt) or a checkpoint file")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. data.root=/data")
    args = p.parse_args(argv)
    from lindy.train.evaluate import evaluate_checkpoint

    try:
        path = _checkpoint_path(args.target)
        metrics = evaluate_checkpoint(path, args.split, args.overrides)
    except (FileNotFoundError, ValueError) as err:
        print(f"lindy eval: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"checkpoint": str(path), "split": args.split, **metrics}))
    return 0


def export_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lindy export", description="weights as safetensors + config.json")
    p.add_argument("target", help="a run folder (uses best.pt) or a checkpoint file")
    p.add_argument("--out", help="output folder (default: <run>/export)")
    args = p.parse_args(argv)
    from lindy.pretrained import export_checkpoint

    path = _checkpoint_path(args.target)
    out = Path(args.out) if args.out else path.parent / "export"
    export_checkpoint(path, out)
    print(f"exported {path} -> {out}/model.safetensors, {out}/config.json")
    return 0
