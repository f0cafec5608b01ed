// The STU's output autoregression on the CPU: the time loops of y_t = x_t + sum_{j=1}^p y_{t-j} M_j and of
// its adjoint in C++.
//
// One step kernel serves both directions: out_b = base_b + w_b S for the batch rows b, where w_b is a window
// of p consecutive time rows (p d values, contiguous in the (B, L, d) layout) and S is (p d, d) row-major:
//   forward:  base = x_t, w = [y_{t-p} .. y_{t-1}] (oldest first), S = [M_p; ..; M_1],   t = 0 .. L-1
//   backward: base = g_t, w = [gx_{t+1} .. gx_{t+p}],            S = [M_1^T; ..; M_p^T], t = L-1 .. 0
// Only the first p forward steps (the window reaches into y0) and the last p backward steps (it runs past
// the end, where the gradient is zero) gather their windows into scratch. The gradient of y0 (the outputs
// before t = 0, which feed y_t for t >= 0 only) takes p more windows of gx, zero-padded, with base 0.
//
// Why a hand loop and not one GEMM per step: per step the product is (B, p d) x (p d, d), B = 8, d = 128,
// p = 2 in the STU, a few microseconds of arithmetic. A BLAS call on it repacks S (128 KB) every step, and
// ATen's addmm adds its dispatch on top; the loop here keeps 4 rows x 64 columns of accumulators in
// registers and streams S from L2 once per step and group of 4 rows. Measured (forward alone, B = 8,
// d = 128, p = 2, one thread of a Zen 4): 5.9 ms at L = 1024 against 10.6 with one MKL sgemm per step and
// 12.1 with at::addmm_ per step; 23 against 35 and 39 ms at L = 4096 (about 90 GFLOP/s, near one core's
// peak). An exact parallel form (chunked scan with companion-matrix powers) would do at least twice these
// flops for the in-chunk Toeplitz products, which does not pay on CPUs where this loop is compute-bound.
// Threads split the batch (rows never interact), each running the whole time loop on its rows.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "flush_subnormals.h"
#include "simd.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

using lindy::Simd;  // simd.h

// R rows x NV vectors of columns [c, c + NV N): out = base + w S, w S accumulated in registers over k < K
// from zero and base added last (as addmm does: the small terms do not round at base's magnitude).
template <typename T, int Bytes, int R, int NV>
inline __attribute__((always_inline)) void tile(const T* const* w, const T* __restrict S, int64_t K, int64_t d,
                                                const T* const* base, T* const* out, int64_t c) {
  using V = typename Simd<T, Bytes>::V;
  constexpr int N = Simd<T, Bytes>::N;
  V acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int64_t k = 0; k < K; ++k) {
    const T* s = S + k * d + c;
    V sv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) sv[v] = *reinterpret_cast<const V*>(s + v * N);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const T wk = w[r][k];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] += wk * sv[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      *reinterpret_cast<V*>(out[r] + c + v * N) = *reinterpret_cast<const V*>(base[r] + c + v * N) + acc[r][v];
}

// All d columns of R rows: blocks of NV vectors, then single vectors, then scalar columns.
template <typename T, int Bytes, int NV, int R>
inline __attribute__((always_inline)) void rows(const T* const* w, const T* S, int64_t K, int64_t d,
                                                const T* const* base, T* const* out) {
  constexpr int N = Simd<T, Bytes>::N;
  int64_t c = 0;
  for (; c + NV * N <= d; c += NV * N) tile<T, Bytes, R, NV>(w, S, K, d, base, out, c);
  for (; c + N <= d; c += N) tile<T, Bytes, R, 1>(w, S, K, d, base, out, c);
  for (; c < d; ++c)
    for (int r = 0; r < R; ++r) {
      T a = 0;
      for (int64_t k = 0; k < K; ++k) a += w[r][k] * S[k * d + c];
      out[r][c] = base[r][c] + a;
    }
}

constexpr int kMaxRows = 4;  // rows per call: 4 x 4 vectors of accumulators fill half of AVX-512's registers

template <typename T, int Bytes, int NV>
inline __attribute__((always_inline)) void step_any(int nrows, const T* const* w, const T* S, int64_t K,
                                                    int64_t d, const T* const* base, T* const* out) {
  switch (nrows) {
    case 4: rows<T, Bytes, NV, 4>(w, S, K, d, base, out); break;
    case 3: rows<T, Bytes, NV, 3>(w, S, K, d, base, out); break;
    case 2: rows<T, Bytes, NV, 2>(w, S, K, d, base, out); break;
    default: rows<T, Bytes, NV, 1>(w, S, K, d, base, out); break;
  }
}

template <typename T>
using StepFn = void (*)(int, const T* const*, const T*, int64_t, int64_t, const T* const*, T* const*);

// One entry point per instruction set, chosen once by the CPU it runs on. AVX2 has 16 registers, so its
// blocks are 2 vectors wide (8 accumulators), AVX-512's 4 (16 of 32).
#define LINDY_STEP(NAME, TARGET, T, BYTES, NV)                                                        \
  TARGET void NAME(int n, const T* const* w, const T* S, int64_t K, int64_t d, const T* const* base, \
                   T* const* out) {                                                                 \
    step_any<T, BYTES, NV>(n, w, S, K, d, base, out);                                                \
  }
#define LINDY_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define LINDY_AVX2 __attribute__((target("avx2,fma")))
LINDY_STEP(step_avx512_f32, LINDY_AVX512, float, 64, 4)
LINDY_STEP(step_avx2_f32, LINDY_AVX2, float, 32, 2)
LINDY_STEP(step_base_f32, , float, 16, 2)
LINDY_STEP(step_avx512_f64, LINDY_AVX512, double, 64, 4)
LINDY_STEP(step_avx2_f64, LINDY_AVX2, double, 32, 2)
LINDY_STEP(step_base_f64, , double, 16, 2)
#undef LINDY_STEP

template <typename T>
StepFn<T> pick_step() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if constexpr (std::is_same_v<T, float>)
    return avx512 ? step_avx512_f32 : avx2 ? step_avx2_f32 : step_base_f32;
  else
    return avx512 ? step_avx512_f64 : avx2 ? step_avx2_f64 : step_base_f64;
}

// One thread's share, batch rows [b0, b0 + nb): the whole time loop, forward (edge = y0, (B, p, d)) or
// backward (reverse; edge unused, g0 (B, p, d) receives the gradient of y0). out is (B, L, d) contiguous,
// base (B, L, d) with strides (sb, st, 1) (the STU's x is a slice of a longer inverse FFT: no copy).
template <typename T>
void run_share(StepFn<T> step, const T* base, int64_t sb, int64_t st, T* out, const T* S, const T* edge, T* g0,
               int64_t L, int64_t p, int64_t d, bool reverse, int64_t b0, int64_t nb) {
  const int64_t K = p * d;
  std::vector<T> scratch(kMaxRows * K + d, T(0));  // gathered windows, then a zero row (g0's base)
  const T* zero_row = scratch.data() + kMaxRows * K;
  // the window of row b at time t, gathered when it leaves [0, L) (forward: into y0; backward: zeros)
  auto gather = [&](T* dst, int64_t b, int64_t first) {
    for (int64_t q = 0; q < p; ++q) {
      const int64_t tau = first + q;
      T* row = dst + q * d;
      if (tau >= 0 && tau < L)
        std::memcpy(row, out + (b * L + tau) * d, d * sizeof(T));
      else if (tau < 0 && !reverse)
        std::memcpy(row, edge + (b * p + p + tau) * d, d * sizeof(T));
      else
        std::fill(row, row + d, T(0));
    }
  };
  const T* w[kMaxRows];
  const T* bp[kMaxRows];
  T* op[kMaxRows];
  for (int64_t s = 0; s < L; ++s) {
    const int64_t t = reverse ? L - 1 - s : s;
    const int64_t first = reverse ? t + 1 : t - p;  // the window's first time row
    const bool inside = first >= 0 && first + p <= L;
    for (int64_t r0 = 0; r0 < nb; r0 += kMaxRows) {
      const int n = static_cast<int>(std::min<int64_t>(kMaxRows, nb - r0));
      for (int i = 0; i < n; ++i) {
        const int64_t b = b0 + r0 + i;
        bp[i] = base + b * sb + t * st;
        op[i] = out + (b * L + t) * d;
        if (inside) {
          w[i] = out + (b * L + first) * d;
        } else {
          gather(scratch.data() + i * K, b, first);
          w[i] = scratch.data() + i * K;
        }
      }
      step(n, w, S, K, d, bp, op);
    }
  }
  if (!reverse || g0 == nullptr) return;
  // y0[:, i] sits at time i - p: its window is gx at times i - p + 1 .. i (zero before 0 and past L - 1)
  for (int64_t i = 0; i < p; ++i)
    for (int64_t r0 = 0; r0 < nb; r0 += kMaxRows) {
      const int n = static_cast<int>(std::min<int64_t>(kMaxRows, nb - r0));
      for (int j = 0; j < n; ++j) {
        const int64_t b = b0 + r0 + j;
        gather(scratch.data() + j * K, b, i - p + 1);
        w[j] = scratch.data() + j * K;
        bp[j] = zero_row;
        op[j] = g0 + (b * p + i) * d;
      }
      step(n, w, S, K, d, bp, op);
    }
}

void check(const at::Tensor& base, const at::Tensor& S, const at::Tensor& out, int64_t p) {
  TORCH_CHECK(base.dim() == 3 && (base.stride(2) == 1 || base.size(2) == 1),
              "the input must be a (B, L, d) tensor with a contiguous last dimension");
  TORCH_CHECK(base.device().is_cpu(), "ar_cpu runs on CPU tensors");
  const auto d = base.size(2);
  TORCH_CHECK(p >= 1 && S.is_contiguous() && S.dim() == 2 && S.size(0) == p * d && S.size(1) == d,
              "S must be a contiguous (p d, d) tensor");
  TORCH_CHECK(out.is_contiguous() && out.sizes() == base.sizes(),
              "the output must be contiguous, shaped like the input");
  for (const auto* t : {&S, &out})
    TORCH_CHECK(t->scalar_type() == base.scalar_type(), "all tensors must share the input's dtype");
}

template <typename T>
void run(const at::Tensor& base, const at::Tensor& S, const T* edge, T* g0, at::Tensor& out, int64_t p,
         bool reverse) {
  static const StepFn<T> step = pick_step<T>();
  const auto B = base.size(0), L = base.size(1), d = base.size(2);
  const T* bptr = base.data_ptr<T>();
  const int64_t sb = base.stride(0), st = base.stride(1);
  const T* sptr = S.data_ptr<T>();
  T* optr = out.data_ptr<T>();
  // grain 1: a thread runs the whole time loop on its rows, so one row is already worth a thread
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    lindy::FlushSubnormals flush;  // an adjoint that starts late decays through the subnormals backward
    run_share<T>(step, bptr, sb, st, optr, sptr, edge, g0, L, p, d, reverse, b0, b1 - b0);
  });
}

// x (B, L, d) (last dimension contiguous), S = [M_p; ..; M_1] (p d, d), y0 (B, p, d) the outputs at times
// -p .. -1; writes y (B, L, d).
void ar_forward(const at::Tensor& x, const at::Tensor& S, const at::Tensor& y0, at::Tensor y) {
  TORCH_CHECK(y0.dim() == 3 && y0.is_contiguous() && y0.size(0) == x.size(0) && y0.size(2) == x.size(2),
              "y0 must be a contiguous (B, p, d) tensor");
  const auto p = y0.size(1);
  check(x, S, y, p);
  TORCH_CHECK(y0.scalar_type() == x.scalar_type(), "all tensors must share the input's dtype");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ar_forward", [&] {
    run<scalar_t>(x, S, y0.data_ptr<scalar_t>(), nullptr, y, p, /*reverse=*/false);
  });
}

// g (B, L, d) the output gradient (last dimension contiguous), St = [M_1^T; ..; M_p^T] (p d, d); writes
// gx (B, L, d), the gradient of x (gx_t = g_t + sum_j gx_{t+j} M_j^T), and g0 (B, p, d), that of y0.
void ar_backward(const at::Tensor& g, const at::Tensor& St, at::Tensor gx, at::Tensor g0) {
  TORCH_CHECK(g0.dim() == 3 && g0.is_contiguous() && g0.size(0) == g.size(0) && g0.size(2) == g.size(2),
              "g0 must be a contiguous (B, p, d) tensor");
  const auto p = g0.size(1);
  check(g, St, gx, p);
  TORCH_CHECK(g0.scalar_type() == g.scalar_type(), "all tensors must share the input's dtype");
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "ar_backward", [&] {
    run<scalar_t>(g, St, nullptr, g0.data_ptr<scalar_t>(), gx, p, /*reverse=*/true);
  });
}

}  // namespace

// Schemas here, the kernels for the CPU key only: torch.compile traces with fake tensors, for which
// lindy/kernels/ar_cpu.py registers shape-only implementations.
TORCH_LIBRARY(lindy_ar_cpu, m) {
  m.def("forward(Tensor x, Tensor S, Tensor y0, Tensor(a!) y) -> ()");
  m.def("backward(Tensor g, Tensor St, Tensor(a!) gx, Tensor(b!) g0) -> ()");
}

TORCH_LIBRARY_IMPL(lindy_ar_cpu, CPU, m) {
  m.impl("forward", &ar_forward);
  m.impl("backward", &ar_backward);
}
