"""Language-modelling text: Penn Treebank (word and character level) and WikiText-103.

The token stream of each split is cut into non-overlapping windows of ``seq_len`` tokens:
x = s[i L : i L + L], y = s[i L + 1 : i L + L + 1] (next-token targets), both (L,) long. The vocabulary is
built once from the training split (every type, most frequent first, ties alphabetical) and cached with
the streams; a validation/test type absent from train maps to ``<unk>``.

- ``ptb_word``: Mikolov's PTB (10k types, ``<eos>`` at each line end). Offline from the ``treebank``
  package (``treebank.penn[split]``) or from ``<root>/ptb.{train,valid,test}.txt`` when ``root`` is given.
  Metric: perplexity.
- ``ptb_char``: the same text at character level, as in the standard char-PTB files: the words of a line
  joined by ``_`` (the word boundary), one character per token (``<unk>`` is spelt out), and one
  ``<eos>`` token at each line end. From ``<root>/ptb.char.{train,valid,test}.txt`` (space-separated
  characters) when ``root`` is given. Metric: bits per character.
- ``wikitext103``: ``<root>/wikitext-103/wiki.{train,valid,test}.tokens``, words split on whitespace,
  ``<eos>`` at each line end. Metric: perplexity.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from torch.utils.data import Dataset

from lindy._checks import check_positive_int
from lindy.data.base import DataSplits, TaskInfo, register_dataset
from lindy.data.cache import cached_tensors

SPLITS = ("train", "valid", "test")
EOS, UNK = "<eos>", "<unk>"
VERSION = 1


class TokenWindows(Dataset):
    """Windows of a token stream: item i = (s[iL : iL + L], s[iL + 1 : iL + L + 1])."""

    def __init__(self, stream: torch.Tensor, seq_len: int):
        self.stream, self.seq_len = stream, seq_len
        self.n = max(0, (len(stream) - 1) // seq_len)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} windows")
        start = i * self.seq_len
        window = self.stream[start : start + self.seq_len + 1].long()
        return window[:-1], window[1:]


def _line_tokens(text: str, spell=None) -> list[str]:
    """The whitespace-separated fields of each non-empty line (``spell(fields)``'s tokens if given), then
    ``<eos>``."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if fields:
            out.extend(fields if spell is None else spell(fields))
            out.append(EOS)
    return out


def _words(text: str) -> list[str]:
    return _line_tokens(text)


def _ptb_chars(text: str) -> list[str]:
    return _line_tokens(text, "_".join)  # the characters of the words joined by '_'


def _char_file_tokens(text: str) -> list[str]:
    """Standard char-PTB files: characters separated by spaces, '_' between words, one line per sentence."""
    return _line_tokens(text)


def build_vocab(tokens: list[str]) -> list[str]:
    """Every type of ``tokens``, most frequent first (ties alphabetical), with ``<unk>`` present."""
    counts = Counter(tokens)
    counts.setdefault(UNK, 0)
    return sorted(counts, key=lambda t: (-counts[t], t))


def encode(tokens: list[str], vocab: list[str]) -> torch.Tensor:
    index = {t: i for i, t in enumerate(vocab)}
    unk = index[UNK]
    return torch.tensor([index.get(t, unk) for t in tokens], dtype=torch.int32)


def _read(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; expected the split's text file there")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from err


def _sources(name: str, root: str | None) -> tuple[dict[str, callable], list[Path]]:
    """Per split, a function giving its tokens; and the files read (for the cache key)."""
    folder = None if root is None else Path(root).expanduser()
    if name == "wikitext103":
        if root is None:
            raise ValueError("wikitext103 needs data.root: the folder holding wikitext-103/wiki.train.tokens")
        files = {s: folder / "wikitext-103" / f"wiki.{s}.tokens" for s in SPLITS}
        return {s: (lambda p=p: _words(_read(p))) for s, p in files.items()}, list(files.values())
    level = name.split("_")[1]
    if root is None:
        import treebank

        tokenize = _words if level == "word" else _ptb_chars
        return {s: (lambda s=s: tokenize(treebank.penn[s])) for s in SPLITS}, []
    pattern = "ptb.{}.txt" if level == "word" else "ptb.char.{}.txt"
    files = {s: folder / pattern.format(s) for s in SPLITS}
    tokenize = _words if level == "word" else _char_file_tokens
    return {s: (lambda p=p: tokenize(_read(p))) for s, p in files.items()}, list(files.values())


def load_streams(name: str, root: str | None = None, cache_dir: str | None = None):
    """(streams {split: (T,) int32}, vocab list) of ``name``, built once and cached."""
    readers, files = _sources(name, root)
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing; {name} expects {', '.join(p.name for p in files)} there")

    def build():
        train = readers["train"]()
        vocab = build_vocab(train)
        out = {"train": encode(train, vocab)}
        for split in SPLITS[1:]:
            out[split] = encode(readers[split](), vocab)
        out["vocab"] = torch.frombuffer(bytearray("\n".join(vocab).encode("utf-8")), dtype=torch.uint8)
        return out

    where = {"cache_dir": cache_dir, "root": root, "sources": files}
    tensors = cached_tensors(name, {"root": str(root)}, VERSION, build, **where)
    vocab = bytes(tensors["vocab"].tolist()).decode("utf-8").split("\n")
    return {s: tensors[s] for s in SPLITS}, vocab


def _builder(name: str, metric: str, default_len: int):
    def build(
        root: str | None = None, seq_len: int = default_len, cache_dir: str | None = None
    ) -> DataSplits:
        check_positive_int("seq_len", seq_len)
        streams, vocab = load_streams(name, root, cache_dir)
        info = TaskInfo(
            d_input=len(vocab),
            d_output=len(vocab),
            length=seq_len,
            task="language_modeling",
            metric=metric,
            tokens=True,
            source="real",
        )
        return DataSplits(*(TokenWindows(streams[s], seq_len) for s in SPLITS), info)

    build.__doc__ = f"{name}: windows of {default_len} tokens by default (see the module docstring)."
    return register_dataset(name)(build)


ptb_word = _builder("ptb_word", "perplexity", 70)
ptb_char = _builder("ptb_char", "bpc", 150)
wikitext103 = _builder("wikitext103", "perplexity", 256)
