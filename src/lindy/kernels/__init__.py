"""Pure functions and autograd Functions (no nn.Module) that the layers are built from.

Modules, one job each:

- ``complex_pairs``: complex arithmetic on real pairs (..., 2): cmul, cdiv, cexp, conj, cabs2, conversions.
- ``discretize``: GBT and ZOH of dense A, and ZOH / bilinear of complex diagonal A.
- ``diag_ssm``: the exact recurrence of a complex diagonal SSM: one step and a closed-form chunk.
- ``vandermonde``: diagonal-SSM convolution kernels K[l] = Re(sum_n c_n z_n^l) in O(N sqrt L) memory.
- ``fft_conv``: causal and bidirectional convolution by real FFTs, with a hand-written backward.
- ``hippo``: HiPPO matrices and one eigendecomposition of their normal part, with its projections.
- ``cauchy``: Cauchy matrix products sum_n W_n / (a_f - b_f mu_n) without the (N, F) matrix.
- ``nplr_kernel``: the kernel of a normal-plus-low-rank system by Woodbury and Cauchy products.
- ``krylov``: dense Krylov kernels C Abar^l Bbar (reference and general fallback).
- ``spectral``: Hankel filters (top-K eigh, memory and disk cache), the STU's frequency-response
  convolution and output AR filter, each with a hand-written backward.
- ``lif``: the discrete leaky integrate-and-fire neuron (hard reset): the exact reference, one step, and
  the iterative BPTT / SLTT neurons with surrogate gradients.
- ``surrogate``: spike functions H(v) with surrogate gradients (triangle, atan, sigmoid).
- ``lem_scan``: LEM's recurrence as an autograd Function; ``lem_cpu`` builds its C++ loop.
- ``ar_cpu``: the C++ loops of the STU's output autoregression (``spectral.ar_filter``), built on first use.
- ``sdn_cpu``: the fused SDN's membrane prediction (``layers.sdn.FusedSDN.features_last``, the SDN
  neuron's) as one C++ loop over (B, L, H), built on first use.
- ``cpp``: build-on-first-use C++ extensions and the status of every fast path tried.
- ``memory``: large CPU buffers on huge pages, reused from a small pool.

Complex numbers. The diagonal-SSM path (``complex_pairs``, ``discretize.discretize_diag``, ``diag_ssm``,
``vandermonde``), which S4D, LDNN and SpikingSSM run on every forward and recurrent step, stores complex
values as real pairs: torch.compile and several CPU kernels still break on or slow down with complex dtypes,
and real parameters keep the optimiser, autocast and safetensors simple. Torch complex is used where the
maths lives in the frequency domain or is a one-off linear-algebra step, and the layers' parameters stay
real: ``fft_conv`` (FFTs are complex by nature; a precomputed kernel spectrum ``k_f`` is complex, inputs
and outputs are real), ``cauchy`` and ``nplr_kernel`` (LSSL's resolvent at the FFT frequencies, ended by
an inverse real FFT into a real kernel), and ``hippo`` (an ``eigh`` at initialisation, returned as pairs by
``nplr``/``dplr``, as complex128 by ``normal_pairs`` and ``normal_eig``).
"""

from lindy.kernels.complex_pairs import cabs2, cdiv, cexp, cmul, conj, to_complex, to_pairs
from lindy.kernels.diag_ssm import diag_chunk, diag_powers, diag_step
from lindy.kernels.discretize import discretize_diag, gbt_dense, zoh_dense
from lindy.kernels.fft_conv import bidirectional_conv, causal_conv, kernel_spectrum
from lindy.kernels.hippo import NPLR, dplr, lagt, legs, legt, normal_eig, normal_pairs, nplr, transition
from lindy.kernels.lif import lif_reference, lif_spikes, lif_step
from lindy.kernels.surrogate import spike, surrogate_grad
from lindy.kernels.vandermonde import vandermonde_kernel, vandermonde_kernel_naive

__all__ = [
    "NPLR",
    "bidirectional_conv",
    "cabs2",
    "causal_conv",
    "cdiv",
    "cexp",
    "cmul",
    "conj",
    "diag_chunk",
    "diag_powers",
    "diag_step",
    "discretize_diag",
    "dplr",
    "gbt_dense",
    "kernel_spectrum",
    "lagt",
    "legs",
    "legt",
    "lif_reference",
    "lif_spikes",
    "lif_step",
    "normal_eig",
    "normal_pairs",
    "nplr",
    "to_complex",
    "to_pairs",
    "spike",
    "surrogate_grad",
    "transition",
    "vandermonde_kernel",
    "vandermonde_kernel_naive",
    "zoh_dense",
]
