"""ListOps (Nangia & Bowman 2018) in Long Range Arena's form (Tay et al. 2020): evaluate a nested expression.

An expression is a tree of operators over digits 0-9; the label is its value (10 classes):

- ``[MAX a b ...]`` = max, ``[MIN ...]`` = min, ``[MED ...]`` = floor(median) (for an even count, the floor
  of the mean of the two middle values, i.e. ``int(np.median(.))`` as LRA computes it), ``[SM ...]`` = sum
  mod 10.

LRA writes a tree with a pair of parentheses around every partial application, e.g. ``[MAX 2 9 ]`` is
``( ( ( [MAX 2 ) 9 ) ] )``. Its input pipeline drops the parentheses (and renames ``]``), so the tokens are
the operators, digits and ``]`` alone: ``[MAX 2 9 ]`` -> 4 tokens. lindy's fixed vocabulary (``VOCAB``,
16 ids): 0 = padding, 1-10 = digits 0-9, 11-14 = ``[MIN [MAX [MED [SM``, 15 = ``]``. x is (max_length,) long
tokens padded with 0 at the end; y is the value () long.

- ``listops``: LRA's release files ``<root>/listops/basic_{train,val,test}.tsv`` (or the release's own
  folder name ``<root>/listops-1000/``; tab-separated, header row ``Source<TAB>Target``). Sequences longer
  than ``max_length`` tokens are truncated to their first ``max_length`` tokens (as LRA's pipeline does);
  the release's sequences are all shorter than 2000.
- ``listops_generated``: a regenerated set from LRA's distribution (its ``lra_benchmarks/data/listops.py``
  rules): a node at depth d < max_depth is an operator with probability 0.25 (else a digit), operators take
  2..max_args arguments, the root is at depth 1; a tree is kept when min_length < tokens < max_length and it
  is not a duplicate of one already kept. Not LRA's own files: source "regenerated".
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import torch

from lindy._checks import check_count, check_positive_int
from lindy.data.base import (
    SPLITS,
    DataSplits,
    StoredSequences,
    check_bool,
    check_seed,
    classification_info,
    register_dataset,
    require_files,
    split_sizes,
)
from lindy.data.cache import cached_splits

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
VOCAB = ("<pad>", *(str(d) for d in range(10)), *OPERATORS, END)
TOKEN_ID = {tok: i for i, tok in enumerate(VOCAB)}
PAD = 0
VALUE_P = 0.25  # LRA: a node below max_depth is an operator with probability 1 - 0.75
FOLDERS = ("listops", "listops-1000")  # lindy's name, then the release's own folder name
VERSION = 1  # bump when the tokens or the generator change


def apply_operator(op: str, values: list[int]) -> int:
    """The value of ``op`` applied to the digits ``values``: min, max, floor(median), or sum mod 10."""
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[MED":
        s = sorted(values)
        n = len(s)
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2
    if op == "[SM":
        return sum(values) % 10
    raise ValueError(f"unknown ListOps operator {op!r}; expected one of {OPERATORS}")


class _TooLong(Exception):
    pass


def _grow(
    rng: random.Random, depth: int, max_depth: int, max_args: int, out: list[str], state: list[int]
) -> int:
    """Append one random subtree's LRA tokens (with parentheses) to ``out``; return its value.

    ``state = [count, limit]``: count of non-parenthesis tokens so far; reaching ``limit`` aborts (such a tree
    would be rejected anyway, so aborting early does not change the distribution of kept trees)."""
    if depth >= max_depth or rng.random() > VALUE_P:
        value = rng.randrange(10)
        out.append(str(value))
        state[0] += 1
        if state[0] >= state[1]:
            raise _TooLong
        return value
    n_args = rng.randint(2, max_args)
    op = rng.choice(OPERATORS)
    out.extend(["("] * (n_args + 1))
    out.append(op)
    state[0] += 1
    values = []
    for _ in range(n_args):
        values.append(_grow(rng, depth + 1, max_depth, max_args, out, state))
        out.append(")")
    out.append(END)
    out.append(")")
    state[0] += 1
    if state[0] >= state[1]:
        raise _TooLong
    return apply_operator(op, values)


def random_expression(
    rng: random.Random, max_depth: int = 10, max_args: int = 10, min_length: int = 500, max_length: int = 2000
) -> tuple[str, int, int]:
    """One tree with ``min_length < tokens < max_length`` (rejection sampling, LRA's rule).

    Returns (LRA source string with parentheses, value 0-9, token count without parentheses)."""
    while True:
        out: list[str] = []
        state = [0, max_length]
        try:
            value = _grow(rng, 1, max_depth, max_args, out, state)
        except _TooLong:
            continue
        if state[0] > min_length:
            return " ".join(out), value, state[0]


def generate_listops(
    n: int,
    seed: int | str,
    max_depth: int = 10,
    max_args: int = 10,
    min_length: int = 500,
    max_length: int = 2000,
    exclude: set[str] | None = None,
) -> list[tuple[str, int]]:
    """``n`` distinct (source, value) pairs from ``random.Random(seed)``, none of them in ``exclude``.

    Strings already in ``exclude`` are skipped and every kept one is added to it, so calls sharing one set
    give disjoint splits."""
    _check_generator_options(n, max_depth, max_args, min_length, max_length)
    rng = random.Random(seed)
    seen = exclude if exclude is not None else set()
    rows = []
    while len(rows) < n:
        source, value, _ = random_expression(rng, max_depth, max_args, min_length, max_length)
        if source not in seen:
            seen.add(source)
            rows.append((source, value))
    return rows


def _check_generator_options(n, max_depth, max_args, min_length, max_length):
    for name, value, least in (("n", n, 0), ("max_depth", max_depth, 2), ("max_args", max_args, 2)):
        check_count(name, value, minimum=least)
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (min_length, max_length))
    if not (ints and 0 <= min_length < max_length - 1):
        raise ValueError(
            f"need integers 0 <= min_length < max_length - 1 (kept: min_length < tokens < max_length), "
            f"got min_length={min_length!r}, max_length={max_length!r}"
        )
    largest = 1  # tokens of the fullest tree: a leaf at max_depth, 2 + max_args subtrees above it
    for _ in range(max_depth - 1):
        largest = 2 + max_args * largest
    if largest <= min_length:
        raise ValueError(
            f"no tree with max_depth={max_depth}, max_args={max_args} has more than min_length={min_length} "
            f"tokens (the largest has {largest})"
        )


def tokenize(source: str, where: str = "ListOps source") -> list[int]:
    """Token ids (``VOCAB``) of an LRA source string; parentheses dropped, ``]`` (or LRA's ``X``) kept."""
    ids = []
    for tok in source.split():
        if tok in ("(", ")"):
            continue
        if tok == "X":
            tok = END
        tid = TOKEN_ID.get(tok)
        if tid is None or tid == PAD:
            raise ValueError(f"{where}: unknown ListOps token {tok!r}; expected one of {VOCAB[1:]} or ( )")
        ids.append(tid)
    return ids


def encode(sources: list[str], max_length: int, where: str = "ListOps") -> torch.Tensor:
    """(n, max_length) uint8 token ids, truncated to the first ``max_length`` tokens and padded with 0."""
    out = np.zeros((len(sources), max_length), dtype=np.uint8)
    for i, source in enumerate(sources):
        ids = tokenize(source, f"{where} row {i + 1}")[:max_length]
        out[i, : len(ids)] = ids
    return torch.from_numpy(out)


def write_listops_tsv(path: str | Path, rows: list[tuple[str, int]]) -> Path:
    """Write (source, value) rows in LRA's file format: a ``Source<TAB>Target`` header, one row per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["Source", "Target"])
        writer.writerows(rows)
    return path


def read_listops_tsv(path: str | Path) -> tuple[list[str], list[int]]:
    """Sources and targets (0-9) of an LRA ListOps TSV (header ``Source<TAB>Target``)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter="\t")
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["Source", "Target"]:
                raise ValueError(f"{path}: expected the header row 'Source<TAB>Target', got {header!r}")
            sources, targets = [], []
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < 2:
                    raise ValueError(f"{path} line {line}: expected 2 tab-separated columns, got {row!r}")
                try:
                    target = int(row[1])
                except ValueError:
                    raise ValueError(
                        f"{path} line {line}: Target must be an integer 0-9, got {row[1]!r}"
                    ) from None
                if not 0 <= target <= 9:
                    raise ValueError(f"{path} line {line}: Target must be 0-9, got {target}")
                sources.append(row[0])
                targets.append(target)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err})") from None
    if not sources:
        raise ValueError(f"{path}: no examples after the header row")
    return sources, targets


class TokenSequences(StoredSequences):
    """Items ``(tokens[i].long() (L,), labels[i] ())`` from compact (n, L) integer storage."""

    @property
    def tokens(self) -> torch.Tensor:
        return self.data


def _splits(tensors: dict[str, dict[str, torch.Tensor]], max_length: int, source: str) -> DataSplits:
    sets = [TokenSequences(tensors[s]["x"], tensors[s]["y"]) for s in SPLITS]
    return DataSplits(*sets, classification_info(len(VOCAB), 10, max_length, tokens=True, source=source))


@register_dataset("listops")
def listops(root=None, max_length: int = 2000, cache: bool = True) -> DataSplits:
    """LRA ListOps from ``<root>/listops/basic_{train,val,test}.tsv``: x (max_length,) tokens, y 0-9."""
    check_positive_int("max_length", max_length)
    check_bool("cache", cache)
    if root is None:
        raise ValueError(
            "data.root is not set: point it at the folder holding listops/basic_train.tsv "
            "(LRA's lra_release/, whose folder listops-1000/ is also accepted)"
        )
    root = Path(root).expanduser()
    folder = next((root / d for d in FOLDERS if (root / d / "basic_train.tsv").is_file()), root / FOLDERS[0])
    paths = {s: folder / f"basic_{s}.tsv" for s in SPLITS}
    layout = f"{root}/{{{','.join(FOLDERS)}}}/basic_{{train,val,test}}.tsv (LRA release layout)"
    require_files("ListOps", layout, paths.values())

    def build(split: str) -> dict[str, torch.Tensor]:
        sources, targets = read_listops_tsv(paths[split])
        return {
            "x": encode(sources, max_length, str(paths[split])),
            "y": torch.tensor(targets, dtype=torch.int64),
        }

    options = {"max_length": max_length}
    where = {"root": root, "sources": paths.values(), "enabled": cache}
    return _splits(cached_splits("listops", options, VERSION, build, **where), max_length, "real")


@register_dataset("listops_generated")
def listops_generated(
    n_train: int = 96000,
    n_val: int = 2000,
    n_test: int = 2000,
    seed: int = 0,
    max_depth: int = 10,
    max_args: int = 10,
    min_length: int = 500,
    max_length: int = 2000,
    cache: bool = True,
) -> DataSplits:
    """ListOps regenerated from LRA's distribution (defaults: LRA's 96k/2k/2k sizes, lengths 500-2000).

    Splits are disjoint (no expression twice); the test set comes from stream ``"<seed>/test"``, then the
    validation set from ``"<seed>/val"``, then the training set from ``"<seed>/train"``, so the test and
    validation sets do not depend on ``n_train``. x: (max_length,) tokens padded with 0."""
    sizes = split_sizes(n_train, n_val, n_test)
    _check_generator_options(1, max_depth, max_args, min_length, max_length)
    check_seed("seed", seed)  # it names the streams "<seed>/<split>": 1 and 1.0 must not differ silently
    check_bool("cache", cache)
    options = dict(
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        seed=seed,
        max_depth=max_depth,
        max_args=max_args,
        min_length=min_length,
        max_length=max_length,
    )
    seen: set[str] = set()  # shared by the splits, which are drawn test first

    def build(split: str) -> dict[str, torch.Tensor]:
        rows = generate_listops(
            sizes[split], f"{seed}/{split}", max_depth, max_args, min_length, max_length, seen
        )
        x = encode([r[0] for r in rows], max_length, f"generated {split}")
        return {"x": x, "y": torch.tensor([r[1] for r in rows], dtype=torch.int64)}

    order = ("test", "val", "train")
    tensors = cached_splits("listops_generated", options, VERSION, build, order, enabled=cache)
    return _splits(tensors, max_length, "regenerated")
