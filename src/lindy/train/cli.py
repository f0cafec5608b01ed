"""``lindy train``, ``lindy eval`` and ``lindy export``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TRAIN_HELP = """usage: lindy train [experiment=<family>/<task>] [key=value ...]
       torchrun --nproc_per_node=N -m lindy.train [experiment=...] [key=value ...]

Composes lindy/configs/config.yaml with the experiment and Hydra overrides, e.g.
  lindy train experiment=s4d/smnist_embedded trainer.max_epochs=2 model.d_model=32
  lindy train data=smnist data.root=/data trainer.resume=auto
With no experiment it runs the default (s4d/smnist_embedded: offline, real MNIST subset).

experiments:
"""


def train_main(argv: list[str]) -> int:
    from lindy.train.config import compose_config, explain, list_experiments

    if any(a in ("-h", "--help") for a in argv):
        print(TRAIN_HELP + "\n".join(f"  {e}" for e in list_experiments()))
        return 0
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = compose_config(argv)
    except (HydraException, OmegaConfBaseException) as err:
        print(f"lindy train: {explain(err)}", file=sys.stderr)
        return 2
    from lindy.train.loop import NonFiniteLossError, Trainer

    try:
        Trainer(cfg).fit()
    except NonFiniteLossError as err:
        print(f"lindy train: stopped: {err}", file=sys.stderr)
        return 3
    except (FileNotFoundError, ValueError) as err:
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
