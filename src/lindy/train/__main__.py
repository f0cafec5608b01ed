"""``python -m lindy.train [key=value ...]``, also under torchrun for DDP."""

import sys

from lindy.train.cli import train_main

if __name__ == "__main__":
    raise SystemExit(train_main(sys.argv[1:]))
