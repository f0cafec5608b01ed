"""Layer speed table (see lindy/bench/speed.py): `python benchmarks/speed.py --layers all`."""

from lindy.bench.speed import main

if __name__ == "__main__":
    raise SystemExit(main())
