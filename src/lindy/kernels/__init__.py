"""Pure functions (no nn.Module) that the layers are built from."""

from lindy.kernels.discretize import discretize_diag, gbt_dense, zoh_dense
from lindy.kernels.fft_conv import bidirectional_conv, causal_conv, kernel_spectrum
from lindy.kernels.hippo import NPLR, dplr, lagt, legs, legt, nplr, transition
from lindy.kernels.lif import lif_reference
from lindy.kernels.vandermonde import vandermonde_kernel, vandermonde_kernel_naive

__all__ = [
    "NPLR",
    "bidirectional_conv",
    "causal_conv",
    "discretize_diag",
    "dplr",
    "gbt_dense",
    "kernel_spectrum",
    "lagt",
    "legs",
    "legt",
    "lif_reference",
    "nplr",
    "transition",
    "vandermonde_kernel",
    "vandermonde_kernel_naive",
    "zoh_dense",
]
