"""Long Range Arena's byte-level text tasks: IMDB sentiment (``imdb``) and AAN document matching (``aan``).

Tokens are the bytes of the UTF-8 text, numbered as LRA's ``ByteTextEncoder`` numbers them: 0 = padding,
1 = end of sequence (reserved, not emitted), byte b -> b + 2; vocabulary 258 (``VOCAB_SIZE``). A text
longer than ``max_length`` bytes keeps its first ``max_length`` bytes (LRA's truncation); shorter ones are
padded with 0 at the end. y is the class () long.

- ``imdb``: ``<root>/aclImdb/{train,test}/{pos,neg}/*.txt`` (the Stanford release; ``unsup/`` is ignored),
  label 1 = pos, 0 = neg, each file's raw bytes, files in name order (neg before pos). x (max_length,)
  tokens, default 4096 as in LRA. Validation: a ``val_fraction`` (default 0.1) of the 25,000 training
  reviews drawn by a permutation from ``split_seed`` is held out (train = the rest); the test set is the
  25,000 test reviews. ``val_fraction=0`` instead uses the test set as validation, as LRA and S4 do.
- ``aan``: LRA's release ``<root>/tsv_data/new_aan_pairs.{train,eval,test}.tsv`` (train / val / test),
  tab-separated without a header, columns ``label, id1, id2, text1, text2`` (LRA's matching pipeline and
  S4 read the same order; no quoting), label 1 when the two papers are linked by a citation. Each text is
  cut/padded to ``max_length`` = 4000 tokens. lindy's SequenceModel takes one sequence per example, so the
  default ``layout="concat"`` gives x (2 * max_length,) = [text1 tokens padded to 4000, text2 tokens padded
  to 4000]: document 2 always starts at step 4000, a single-tower model reads both. ``layout="pair"``
  gives x (2, max_length) for a two-tower model (encode each row, combine [u, v, u*v, u-v] as LRA does);
  lindy's backbone cannot take that shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lindy._checks import check_choice, check_positive_int
from lindy.data.base import (
    DataSplits,
    StoredSequences,
    check_bool,
    check_fraction,
    check_seed,
    classification_info,
    register_dataset,
    require_files,
)
from lindy.data.cache import cached_splits

PAD, EOS, OFFSET = 0, 1, 2
VOCAB_SIZE = 256 + OFFSET
VERSION = 1  # bump when the tokens change
AAN_FILES = {"train": "train", "val": "eval", "test": "test"}
LAYOUTS = ("concat", "pair")


def byte_tokens(data: bytes, max_length: int) -> np.ndarray:
    """(max_length,) int64: the first max_length bytes b as b + 2, then padding 0."""
    out = np.zeros(max_length, dtype=np.int64)
    head = np.frombuffer(data[:max_length], dtype=np.uint8)
    out[: len(head)] = head.astype(np.int64) + OFFSET
    return out


class ByteSequences(StoredSequences):
    """Byte-level items from compact storage: ``data`` (n, ..., L) uint8 bytes and ``lengths`` (n, ...) bytes
    used; item i is ``(tokens, labels[i])`` with tokens = data + 2 where position < length, else 0, of shape
    (..., L), flattened to (prod(...) * L,) when ``flatten``."""

    def __init__(
        self, data: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, flatten: bool = False
    ):
        if data.dtype != torch.uint8 or data.shape[:-1] != lengths.shape or len(labels) != len(data):
            raise ValueError(
                f"need uint8 data (n, ..., L), lengths (n, ...) and n labels, got {tuple(data.shape)} "
                f"{data.dtype}, {tuple(lengths.shape)}, {tuple(labels.shape)}"
            )
        super().__init__(data, labels)
        self.lengths, self.flatten = lengths, flatten
        self.positions = torch.arange(data.shape[-1])

    def input(self, i):
        used = self.positions < self.lengths[i].unsqueeze(-1)
        x = torch.where(used, self.data[i].long() + OFFSET, PAD)
        return x.reshape(-1) if self.flatten else x


def _byte_sequences(tensors: dict[str, torch.Tensor], flatten: bool = False) -> ByteSequences:
    return ByteSequences(tensors["data"], tensors["lengths"], tensors["y"], flatten=flatten)


def _pack(texts: list[bytes], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, max_length) uint8 zero-padded first bytes and (n,) int32 lengths."""
    data = np.zeros((len(texts), max_length), dtype=np.uint8)
    lengths = np.zeros(len(texts), dtype=np.int32)
    for i, text in enumerate(texts):
        head = text[:max_length]
        data[i, : len(head)] = np.frombuffer(head, dtype=np.uint8)
        lengths[i] = len(head)
    return torch.from_numpy(data), torch.from_numpy(lengths)


# ------------------------------------------------------------------------------------------------- IMDB


def imdb_files(root: str | Path, split: str) -> tuple[list[Path], list[int]]:
    """The review files of ``split`` ("train" | "test") under ``<root>/aclImdb`` and their labels."""
    folder = Path(root).expanduser() / "aclImdb" / split
    files, labels = [], []
    for label, name in ((0, "neg"), (1, "pos")):
        sub = folder / name
        found = sorted(sub.glob("*.txt")) if sub.is_dir() else []
        if not found:
            raise FileNotFoundError(
                f"IMDB reviews not found: expected {sub}/*.txt (layout "
                "<root>/aclImdb/{train,test}/{pos,neg}/*.txt of aclImdb_v1.tar.gz)"
            )
        files += found
        labels += [label] * len(found)
    return files, labels


@register_dataset("imdb")
def imdb(
    root=None, max_length: int = 4096, val_fraction: float = 0.1, split_seed: int = 0, cache: bool = True
) -> DataSplits:
    """LRA's byte-level IMDB from ``<root>/aclImdb``: x (max_length,) byte tokens (vocab 258), y 0/1."""
    check_positive_int("max_length", max_length)
    check_fraction("val_fraction", val_fraction, zero=True)
    check_seed("split_seed", split_seed)
    check_bool("cache", cache)
    if root is None:
        raise ValueError(
            "data.root is not set: point it at the folder holding aclImdb/ "
            "(e.g. data.root=/data for /data/aclImdb/train/pos/0_9.txt)"
        )
    index = {split: imdb_files(root, split) for split in ("train", "test")}

    def build(split: str) -> dict[str, torch.Tensor]:
        files, labels = index[split]
        texts = []
        for path in files:
            try:
                texts.append(path.read_bytes())
            except OSError as err:
                raise ValueError(f"{path}: cannot read review ({err})") from None
        data, lengths = _pack(texts, max_length)
        return {"data": data, "lengths": lengths, "y": torch.tensor(labels, dtype=torch.int64)}

    sources = [p for files, _ in index.values() for p in files]
    where = {"root": root, "sources": sources, "enabled": cache}
    tensors = cached_splits("imdb", {"max_length": max_length}, VERSION, build, index, **where)
    data, lengths, ys = (tensors["train"][k] for k in ("data", "lengths", "y"))
    test = _byte_sequences(tensors["test"])
    n_val = max(1, int(round(val_fraction * len(ys)))) if val_fraction > 0 else 0
    if n_val == 0:
        train, val = ByteSequences(data, lengths, ys), test
    else:
        order = torch.from_numpy(np.random.default_rng(split_seed).permutation(len(ys)))
        t, v = order[n_val:], order[:n_val]
        train = ByteSequences(data[t], lengths[t], ys[t])
        val = ByteSequences(data[v], lengths[v], ys[v])
    return DataSplits(train, val, test, classification_info(VOCAB_SIZE, 2, max_length, tokens=True))


# -------------------------------------------------------------------------------------------------- AAN


def read_aan_tsv(path: Path, max_length: int | None = None) -> tuple[list[bytes], list[bytes], list[int]]:
    """text1 bytes, text2 bytes (each cut to its first ``max_length`` bytes if given) and labels (0/1) of one
    LRA AAN file: lines ``label<TAB>id1<TAB>id2<TAB>text1<TAB>text2``, no header, no quoting."""
    first, second, labels = [], [], []
    try:
        with open(path, "rb") as f:
            for line_no, line in enumerate(f, start=1):
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                fields = line.split(b"\t")
                if len(fields) != 5:
                    raise ValueError(
                        f"{path} line {line_no}: expected 5 tab-separated columns (label, id1, id2, text1, "
                        f"text2), got {len(fields)}"
                    )
                try:
                    label = float(fields[0])
                except ValueError:
                    label = None
                if label not in (0.0, 1.0):
                    raise ValueError(f"{path} line {line_no}: label must be 0 or 1, got {fields[0][:40]!r}")
                labels.append(int(label))
                first.append(fields[3][:max_length])
                second.append(fields[4][:max_length])
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err})") from None
    if not labels:
        raise ValueError(f"{path}: no examples")
    return first, second, labels


@register_dataset("aan")
def aan(root=None, max_length: int = 4000, layout: str = "concat", cache: bool = True) -> DataSplits:
    """LRA's AAN retrieval from ``<root>/tsv_data``: x (2 * max_length,) ("concat") or (2, max_length)."""
    check_positive_int("max_length", max_length)
    check_choice("layout", layout, LAYOUTS)
    check_bool("cache", cache)
    if root is None:
        raise ValueError(
            "data.root is not set: point it at the folder holding tsv_data/ (LRA's lra_release/), "
            "e.g. data.root=/data/lra_release for /data/lra_release/tsv_data/new_aan_pairs.train.tsv"
        )
    folder = Path(root).expanduser() / "tsv_data"
    paths = {s: folder / f"new_aan_pairs.{name}.tsv" for s, name in AAN_FILES.items()}
    expected = f"{folder}/new_aan_pairs.{{train,eval,test}}.tsv (LRA release layout)"
    require_files("AAN", expected, paths.values())

    def build(split: str) -> dict[str, torch.Tensor]:
        first, second, labels = read_aan_tsv(paths[split], max_length)
        d1, n1 = _pack(first, max_length)
        d2, n2 = _pack(second, max_length)
        return {
            "data": torch.stack([d1, d2], 1),  # (n, 2, max_length)
            "lengths": torch.stack([n1, n2], 1),
            "y": torch.tensor(labels, dtype=torch.int64),
        }

    where = {"root": root, "sources": paths.values(), "enabled": cache}
    tensors = cached_splits("aan", {"max_length": max_length}, VERSION, build, **where)
    flat = layout == "concat"
    sets = [_byte_sequences(tensors[s], flatten=flat) for s in AAN_FILES]
    length = 2 * max_length if flat else max_length
    return DataSplits(*sets, classification_info(VOCAB_SIZE, 2, length, tokens=True))
