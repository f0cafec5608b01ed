"""Log-mel and MFCC features with torch ops only (no torchaudio on CPU here).

- power spectrogram: |STFT|^2 with a periodic Hann window of n_fft samples, hop ``hop``, centred frames
  (reflect padding), so a clip of S samples gives 1 + S // hop frames;
- mel filterbank (HTK scale, mel = 2595 log10(1 + f / 700)): ``n_mels`` triangles with corners at
  equally spaced mels between f_min and f_max, applied to the n_fft // 2 + 1 frequency bins;
- log-mel: log(mel power + eps); MFCC: the orthonormal DCT-II of the log-mel over the mel axis, first
  ``n_mfcc`` coefficients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "mel_spectrogram",
    "log_mel",
    "mfcc",
    "dct_matrix",
    "lem_google12_features",
]


def hz_to_mel(f):
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (torch.as_tensor(m, dtype=torch.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None):
    """(n_fft // 2 + 1, n_mels) triangular filters, peak 1 at each filter's centre frequency."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    corners = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2))
    lower, centre, upper = corners[:-2], corners[1:-1], corners[2:]
    rising = (freqs[:, None] - lower) / (centre - lower)
    falling = (upper - freqs[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def _power(wave: Tensor, n_fft: int, hop: int, power: float = 2.0) -> Tensor:
    window = torch.hann_window(n_fft, periodic=True, dtype=wave.dtype, device=wave.device)
    spec = torch.stft(wave, n_fft, hop, window=window, center=True, pad_mode="reflect", return_complex=True)
    return spec.abs().pow(power).transpose(-1, -2)  # (..., frames, n_fft // 2 + 1)


def mel_spectrogram(
    wave: Tensor,
    sample_rate: int = 16000,
    n_fft: int = 512,
    hop: int = 128,
    n_mels: int = 80,
    power: float = 2.0,
    f_min: float = 0.0,
) -> Tensor:
    """(..., S) waveform -> (..., 1 + S // hop, n_mels) mel spectrogram of |STFT|^power."""
    fb = mel_filterbank(n_fft, n_mels, sample_rate, f_min=f_min).to(wave.dtype)
    return _power(wave, n_fft, hop, power) @ fb


def log_mel(
    wave: Tensor,
    sample_rate: int = 16000,
    n_fft: int = 512,
    hop: int = 128,
    n_mels: int = 80,
    eps: float = 1e-6,
) -> Tensor:
    """(..., S) waveform -> (..., 1 + S // hop, n_mels) log mel power."""
    return torch.log(mel_spectrogram(wave, sample_rate, n_fft, hop, n_mels) + eps)


def lem_google12_features(wave: Tensor) -> Tensor:
    """LEM's Google12 input: magnitude mel (n_fft 1024, hop 128, 80 mels from 40 Hz) in dB relative to the
    clip's maximum (10 log10, floor 1e-10), z-scored per clip: (..., 126, 80) for a 1 s clip. (The
    reference uses librosa's Slaney mel scale; lindy's filterbank is HTK's.)"""
    mel = mel_spectrogram(wave, n_fft=1024, hop=128, n_mels=80, power=1.0, f_min=40.0)
    ref = mel.amax(dim=(-1, -2), keepdim=True).clamp_min(1e-10)
    db = 10 * torch.log10(mel.clamp_min(1e-10)) - 10 * torch.log10(ref)
    return (db - db.mean(dim=(-1, -2), keepdim=True)) / db.std(dim=(-1, -2), keepdim=True).clamp_min(1e-8)


def dct_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_in, n_out) orthonormal DCT-II basis: x @ D gives the first n_out coefficients."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)
    D = torch.cos(math.pi / n_in * (n[:, None] + 0.5) * k[None, :]) * math.sqrt(2.0 / n_in)
    D[:, 0] /= math.sqrt(2.0)
    return D.float()


def mfcc(wave: Tensor, n_mfcc: int = 20, **mel_kwargs) -> Tensor:
    """(..., S) waveform -> (..., frames, n_mfcc) MFCCs (DCT-II of the log-mel)."""
    lm = log_mel(wave, **mel_kwargs)
    return lm @ dct_matrix(lm.shape[-1], n_mfcc).to(lm.dtype)
