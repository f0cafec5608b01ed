"""The fused SDN's membrane prediction as one C++ CPU loop (``csrc/sdn_cpu.cpp``), compiled on first use,
never at install time.

The op ``membrane(x, history, W1, b1, W2, b2, w3, b3, v_th, out)`` writes out (B, L, H) =
v_th FusedSDN(x / v_th) for x (B, L, H) (time on dim 1, features last), history (B, k, H) the k inputs
before x (None: zeros), d = 8 hidden channels; no gradient (the SDN neuron's membrane needs none). The op
``spikes(x, history, W1, ..., b3, v_th, surrogate, alpha, spikes, grad)`` is the whole SDN neuron in the
same pass: spikes = 1[(m + x) - v_th >= 0] and, when grad is given, the surrogate's pseudo-derivative at
(m + x) - v_th (surrogate: its index in ``SURROGATE_CODES``), with m never written out.
``lindy.kernels.cpp.load`` builds it once per machine (cached under torch's extensions folder, rebuilt
when the source changes) and records its status as the fast path ``lindy_sdn_cpu``. Without a C++
compiler or ninja, or with ``LINDY_NO_CPP=1``, ``ops()`` returns None and ``FusedSDN.features_last``
(``lindy.layers.sdn``) runs the torch path: the same numbers to float rounding, slower.
"""

from __future__ import annotations

from pathlib import Path

from lindy.kernels import cpp

__all__ = ["ops", "SOURCE", "NAME", "SURROGATE_CODES"]

SOURCE = Path(__file__).with_name("csrc") / "sdn_cpu.cpp"
NAME = "lindy_sdn_cpu"  # the extension, its TORCH_LIBRARY namespace and its fast-path status key
#: the ``spikes`` op's surrogate argument: the index here (the C++ enum Surrogate, in this order)
SURROGATE_CODES = ("piecewise_quadratic", "atan", "sigmoid")


def ops():
    """``torch.ops.lindy_sdn_cpu`` (ops ``membrane``, ``spikes``), or None if disabled or not buildable."""
    return cpp.load_buffer_ops(NAME, [SOURCE], ("membrane", "spikes"))
