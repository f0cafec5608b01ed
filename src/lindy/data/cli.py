"""``lindy data list`` and ``lindy data generate NAME``: write a generated data set to disk.

lindy data generate lif --split train --num 50000 --tau 0.2 --out data/
    -> data/training-mem-T1024-N(0.0,1.0)-50000-tau_0.2.pt (the file SDN's training script expects)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def _generate_lif(args) -> Path:
    from lindy.data.lif import generate_lif, lif_filename

    # the two splits use different streams unless a seed is given
    seed = args.seed if args.seed is not None else {"train": 0, "test": 1}[args.split]
    data = generate_lif(args.num, args.length, args.tau, seed)
    out = Path(args.out) / lif_filename(args.split, args.num, args.length, args.tau)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, out)
    return out


GENERATORS = {"lif": _generate_lif}


def main(argv: list[str]) -> int:
    from lindy.data import DATASETS

    p = argparse.ArgumentParser(prog="lindy data")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered data sets")
    gen = sub.add_parser("generate", help="write a generated data set to disk")
    gen.add_argument("name", choices=sorted(GENERATORS))
    gen.add_argument("--split", default="train", choices=["train", "test"])
    gen.add_argument("--num", type=int, default=50000)
    gen.add_argument("--length", type=int, default=1024)
    gen.add_argument("--tau", type=float, default=0.2)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--out", default=".")
    args = p.parse_args(argv)
    if args.command == "list":
        print("\n".join(sorted(DATASETS)))
        return 0
    print(f"wrote {GENERATORS[args.name](args)}")
    return 0
