"""The ``lindy`` command: ``lindy <command> [args]``. Each command lives in its own module."""

from __future__ import annotations

import importlib
import sys

# command -> module with a ``main(argv) -> int``; imported lazily so that ``lindy --help`` is instant
COMMANDS = {
    "train": ("lindy.train.cli:train_main", "train an experiment: `lindy train --help` lists them"),
    "eval": ("lindy.train.cli:eval_main", "metrics of a checkpoint on its test split"),
    "export": ("lindy.train.cli:export_main", "weights as model.safetensors + config.json"),
    "data": ("lindy.data.cli", "`lindy data list`, `lindy data generate lif --split test`"),
    "smoke": ("lindy.bench.smoke", "forward/backward smoke of every registered layer"),
    "bench": ("lindy.bench.cli", "benchmarks: `lindy bench speed --layers all`"),
}


def usage() -> str:
    lines = ["usage: lindy <command> [args]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(
            f"lindy: unknown command {command!r}; expected one of {sorted(COMMANDS)}\n\n{usage()}",
            file=sys.stderr,
        )
        return 2
    target = COMMANDS[command][0]
    module_name, _, function = target.partition(":")
    module = importlib.import_module(module_name)
    return int(getattr(module, function or "main")(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
