"""Speech Commands from a fake v0.02 tree of generated WAVs, and the mel/MFCC features."""

import math
import wave

import numpy as np
import pytest
import torch

from lindy.data import build_data
from lindy.data.audio_features import dct_matrix, log_mel, mel_filterbank, mel_to_hz, mfcc


def write_wav(path, samples, rate=16000, width=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(np.asarray(samples, dtype=np.int16 if width == 2 else np.uint8).tobytes())


def make_tree(root, words=("yes", "no", "cat"), per_word=4, noise_seconds=3):
    folder = root / "SpeechCommands" / "speech_commands_v0.02"
    rng = np.random.default_rng(0)
    val, test = [], []
    for w in words:
        for k in range(per_word):
            n = 16000 if k else 12000  # one short clip, padded
            write_wav(folder / w / f"spk{k}_nohash_0.wav", rng.integers(-3000, 3000, n))
        val.append(f"{w}/spk1_nohash_0.wav")
        test.append(f"{w}/spk2_nohash_0.wav")
    write_wav(folder / "_background_noise_" / "white.wav", rng.integers(-100, 100, 16000 * noise_seconds))
    (folder / "validation_list.txt").write_text("\n".join(val) + "\n")
    (folder / "testing_list.txt").write_text("\n".join(test) + "\n")
    return folder


def test_sc35_follows_the_official_lists(tmp_path):
    folder = make_tree(tmp_path)
    data = build_data("sc35", root=str(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (6, 3, 3)
    assert data.info.d_output == 3 and data.info.length == 16000
    x, y = data.val[0]  # words sorted: cat, no, yes -> val[0] is cat/spk1
    from scipy.io import wavfile

    torch.testing.assert_close(
        x[:, 0], torch.from_numpy(wavfile.read(folder / "cat/spk1_nohash_0.wav")[1] / 32768.0).float()
    )
    assert int(y) == 0
    short, _ = data.train[0]  # cat/spk0 has 12000 samples: zero padded
    assert short.shape == (16000, 1) and torch.all(short[12000:] == 0)


def test_sc10_keeps_its_words_only_and_features(tmp_path):
    make_tree(
        tmp_path,
        words=("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat"),
        per_word=3,
    )
    data = build_data("sc10", root=str(tmp_path))
    assert data.info.d_output == 10 and len(data.train) == 10  # cat dropped, one train clip per word
    labels = sorted(int(data.train[i][1]) for i in range(len(data.train)))
    assert labels == list(range(10))
    mel = build_data("sc10", root=str(tmp_path), features="mfcc")
    assert mel.train[0][0].shape == (126, 20) and mel.info.d_input == 20


def test_google12_adds_unknown_and_silence(tmp_path):
    make_tree(
        tmp_path, words=("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat", "dog")
    )
    data = build_data("google12", root=str(tmp_path))
    assert data.info.d_output == 12 and data.info.length == 126 and data.info.d_input == 80
    labels = [int(data.train[i][1]) for i in range(len(data.train))]
    assert labels.count(0) == 4  # cat and dog: 2 train clips each -> "unknown"
    assert labels.count(1) == 3  # 3 seconds of background noise -> 3 silence windows, all train (k % 10 < 8)
    assert sorted(set(labels)) == list(range(12))
    x = data.train[0][0]
    assert x.shape == (126, 80) and abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3


def test_bad_wav_and_missing_layout_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="validation_list.txt"):
        build_data("sc10", root=str(tmp_path))
    folder = make_tree(tmp_path, words=("cat",))
    (folder / "cat" / "spk0_nohash_0.wav").write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="spk0_nohash_0.wav"):
        build_data("sc35", root=str(tmp_path))
    with pytest.raises(ValueError, match="features must be one of"):
        build_data("sc35", root=str(tmp_path), features="spectrogram")


def test_mel_filterbank_puts_a_sine_in_the_right_band():
    t = torch.arange(16000) / 16000
    for f in (300.0, 1000.0, 4000.0):
        lm = log_mel(torch.sin(2 * math.pi * f * t).float())
        fb = mel_filterbank(512, 80, 16000)
        centres = mel_to_hz(torch.linspace(0, float(2595 * math.log10(1 + 8000 / 700)), 82))[1:-1]
        peak = int(lm[60].argmax())
        assert abs(float(centres[peak]) - f) <= 0.1 * f + 40, (f, float(centres[peak]))
        assert fb.shape == (257, 80) and torch.all(fb >= 0) and fb.max() <= 1.0


def test_mfcc_is_the_orthonormal_dct_of_log_mel():
    from scipy.fft import dct

    x = torch.randn(16000)
    lm = log_mel(x)
    expected = dct(lm.double().numpy(), type=2, norm="ortho", axis=-1)[..., :20]
    torch.testing.assert_close(mfcc(x).double(), torch.from_numpy(expected), rtol=1e-4, atol=1e-4)
    D = dct_matrix(80, 80).double()
    torch.testing.assert_close(D.T @ D, torch.eye(80, dtype=torch.float64), atol=1e-6, rtol=0)
