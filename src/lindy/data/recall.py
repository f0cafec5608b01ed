"""Token memory tasks: copying, selective copying, induction heads and associative recall.

Every task draws whole batches from a ``torch.Generator`` (``*_batch(n, ..., generator)`` returns the token
inputs x (n, L) long and the answers), and its registered builder makes fixed train / val / test sets from
the streams ``(seed, "train" | "val" | "test")`` (``lindy.data.streams.stream_seed``). With ``fresh=True``
the train split is instead ``n_train`` on-demand items, item i from the stream ``(seed, "fresh", i)``.
Inputs are tokens (``TaskInfo.tokens``, ``d_input`` = vocabulary size).

================== ============================================ ==================== =====================
name               x (L,) tokens                                y                    task, metric
================== ============================================ ==================== =====================
copying            K symbols, delay - 1 blanks, delimiter,      (L,): blank, then    language_modeling,
                   K blanks;  L = delay + 2K                    the K symbols        perplexity
selective_copying  K symbols at random places among noise, then (L,): -100, then     language_modeling,
                   K markers;  L = length                       the K symbols        perplexity
induction_heads    random tokens with one trigger t followed by () the token after   classification,
                   the answer a, and t again at the end         the first trigger    accuracy
associative_recall k1 v1 k2 v2 ... kN vN q  (distinct keys,     () the value bound   classification,
                   q one of them);  L = 2N + 1                  to q                 accuracy
================== ============================================ ==================== =====================

The copying targets are per step and the model is causal, so the answer positions come after the
delimiter/markers: output t is scored against y_t. Positions holding -100 are not scored (the
``ignore_index`` of ``torch.nn.functional.cross_entropy``). For the classification tasks read the model
out at the last step (``model.pooling=last``): the answer is only determined once the last token is seen.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from lindy._checks import check_bool, check_choice, check_count
from lindy.data.base import DataSplits, StoredSequences, TaskInfo, make_splits, register_dataset, split_sizes
from lindy.data.streams import FreshDataset, stream_generator

IGNORE = -100  # target value that the loss skips (cross_entropy's default ignore_index)
BLANK = 0
CHUNK = 1024  # rows generated at a time for the fixed sets (bounds the temporary memory)


# --------------------------------------------------------------------------------------------- generators
def copying_batch(
    n: int, n_symbols: int, n_memorize: int, delay: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The copying memory task (Arjovsky et al. 2016; Hochreiter & Schmidhuber 1997).

    Vocabulary: 0 blank, 1..n_symbols the symbols, n_symbols + 1 the delimiter. With K = n_memorize and
    s_1..s_K ~ U{1..n_symbols}: x = [s_1..s_K, 0 x (delay - 1), delimiter, 0 x K] of length L = delay + 2K;
    the target sequence is [0 x (delay + K), s_1..s_K]. Returns x (n, L) long and the symbols s (n, K).
    Arjovsky's form is K = 10, n_symbols = 8; the memoryless baseline (blank, then uniform symbols) has
    cross-entropy K log(n_symbols) / L per step.
    """
    check_count("n_symbols", n_symbols)
    check_count("n_memorize", n_memorize)
    check_count("delay", delay)
    k = n_memorize
    symbols = torch.randint(1, n_symbols + 1, (n, k), generator=generator)
    x = torch.zeros(n, delay + 2 * k, dtype=torch.long)
    x[:, :k] = symbols
    x[:, k + delay - 1] = n_symbols + 1
    return x, symbols


def selective_copying_batch(
    n: int, length: int, n_memorize: int, vocab: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective copying (Gu & Dao 2023, Mamba; the "variable" copying of the S4 code base).

    Vocabulary: 0 noise, 1..vocab-2 data tokens, vocab-1 the marker. K = n_memorize data tokens
    d_j ~ U{1..vocab-2} sit at K distinct random positions (in order) among the first length - K steps,
    all other of those steps are noise; the last K steps are markers, at which the model outputs
    d_1..d_K. Returns x (n, length) long and d (n, K).
    """
    check_count("n_memorize", n_memorize)
    check_count("length", length)
    check_count("vocab", vocab)
    if vocab < 3:
        raise ValueError(f"vocab must be >= 3 (noise, at least one data token, marker), got {vocab}")
    k = n_memorize
    if length < 2 * k:
        raise ValueError(f"length must be >= 2 * n_memorize = {2 * k} (tokens, then markers), got {length}")
    data = torch.randint(1, vocab - 1, (n, k), generator=generator)
    span = length - k
    positions = torch.rand(n, span, generator=generator).argsort(dim=1)[:, :k].sort(dim=1).values
    x = torch.zeros(n, length, dtype=torch.long)
    x.scatter_(1, positions, data)
    x[:, span:] = vocab - 1
    return x, data


def induction_heads_batch(
    n: int, length: int, vocab: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Induction heads (Olsson et al. 2022; H3 and Mamba's synthetic form).

    Vocabulary: 0..vocab-2 ordinary tokens, vocab-1 the trigger. x holds uniform ordinary tokens except
    x_p = trigger, x_{p+1} = a (the answer, uniform ordinary) for one p ~ U{0..length-3}, and
    x_{length-1} = trigger: the trigger occurs exactly twice. Returns x (n, length) long and a (n,).
    """
    check_count("length", length)
    check_count("vocab", vocab)
    if length < 3:
        raise ValueError(f"length must be >= 3 (trigger, answer, final trigger), got {length}")
    if vocab < 2:
        raise ValueError(f"vocab must be >= 2 (one ordinary token and the trigger), got {vocab}")
    trigger = vocab - 1
    x = torch.randint(0, trigger, (n, length), generator=generator)
    p = torch.randint(0, length - 2, (n,), generator=generator)
    answer = torch.randint(0, trigger, (n,), generator=generator)
    rows = torch.arange(n)
    x[rows, p] = trigger
    x[rows, p + 1] = answer
    x[:, -1] = trigger
    return x, answer


def associative_recall_batch(
    n: int, n_pairs: int, n_keys: int, n_values: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Associative recall (Ba et al. 2016; H3, Zoology with one query).

    Keys are tokens 0..n_keys-1, values n_keys..n_keys+n_values-1. N = n_pairs distinct keys k_j, each
    bound to a uniform value v_j; x = [k_1, v_1, ..., k_N, v_N, q] with q = k_j for a uniform j, length
    2N + 1; the answer is v_j. Chance accuracy 1 / n_values. Returns x (n, 2N + 1) long and v_j (n,).
    """
    check_count("n_pairs", n_pairs)
    check_count("n_values", n_values)
    check_count("n_keys", n_keys)
    if n_keys < n_pairs:
        raise ValueError(f"n_keys must be >= n_pairs = {n_pairs} (the keys of a sequence are distinct)")
    keys = torch.rand(n, n_keys, generator=generator).argsort(dim=1)[:, :n_pairs]
    values = torch.randint(n_keys, n_keys + n_values, (n, n_pairs), generator=generator)
    j = torch.randint(0, n_pairs, (n,), generator=generator)
    rows = torch.arange(n)
    x = torch.empty(n, 2 * n_pairs + 1, dtype=torch.long)
    x[:, 0:-1:2] = keys
    x[:, 1:-1:2] = values
    x[:, -1] = keys[rows, j]
    return x, values[rows, j]


# --------------------------------------------------------------------------------------------- data sets
def _compact_dtype(vocab: int) -> torch.dtype:
    return torch.uint8 if vocab <= 256 else torch.int32


def expand_targets(x: torch.Tensor, answers: torch.Tensor, fill: int | None) -> torch.Tensor:
    """Targets from answers: ``fill`` None -> the answers themselves (class indices, (n,));
    else (n, L) of ``fill`` with the last K steps holding answers (n, K)."""
    if fill is None:
        return answers.long()
    y = torch.full(x.shape, fill, dtype=torch.long)
    y[:, -answers.shape[1] :] = answers
    return y


class TokenDataset(StoredSequences):
    """Fixed token sequences stored compactly: x (n, L) in uint8/int32 and the answers only.

    Item i: (x_i (L,) long, y_i) with y_i = answers_i (() long) when ``fill`` is None, else the (L,) long
    sequence of ``fill`` ending in answers_i (K,).
    """

    def __init__(self, x: torch.Tensor, answers: torch.Tensor, fill: int | None):
        super().__init__(x, answers)
        self.fill = fill

    @property
    def x(self) -> torch.Tensor:
        return self.data

    @property
    def answers(self) -> torch.Tensor:
        return self.labels

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.input(i)
        return x, expand_targets(x[None], self.labels[i : i + 1], self.fill)[0]


class TaskMaker:
    """``make(n, generator) -> (x (n, L) long, y)`` of one task with fixed options (picklable, for
    ``FreshDataset``): ``batch(n, **options, generator=generator)``, answers expanded by ``fill``."""

    def __init__(self, batch: Callable, fill: int | None, **options):
        self.batch, self.fill, self.options = batch, fill, options
        self.answers(1, torch.Generator().manual_seed(0))  # option errors now, before anything uses them

    def answers(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch(n, **self.options, generator=generator)

    def __call__(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, answers = self.answers(n, generator)
        return x, expand_targets(x, answers, self.fill)


def token_splits(
    maker: TaskMaker, info: TaskInfo, n_train, n_val, n_test, seed: int, fresh: bool
) -> DataSplits:
    """Fixed (or, with ``fresh``, on-demand train) splits of ``maker``'s task (see the module docstring)."""
    check_bool("fresh", fresh)
    maker.answers(1, torch.Generator().manual_seed(0))  # option errors now, before any split is built

    def make(split: str, n: int) -> Dataset:
        if split == "train" and fresh:
            stream_generator(seed, "fresh")  # validates seed
            return FreshDataset(n, seed, maker)
        g = stream_generator(seed, split)
        xs, answers = [], []
        for start in range(0, n, CHUNK):
            x, a = maker.answers(min(CHUNK, n - start), g)
            xs.append(x.to(_compact_dtype(info.d_input)))
            answers.append(a)
        return TokenDataset(torch.cat(xs), torch.cat(answers), maker.fill)

    return make_splits(split_sizes(n_train, n_val, n_test), make, info)


@register_dataset("copying")
def copying(
    n_symbols: int = 8,
    n_memorize: int = 10,
    delay: int = 1000,
    target: str = "blank",
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
    fresh: bool = False,
):
    """The copying task (``copying_batch``), length delay + 2 n_memorize, vocabulary n_symbols + 2.

    ``target``: "blank" (the standard form, Arjovsky et al.: every step is scored, the target is the blank
    token 0 before the answer) or "ignore" (only the K answer steps are scored; the others hold -100).
    """
    check_choice("target", target, ("blank", "ignore"))
    fill = BLANK if target == "blank" else IGNORE
    maker = TaskMaker(copying_batch, fill, n_symbols=n_symbols, n_memorize=n_memorize, delay=delay)
    vocab = n_symbols + 2
    info = TaskInfo(vocab, vocab, delay + 2 * n_memorize, "language_modeling", "perplexity", tokens=True)
    return token_splits(maker, info, n_train, n_val, n_test, seed, fresh)


@register_dataset("selective_copying")
def selective_copying(
    length: int = 4096,
    n_memorize: int = 16,
    vocab: int = 16,
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
    fresh: bool = False,
):
    """Selective copying (``selective_copying_batch``; Mamba's setting: length 4096, 16 tokens, vocab 16);
    only the last n_memorize steps are scored."""
    maker = TaskMaker(selective_copying_batch, IGNORE, length=length, n_memorize=n_memorize, vocab=vocab)
    info = TaskInfo(vocab, vocab, length, "language_modeling", "perplexity", tokens=True)
    return token_splits(maker, info, n_train, n_val, n_test, seed, fresh)


@register_dataset("induction_heads")
def induction_heads(
    length: int = 256,
    vocab: int = 16,
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
    fresh: bool = False,
):
    """Induction heads (``induction_heads_batch``; Mamba's training setting: length 256, vocab 16)."""
    maker = TaskMaker(induction_heads_batch, None, length=length, vocab=vocab)
    info = TaskInfo(vocab, vocab, length, "classification", "accuracy", tokens=True)
    return token_splits(maker, info, n_train, n_val, n_test, seed, fresh)


@register_dataset("associative_recall")
def associative_recall(
    n_pairs: int = 32,
    n_keys: int = 64,
    n_values: int = 64,
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
    fresh: bool = False,
):
    """Associative recall (``associative_recall_batch``), length 2 n_pairs + 1, vocab n_keys + n_values."""
    maker = TaskMaker(associative_recall_batch, None, n_pairs=n_pairs, n_keys=n_keys, n_values=n_values)
    vocab = n_keys + n_values
    info = TaskInfo(vocab, vocab, 2 * n_pairs + 1, "classification", "accuracy", tokens=True)
    return token_splits(maker, info, n_train, n_val, n_test, seed, fresh)
