"""Language-modelling text: PTB offline (treebank package), user files, windows, vocabulary cache."""

import pytest
import torch

from lindy.data import build_data
from lindy.data.text import EOS, UNK, build_vocab, load_streams


def test_ptb_word_offline_sizes_and_shift(tmp_path):
    data = build_data("ptb_word", cache_dir=str(tmp_path))
    assert data.info.d_input == data.info.d_output == 10000 and data.info.metric == "perplexity"
    x, y = data.train[3]
    assert x.shape == y.shape == (70,) and x.dtype == torch.long
    assert torch.equal(x[1:], y[:-1])  # next-token targets
    streams, vocab = load_streams("ptb_word", cache_dir=str(tmp_path))
    assert len(streams["train"]) == 929589  # Mikolov's PTB: 887,521 words + 42,068 line ends
    assert len(data.train) == (929589 - 1) // 70


def test_ptb_char_offline_is_the_standard_char_set(tmp_path):
    data = build_data("ptb_char", cache_dir=str(tmp_path))
    streams, vocab = load_streams("ptb_char", cache_dir=str(tmp_path))
    assert data.info.metric == "bpc" and len(vocab) == 51  # 50 symbols of char-PTB + <unk> (unused)
    assert "_" in vocab and " " not in vocab and EOS in vocab
    decoded = "".join(vocab[i] if vocab[i] != EOS else "\n" for i in streams["valid"][:200].tolist())
    assert "_" in decoded and "\n" in decoded


def write_ptb(root, level="word"):
    lines = {"train": "a b c\nb c\n", "valid": "c a\nd\n", "test": "a\n"}
    for split, text in lines.items():
        if level == "word":
            (root / f"ptb.{split}.txt").write_text(text)
        else:
            chars = "\n".join(" ".join("_".join(line.split())) for line in text.splitlines())
            (root / f"ptb.char.{split}.txt").write_text(chars + "\n")


def test_user_word_files_and_unknown_words(tmp_path):
    write_ptb(tmp_path)
    streams, vocab = load_streams("ptb_word", root=str(tmp_path))
    assert vocab[:3] == [EOS, "b", "c"] and UNK in vocab  # counts 2, 2, 2: ties alphabetical
    valid = [vocab[i] for i in streams["valid"].tolist()]
    assert valid == ["c", "a", EOS, UNK, EOS]  # "d" never appears in train


def test_user_char_files(tmp_path):
    write_ptb(tmp_path, "char")
    streams, vocab = load_streams("ptb_char", root=str(tmp_path))
    assert [vocab[i] for i in streams["train"][:6].tolist()] == ["a", "_", "b", "_", "c", EOS]


def test_vocabulary_is_cached_and_rebuilt_when_a_file_changes(tmp_path):
    write_ptb(tmp_path)
    load_streams("ptb_word", root=str(tmp_path))
    assert len(list((tmp_path / "lindy-cache").glob("ptb_word-*.safetensors"))) == 1
    (tmp_path / "ptb.train.txt").write_text("x y z z\n")
    _, vocab = load_streams("ptb_word", root=str(tmp_path))
    assert vocab[0] == "z"


def test_missing_files_and_bad_options(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ptb\.train\.txt"):
        build_data("ptb_word", root=str(tmp_path))
    with pytest.raises(ValueError, match="wikitext-103"):
        build_data("wikitext103")
    with pytest.raises(ValueError, match="seq_len must be a positive int"):
        build_data("ptb_word", seq_len=0, cache_dir=str(tmp_path))


def test_wikitext_reader(tmp_path):
    folder = tmp_path / "wikitext-103"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"wiki.{split}.tokens").write_text(" = Title = \n\n the cat sat \n")
    data = build_data("wikitext103", root=str(tmp_path), seq_len=3)
    assert data.info.d_input == len(build_vocab(["=", "Title", "=", EOS, "the", "cat", "sat", EOS]))
    assert len(data.train) == (8 - 1) // 3
