"""``lindy data list`` and ``lindy data generate NAME``: write a generated data set to disk.

lindy data generate lif --split train --num 50000 --tau 0.2 --out data/
    -> data/training-mem-T1024-N(0.0,1.0)-50000-tau_0.2.pt (the file SDN's training script expects)
lindy data generate copying --out data/ length=200 seed=1
    -> data/copying.pt: {"info": {...}, "train": {"x", "y"}, "val": {...}, "test": {...}}
Any registered data set can be written this way; ``key=value`` words are the builder's options.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
import yaml


def _generate_lif(args) -> Path:
    from lindy.data.lif import generate_lif, lif_filename

    # the two splits use different streams unless a seed is given
    seed = args.seed if args.seed is not None else {"train": 0, "test": 1}[args.split]
    data = generate_lif(args.num, args.length, args.tau, seed)
    out = Path(args.out) / lif_filename(args.split, args.num, args.length, args.tau)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, out)
    return out


def _stack(dataset) -> dict[str, torch.Tensor]:
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return {
        "x": torch.stack([torch.as_tensor(x) for x in xs]),
        "y": torch.stack([torch.as_tensor(y) for y in ys]),
    }


def parse_options(words: list[str]) -> dict:
    """``["length=200", "seed=1"]`` -> ``{"length": 200, "seed": 1}`` (values parsed as YAML scalars)."""
    options = {}
    for word in words:
        if "=" not in word:
            raise ValueError(f"options must be key=value, got {word!r}")
        key, value = word.split("=", 1)
        options[key] = yaml.safe_load(value)
    return options


def _generate_registered(args) -> Path:
    from lindy.data import build_data

    data = build_data(args.name, **parse_options(args.options))
    out = Path(args.out) / f"{args.name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"info": dataclasses.asdict(data.info)}
    for split in ("train", "val", "test"):
        payload[split] = _stack(getattr(data, split))
    torch.save(payload, out)
    return out


def main(argv: list[str]) -> int:
    from lindy.data import DATASETS

    p = argparse.ArgumentParser(prog="lindy data")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered data sets")
    gen = sub.add_parser("generate", help="write a generated data set to disk")
    gen.add_argument("name", help="lif, or any registered data set (see `lindy data list`)")
    gen.add_argument("options", nargs="*", help="builder options as key=value")
    gen.add_argument("--split", default="train", choices=["train", "test"], help="lif only")
    gen.add_argument("--num", type=int, default=50000, help="lif only")
    gen.add_argument("--length", type=int, default=1024, help="lif only")
    gen.add_argument("--tau", type=float, default=0.2, help="lif only")
    gen.add_argument("--seed", type=int, default=None, help="lif only")
    gen.add_argument("--out", default=".")
    args = p.parse_args(argv)
    if args.command == "list":
        print("\n".join(sorted(DATASETS)))
        return 0
    if args.name == "lif":
        print(f"wrote {_generate_lif(args)}")
        return 0
    if args.name not in DATASETS:
        p.error(f"NAME must be lif or one of {sorted(DATASETS)}, got {args.name!r}")
    print(f"wrote {_generate_registered(args)}")
    return 0
