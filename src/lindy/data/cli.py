"""``lindy data list`` and ``lindy data generate NAME``: write a generated data set to disk.

lindy data generate lif --split train --num 50000 --tau 0.2 --out data/
    -> data/training-mem-T1024-N(0.0,1.0)-50000-tau_0.2.pt (the file SDN's training script expects)
lindy data generate copying --out data/ delay=200 seed=1
    -> data/copying.pt: {"info": {...}, "train": {"x", "y"}, "val": {...}, "test": {...}}
Any registered data set can be written this way; ``key=value`` words are the builder's options (values
read as YAML scalars), in any order with the ``--`` flags. For ``lif`` the words are ``generate_lif``'s
options (``num``, ``length``, ``tau``, ``seed``, ``mean``, ``std``, ``split``), the same as its flags; the
flags are ``lif`` only. A bad option (unknown key, negative count, ...) or missing input files exit with
status 2 and a message naming the option or the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import re
from pathlib import Path

import torch
import yaml

from lindy._atomic import atomic_write

LIF_FLAGS = ("split", "num", "length", "tau", "seed")  # the --flags, generate_lif's options
LIF_DEFAULTS = {
    "split": "train",
    "num": 50000,
    "length": 1024,
    "tau": 0.2,
    "seed": None,
    "mean": 0.0,
    "std": 1.0,
}


class OptionError(ValueError):
    """A bad command-line option; the message names it."""


def _save(obj, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: torch.save(obj, tmp))
    return out


def _closest(key: str, valid) -> str:
    near = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _lif_options(args) -> tuple[dict, dict]:
    """The lif options from flags and key=value words, and how the user spelt each (for messages)."""
    options, spelt = dict(LIF_DEFAULTS), {}
    for key in LIF_FLAGS:
        if getattr(args, key) is not None:
            options[key], spelt[key] = getattr(args, key), f"--{key}"
    for key, value in parse_options(args.options).items():
        if key not in LIF_DEFAULTS:
            raise OptionError(
                f"unknown lif option {key!r}{_closest(key, LIF_DEFAULTS)}; valid: {list(LIF_DEFAULTS)}"
            )
        if key in spelt:
            raise OptionError(f"{key} given twice: as {spelt[key]} and as {key}={value}")
        options[key], spelt[key] = value, key
    if options["split"] not in ("train", "test"):
        raise OptionError(f"{spelt.get('split', 'split')} must be train or test, got {options['split']!r}")
    return options, spelt


def _generate_lif(args) -> Path:
    from lindy.data.lif import check_lif_options, generate_lif, lif_filename

    opts, spelt = _lif_options(args)
    # the two splits use different streams unless a seed is given
    seed = opts["seed"] if opts["seed"] is not None else {"train": 0, "test": 1}[opts["split"]]
    sizes = {k: opts[k] for k in ("num", "length", "tau", "mean", "std")}
    try:
        check_lif_options(seed=seed, **sizes)
    except ValueError as err:  # name the option as it was typed: "--num must be ..."
        key = str(err).split(" ", 1)[0]
        raise OptionError(re.sub(rf"^{key}\b", spelt.get(key, key), str(err))) from None
    data = generate_lif(seed=seed, **sizes)
    name = lif_filename(opts["split"], opts["num"], opts["length"], opts["tau"], opts["mean"], opts["std"])
    return _save(data, Path(args.out) / name)


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
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise OptionError(f"options must be key=value, got {word!r}")
        if key in options:
            raise OptionError(f"option {key!r} given twice")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise OptionError(f"{key}={value}: not a YAML value ({err})") from None
    return options


def _generate_registered(args) -> Path:
    from lindy.data import DATASETS, build_data

    given = [f"--{k}" for k in LIF_FLAGS if getattr(args, k) is not None]
    if given:
        raise OptionError(f"{', '.join(given)}: lif only; give {args.name}'s options as key=value words")
    options = parse_options(args.options)
    valid = inspect.signature(DATASETS[args.name]).parameters
    for key in options:
        if key not in valid:
            raise OptionError(
                f"{args.name} has no option {key!r}{_closest(key, valid)}; its options: {list(valid)}"
            )
    data = build_data(args.name, **options)
    payload = {"info": dataclasses.asdict(data.info)}
    for split in ("train", "val", "test"):
        payload[split] = _stack(getattr(data, split))
    return _save(payload, Path(args.out) / f"{args.name}.pt")


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    p = argparse.ArgumentParser(prog="lindy data")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered data sets")
    gen = sub.add_parser("generate", help="write a generated data set to disk")
    gen.add_argument("name", help="lif, or any registered data set (see `lindy data list`)")
    gen.add_argument("options", nargs="*", help="builder options as key=value, anywhere on the line")
    d = LIF_DEFAULTS
    gen.add_argument("--split", default=None, choices=["train", "test"], help=f"lif only ({d['split']})")
    gen.add_argument("--num", type=int, default=None, help=f"lif only ({d['num']})")
    gen.add_argument("--length", type=int, default=None, help=f"lif only ({d['length']})")
    gen.add_argument("--tau", type=float, default=None, help=f"lif only ({d['tau']})")
    gen.add_argument("--seed", type=int, default=None, help="lif only (train 0, test 1)")
    gen.add_argument("--out", default=".")
    return p, gen


def main(argv: list[str]) -> int:
    from lindy.data import DATASETS

    p, gen = _parser()
    # key=value words after a flag are left over by argparse (one positional run only): take them here
    args, extra = p.parse_known_args(argv)
    flags = [w for w in extra if w.startswith("-") or "=" not in w or args.command != "generate"]
    if flags:
        (gen if args.command == "generate" else p).error(f"unrecognized arguments: {' '.join(flags)}")
    if args.command == "list":
        print("\n".join(sorted(DATASETS)))
        return 0
    args.options = [*args.options, *extra]
    if args.name != "lif" and args.name not in DATASETS:
        gen.error(
            f"NAME must be lif or one of {sorted(DATASETS)}, got {args.name!r}{_closest(args.name, DATASETS)}"
        )
    try:
        out = _generate_lif(args) if args.name == "lif" else _generate_registered(args)
    except (ValueError, TypeError, FileNotFoundError, ModuleNotFoundError) as err:
        gen.error(str(err))  # a bad option, or data that is not where the options say: exit status 2
    print(f"wrote {out}")
    return 0
