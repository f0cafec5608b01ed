"""Load the two reference STUs into a lindy ``STU`` with the same outputs (at L = the references' length).

- hazan-lab/flash-stu-2 ``flash_stu.modules.STU``: ``M_inputs`` (d_in, d_out) and ``M_filters`` (K, d_in)
  (``use_approx=True``: x_proj = x M_inputs, psi = phi M_filters fed to both branches, the shared-filter
  quirk) or ``M_phi_plus``, ``M_phi_minus`` (K, d_in, d_out) (exact; Hankel-L: plus only). Its filters
  ``phi`` (seq_len, K) are a non-persistent buffer, not in its state_dict.
- google-deepmind/spectral_ssm ``model.STU`` (Haiku): ``m_y`` (d_out, k_y, d_out), y_t[o] +=
  sum_{j,p} m_y[o, j, p] y_{t-1-j}[p]; ``m_u`` declared (d_in, d_out, k_u) but read as [o, i, j] (its code
  assumes d_in = d_out); ``m_phi`` (K d_in, d_out), row k d_in + i (k-major); filters sigma^(1/4) v_k of
  ``np.linalg.eigh``, the spectral term shifted by two steps.

Filters. Both references compute the top-K eigenvectors with ``numpy.linalg.eigh`` (float64) and keep
LAPACK's signs. Unless given (``phi`` / ``eigh``), they are computed the same way here; each filter is then
matched to lindy's (same matrix, same order) up to its sign, which is absorbed into the loaded M. Filters
that differ beyond a sign (from another LAPACK, or the noise-floor tail of a short L) are installed in the
layer as they are (``STU.set_filters``). Negative round-off eigenvalues give NaN filters in the references;
lindy clamps them at 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from lindy.kernels.spectral import hankel_matrix, spectral_filters
from lindy.layers.stu import STU

__all__ = ["stu_from_flash_stu", "stu_from_spectral_ssm", "reference_filters"]

_MATCH_ATOL = 1e-7  # |phi_ref - sign * phi_lindy| per entry, below which the filters are lindy's own


def reference_filters(length: int, k: int, variant: str = "standard") -> Tensor:
    """The references' filters (L, K) float64: numpy eigh, last K, times sigma^(1/4), LAPACK's signs."""
    sigma, vectors = np.linalg.eigh(hankel_matrix(length, variant).numpy())
    return torch.from_numpy(vectors[:, -k:] * np.clip(sigma[-k:], 0.0, None) ** 0.25)


def _absorb_signs(layer: STU, phi_ref: Tensor) -> Tensor:
    """+-1 per filter (K,) such that phi_ref = phi_lindy * sign; else installs phi_ref and returns ones."""
    ours = spectral_filters(layer.max_len, layer.num_filters, layer.hankel)
    phi_ref = phi_ref.detach().to("cpu", torch.float64)
    signs = torch.sign((phi_ref * ours).sum(0))
    signs[signs == 0] = 1
    if (phi_ref - ours * signs).abs().max() <= _MATCH_ATOL:
        return signs
    layer.set_filters(phi_ref)
    return torch.ones_like(signs)


def _find(params: Mapping, name: str):
    """params[name], or the unique entry ending in ``/name`` / ``.name`` (prefixed or nested dicts)."""
    if name in params:
        return params[name]
    hits = [v for k, v in params.items() if str(k).endswith(("/" + name, "." + name))]
    hits += [v[name] for v in params.values() if isinstance(v, Mapping) and name in v]
    if len(hits) > 1:
        raise ValueError(f"more than one {name!r} in the parameters; pass one STU's parameters")
    return hits[0] if hits else None


def _tensor(value) -> Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def _check_shape(name: str, t: Tensor, shape: tuple) -> None:
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")


def stu_from_flash_stu(
    state_dict: Mapping,
    *,
    seq_len: int,
    num_eigh: int = 24,
    use_hankel_L: bool = False,
    use_approx: bool = True,
    phi: Tensor | None = None,
) -> STU:
    """A lindy STU (``output="none"``, float32) equal to flash-stu-2's ``STU`` with these weights."""
    hankel = "L" if use_hankel_L else "standard"
    if use_approx:
        m_in, m_filt = _find(state_dict, "M_inputs"), _find(state_dict, "M_filters")
        if m_in is None or m_filt is None:
            raise ValueError("use_approx=True needs M_inputs and M_filters in the state_dict")
        m_in, m_filt = _tensor(m_in.detach().cpu()), _tensor(m_filt.detach().cpu())
        d_in, d_out = m_in.shape
        _check_shape("M_filters", m_filt, (num_eigh, d_in))
        if d_in != d_out:
            raise ValueError(
                f"the reference's approx form needs d_in = d_out, got M_inputs {tuple(m_in.shape)}"
            )
    else:
        plus = _find(state_dict, "M_phi_plus")
        if plus is None:
            raise ValueError("use_approx=False needs M_phi_plus (and M_phi_minus) in the state_dict")
        plus = _tensor(plus.detach().cpu())
        _, d_in, d_out = plus.shape
        _check_shape("M_phi_plus", plus, (num_eigh, d_in, d_out))
        minus = None
        if not use_hankel_L:
            minus = _find(state_dict, "M_phi_minus")
            if minus is None:
                raise ValueError("use_hankel_L=False needs M_phi_minus in the state_dict")
            minus = _tensor(minus.detach().cpu())
            _check_shape("M_phi_minus", minus, (num_eigh, d_in, d_out))
    layer = STU(
        d_out,
        d_input=d_in,
        num_filters=num_eigh,
        max_len=seq_len,
        hankel=hankel,
        form="approx" if use_approx else "exact",
        approx_shared_filter=True,
        output="none",
    )
    phi_ref = reference_filters(seq_len, num_eigh, hankel) if phi is None else _tensor(phi.detach().cpu())
    _check_shape("phi", phi_ref, (seq_len, num_eigh))
    signs = _absorb_signs(layer, phi_ref)
    with torch.no_grad():
        if use_approx:
            layer.M_inputs.copy_(m_in)
            layer.M_filters.copy_(m_filt * signs[:, None])
        else:
            layer.M_phi_plus.copy_(plus * signs[:, None, None])
            if minus is not None:
                layer.M_phi_minus.copy_(minus * signs[:, None, None])
    return layer.eval()


def stu_from_spectral_ssm(
    params: Mapping,
    *,
    input_len: int,
    num_eigh: int = 24,
    auto_reg_k_u: int = 3,
    auto_reg_k_y: int = 2,
    eigh: tuple | None = None,
) -> STU:
    """A lindy STU (``output="none"``, float32) equal to spectral_ssm's ``STU`` with these parameters.

    ``params``: ``m_phi``, ``m_u`` and (when learnable) ``m_y`` arrays, flat or as Haiku's nested dict;
    ``eigh``: the reference's (eigenvalues (K,), eigenvectors (L, K)) when known.
    """
    m_phi, m_u, m_y = (_find(params, n) for n in ("m_phi", "m_u", "m_y"))
    if m_phi is None or m_u is None:
        raise ValueError("params must hold m_phi and m_u (and m_y unless learnable_m_y=False)")
    m_phi, m_u = _tensor(m_phi), _tensor(m_u)
    rows, d_out = m_phi.shape
    if rows % num_eigh:
        raise ValueError(f"m_phi must have shape (d_in * num_eigh, d_out), got {tuple(m_phi.shape)}")
    d_in = rows // num_eigh
    _check_shape("m_u", m_u, (d_out, d_in, auto_reg_k_u))
    ar_y = auto_reg_k_y if m_y is not None else 0
    if m_y is not None:
        m_y = _tensor(m_y)
        _check_shape("m_y", m_y, (d_out, auto_reg_k_y, d_out))
    layer = STU(
        d_out,
        d_input=d_in,
        num_filters=num_eigh,
        max_len=input_len,
        branches="positive",
        shift=2,
        ar_u=auto_reg_k_u,
        ar_y=ar_y,
        output="none",
    )
    if eigh is None:
        phi_ref = reference_filters(input_len, num_eigh)
    else:
        values, vectors = (_tensor(a) for a in eigh)
        _check_shape("eigh[1]", vectors, (input_len, num_eigh))
        phi_ref = vectors * values.clamp(min=0.0) ** 0.25
    signs = _absorb_signs(layer, phi_ref)
    with torch.no_grad():
        layer.M_phi_plus.copy_(m_phi.reshape(num_eigh, d_in, d_out) * signs[:, None, None])
        if auto_reg_k_u:
            layer.M_u.copy_(m_u.permute(2, 1, 0))
        if ar_y:
            layer.M_y.copy_(m_y.permute(1, 2, 0))
    return layer.eval()
