"""Speech Commands v0.02 (Warden 2018) from the user's files.

Layout: ``<root>/SpeechCommands/speech_commands_v0.02/<word>/<speaker>_nohash_<k>.wav`` (16-bit PCM, mono,
16 kHz) with the official ``validation_list.txt`` and ``testing_list.txt`` (paths relative to that
folder); every other clip of a word folder is training data. Clips are padded with zeros or cropped to
16000 samples and scaled to [-1, 1] (int16 / 32768).

- ``sc10``: the ten words yes no up down left right on off stop go (S4's SC10); ``sc35``: all 35 words.
  ``features``: "raw" -> x (16000, 1); "mel" -> (126, 80) log-mel; "mfcc" -> (126, 20) MFCC
  (``audio_features.py``: n_fft 512, hop 128, centred frames).
- ``google12``: LEM's 12-class form: label 0 "unknown" (every other word), 1 "silence" (1 s windows cut
  with a 1 s stride from ``_background_noise_/*.wav``, assigned to train / validation / test as
  80 / 10 / 10 % by window index), 2-11 the ten words in SC10's order; features as LEM's
  (``lem_google12_features``: magnitude mel, n_fft 1024, hop 128, 80 mels from 40 Hz, dB relative to the
  clip's maximum, z-scored per clip), 126 frames x 80.

The decoded clips are cached (int16) with a key of the two list files and the folder listing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lindy._checks import check_choice
from lindy.data.audio_features import lem_google12_features, log_mel, mfcc
from lindy.data.base import DataSplits, StoredSequences, classification_info, register_dataset
from lindy.data.cache import cached_tensors

SAMPLE_RATE = 16000
CLIP = 16000
SC10 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
BACKGROUND = "_background_noise_"
FEATURES = ("raw", "mel", "mfcc")
VERSION = 1


def read_wav(path: Path) -> np.ndarray:
    """int16 samples of a mono 16 kHz PCM WAV file, padded with zeros or cropped to 16000."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable WAV file ({err})") from err
    if rate != SAMPLE_RATE or data.dtype != np.int16 or data.ndim != 1:
        raise ValueError(
            f"{path}: expected 16-bit PCM mono at {SAMPLE_RATE} Hz, "
            f"got {rate} Hz, {data.dtype}, shape {data.shape}"
        )
    out = np.zeros(CLIP, dtype=np.int16)
    out[: min(CLIP, len(data))] = data[:CLIP]
    return out


def _folder(root) -> Path:
    if root is None:
        raise ValueError(
            "Speech Commands needs data.root: the folder holding SpeechCommands/speech_commands_v0.02"
        )
    folder = Path(root).expanduser() / "SpeechCommands" / "speech_commands_v0.02"
    for name in ("validation_list.txt", "testing_list.txt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name}: missing; expected <root>/SpeechCommands/speech_commands_v0.02/ "
                "with <word>/*.wav, validation_list.txt and testing_list.txt"
            )
    return folder


def _words(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != BACKGROUND)


def _listing(folder: Path) -> dict[str, list[str]]:
    """Relative paths of every clip, by split, following the official lists."""
    val = set((folder / "validation_list.txt").read_text().split())
    test = set((folder / "testing_list.txt").read_text().split())
    splits = {"train": [], "val": [], "test": []}
    for word in _words(folder):
        for wav in sorted((folder / word).glob("*.wav")):
            rel = f"{word}/{wav.name}"
            splits["val" if rel in val else "test" if rel in test else "train"].append(rel)
    return splits


def _clips(folder: Path, cache_dir, root) -> dict[str, torch.Tensor]:
    """Every clip (int16) and its word index, by split, cached."""
    words = _words(folder)
    index = {w: i for i, w in enumerate(words)}

    def build():
        out = {}
        for split, rels in _listing(folder).items():
            audio = np.stack([read_wav(folder / r) for r in rels]) if rels else np.zeros((0, CLIP), np.int16)
            out[f"{split}_audio"] = torch.from_numpy(audio)
            out[f"{split}_word"] = torch.tensor([index[r.split("/")[0]] for r in rels], dtype=torch.int64)
        return out

    stamps = [folder / "validation_list.txt", folder / "testing_list.txt", *[folder / w for w in words]]
    where = {"cache_dir": cache_dir, "root": root, "sources": stamps}
    return cached_tensors("speech_commands", {"words": words}, VERSION, build, **where)


class AudioClips(StoredSequences):
    """(x, label) from int16 clips: x (16000, 1) float in [-1, 1], or its log-mel / MFCC frames."""

    def __init__(self, audio: torch.Tensor, labels: torch.Tensor, features: str = "raw"):
        super().__init__(audio, labels)
        self.features = features

    @property
    def audio(self) -> torch.Tensor:
        return self.data

    def input(self, i: int):
        wave = self.data[i].float() / 32768.0
        if self.features == "raw":
            return wave.unsqueeze(-1)
        if self.features == "mel":
            return log_mel(wave)
        if self.features == "google12":
            return lem_google12_features(wave)
        return mfcc(wave)


def _shape(features: str) -> tuple[int, int]:
    return {"raw": (CLIP, 1), "mel": (1 + CLIP // 128, 80), "mfcc": (1 + CLIP // 128, 20)}[features]


def _speech(root, words_kept, features: str, cache_dir) -> DataSplits:
    check_choice("features", features, FEATURES)
    folder = _folder(root)
    words = _words(folder)
    missing = [w for w in words_kept if w not in words]
    if missing:
        raise FileNotFoundError(f"{folder}: word folders {missing} missing")
    clips = _clips(folder, cache_dir, root)
    remap = torch.full((len(words),), -1, dtype=torch.int64)
    for i, w in enumerate(words_kept):
        remap[words.index(w)] = i
    sets = []
    for split in ("train", "val", "test"):
        labels = remap[clips[f"{split}_word"]]
        keep = labels >= 0
        sets.append(AudioClips(clips[f"{split}_audio"][keep], labels[keep], features))
    length, width = _shape(features)
    info = classification_info(width, len(words_kept), length)
    return DataSplits(*sets, info)


@register_dataset("sc10")
def sc10(root: str | None = None, features: str = "raw", cache_dir: str | None = None) -> DataSplits:
    """SC10: ten words, 16000 raw steps by default."""
    return _speech(root, SC10, features, cache_dir)


@register_dataset("sc35")
def sc35(root: str | None = None, features: str = "raw", cache_dir: str | None = None) -> DataSplits:
    """SC35: every word of v0.02 (35), 16000 raw steps by default."""
    check_choice("features", features, FEATURES)
    return _speech(root, _words(_folder(root)), features, cache_dir)


def _silence(folder: Path) -> dict[str, list[np.ndarray]]:
    out = {"train": [], "val": [], "test": []}
    k = 0
    for wav in sorted((folder / BACKGROUND).glob("*.wav")):
        from scipy.io import wavfile

        try:
            rate, data = wavfile.read(wav)
        except (ValueError, OSError) as err:
            raise ValueError(f"{wav}: not a readable WAV file ({err})") from err
        if rate != SAMPLE_RATE or data.dtype != np.int16:
            raise ValueError(f"{wav}: expected 16-bit PCM at {SAMPLE_RATE} Hz, got {rate} Hz, {data.dtype}")
        for start in range(0, len(data) - CLIP + 1, CLIP):
            split = "val" if k % 10 == 8 else "test" if k % 10 == 9 else "train"
            out[split].append(data[start : start + CLIP])
            k += 1
    return out


@register_dataset("google12")
def google12(root: str | None = None, cache_dir: str | None = None) -> DataSplits:
    """LEM's Google12: 10 words + unknown + silence, 80 log-mel features over 126 frames."""
    folder = _folder(root)
    words = _words(folder)
    clips = _clips(folder, cache_dir, root)
    remap = torch.tensor([2 + SC10.index(w) if w in SC10 else 0 for w in words], dtype=torch.int64)
    silence = _silence(folder)
    sets = []
    for split in ("train", "val", "test"):
        audio, labels = clips[f"{split}_audio"], remap[clips[f"{split}_word"]]
        if silence[split]:
            audio = torch.cat([audio, torch.from_numpy(np.stack(silence[split]))])
            labels = torch.cat([labels, torch.full((len(silence[split]),), 1, dtype=torch.int64)])
        sets.append(AudioClips(audio, labels, "google12"))
    info = classification_info(80, 12, 1 + CLIP // 128)
    return DataSplits(*sets, info)
