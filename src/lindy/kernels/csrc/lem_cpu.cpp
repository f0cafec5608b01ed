// LEM recurrence on the CPU: the whole time loop of the forward and of the hand-written backward in C++.
//
// Why C++: per step the cell is two small matmuls and ~10 elementwise ops on (B, d) tiles. From Python
// each op costs a dispatch, a view and often a fresh temporary, several times the arithmetic. Here a step
// is two BLAS calls on raw pointers (the BLAS PyTorch links, through its Fortran symbols sgemm_/dgemm_)
// and two fused, vectorised loops (sigmoid, tanh and the state update at once) over tiles in cache.
// Threads split the batch (rows never interact), each running the whole time loop on its share.
//
// tanh comes from the sigmoid: tanh(q) = 2 sigmoid(2 q) - 1, so the caller passes the q rows of G and of the
// forward weights already doubled (Wf = W with its q_z rows doubled, Wyf = 2 Wy, both passed transposed); one sigmoid call covers
// [p_y | p_z | q_z]. The error is an absolute half-ulp of 1 (6e-8 in float32), which is the rounding of
// values of order one anyway. The backward uses the plain weights W, Wy.
//
// Layout (time-major, contiguous; see lindy/kernels/lem_scan.py):
//   G  (L, B, 4d)  rows [p_y | p_z | 2 q_z | 2 q_y], the input projections with all biases folded in,
//                  made step by step by the forward, which then overwrites them with [s_y | s_z | tanh q_z | tanh q_y] (s = sigmoid), the
//                  values the backward needs.
//   ys, zs (L + 1, B, d), row 0 holding the initial state.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "flush_subnormals.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc);
}

namespace {

// Row-major C (m x n, ldc) += op(A) (m x k) op(B) (k x n): BLAS is column-major, so it computes C^T =
// op(B)^T op(A)^T with the operands swapped.
template <typename T>
void gemm_acc(bool trans_a, bool trans_b, int m, int n, int k, const T* A, int lda, const T* Bm, int ldb, T* C,
              int ldc) {
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  const T one = 1;
  if constexpr (std::is_same_v<T, float>)
    sgemm_(&tb, &ta, &n, &m, &k, &one, Bm, &ldb, A, &lda, &one, C, &ldc);
  else
    dgemm_(&tb, &ta, &n, &m, &k, &one, Bm, &ldb, A, &lda, &one, C, &ldc);
}

// W, Wy: the backward's (3d, d) and (d, d), or with transposed=true the forward's (d, 3d) and (d, d).
void check_layout(const at::Tensor& G, const at::Tensor& W, const at::Tensor& Wy, const at::Tensor& ys,
                  const at::Tensor& zs, bool transposed = false) {
  TORCH_CHECK(G.dim() == 3 && G.is_contiguous(), "G must be a contiguous (L, B, 4d) tensor");
  const auto L = G.size(0), B = G.size(1), d = G.size(2) / 4;
  TORCH_CHECK(G.size(2) == 4 * d, "G's last dimension must be 4d");
  if (transposed) {
    TORCH_CHECK(W.is_contiguous() && W.sizes() == at::IntArrayRef({d, 3 * d}), "WfT must be contiguous (d, 3d)");
  } else {
    TORCH_CHECK(W.is_contiguous() && W.sizes() == at::IntArrayRef({3 * d, d}), "W must be contiguous (3d, d)");
  }
  TORCH_CHECK(Wy.is_contiguous() && Wy.sizes() == at::IntArrayRef({d, d}), "Wy must be contiguous (d, d)");
  TORCH_CHECK(ys.is_contiguous() && ys.sizes() == at::IntArrayRef({L + 1, B, d}), "ys must be (L+1, B, d)");
  TORCH_CHECK(zs.is_contiguous() && zs.sizes() == at::IntArrayRef({L + 1, B, d}), "zs must be (L+1, B, d)");
  TORCH_CHECK(G.device().is_cpu(), "lem_cpu runs on CPU tensors");
  TORCH_CHECK(B * 4 * d < (int64_t{1} << 31), "B * 4d must fit a BLAS int");
  for (const auto* t : {&W, &Wy, &ys, &zs})
    TORCH_CHECK(t->scalar_type() == G.scalar_type(), "all tensors must share G's dtype");
}

// exp for float32 written to vectorise: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a degree-6
// polynomial for e^r (the Cephes coefficients, ~1 ulp), 2^n through the exponent bits. float64 uses std::exp.
inline float exp_vec(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const float t = x * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(shifter) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}
inline double exp_vec(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_vec(-x));
}

// The two elementwise halves of a forward step over a (B, d) tile (G's row stride ld), after each matmul:
//   gates: s_y = sig(p_y), s_z = sig(p_z), t_z = 2 sig(2 q_z) - 1 = tanh q_z,  z_n = z + dt s_z (t_z - z)
//   output: t_y = 2 sig(2 q_y) - 1 = tanh q_y,  y_n = y + dt s_y (t_y - y)
// The activations are written back over G for the backward.
template <typename T>
inline __attribute__((always_inline)) void gates_z(T* __restrict g, const T* __restrict z, T* __restrict z_next,
                                                   int64_t B, int64_t d, int64_t ld, T dt) {
  for (int64_t b = 0; b < B; ++b) {
    T* gb = g + b * ld;
    const T* zb = z + b * d;
    T* zn = z_next + b * d;
    for (int64_t j = 0; j < d; ++j) {
      const T sy = sigmoid(gb[j]), sz = sigmoid(gb[d + j]), tz = T(2) * sigmoid(gb[2 * d + j]) - T(1);
      gb[j] = sy;
      gb[d + j] = sz;
      gb[2 * d + j] = tz;
      zn[j] = zb[j] + dt * sz * (tz - zb[j]);
    }
  }
}

template <typename T>
inline __attribute__((always_inline)) void output_y(T* __restrict g, const T* __restrict y, T* __restrict y_next,
                                                    int64_t B, int64_t d, int64_t ld, T dt) {
  for (int64_t b = 0; b < B; ++b) {
    T* gb = g + b * ld;
    const T* yb = y + b * d;
    T* yn = y_next + b * d;
    for (int64_t j = 0; j < d; ++j) {
      const T ty = T(2) * sigmoid(gb[3 * d + j]) - T(1);
      gb[3 * d + j] = ty;
      yn[j] = yb[j] + dt * gb[j] * (ty - yb[j]);
    }
  }
}

// float32 copies compiled for AVX-512, AVX2 and the baseline, chosen at load time by the CPU (GCC ifunc).
#define LINDY_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
LINDY_CPU_CLONES void gates_z_f32(float* g, const float* z, float* zn, int64_t B, int64_t d, int64_t ld, float dt) {
  gates_z<float>(g, z, zn, B, d, ld, dt);
}
LINDY_CPU_CLONES void output_y_f32(float* g, const float* y, float* yn, int64_t B, int64_t d, int64_t ld,
                                   float dt) {
  output_y<float>(g, y, yn, B, d, ld, dt);
}
void gates_z_step(float* g, const float* z, float* zn, int64_t B, int64_t d, int64_t ld, float dt) {
  gates_z_f32(g, z, zn, B, d, ld, dt);
}
void gates_z_step(double* g, const double* z, double* zn, int64_t B, int64_t d, int64_t ld, double dt) {
  gates_z<double>(g, z, zn, B, d, ld, dt);
}
void output_y_step(float* g, const float* y, float* yn, int64_t B, int64_t d, int64_t ld, float dt) {
  output_y_f32(g, y, yn, B, d, ld, dt);
}
void output_y_step(double* g, const double* y, double* yn, int64_t B, int64_t d, int64_t ld, double dt) {
  output_y<double>(g, y, yn, B, d, ld, dt);
}

// The forward over rows [b0, b0 + nb) of the batch (one thread's share; rows never interact).
template <typename T>
void forward_rows(const T* x_rows, int64_t d_in, const T* VfT, const T* bias, T* G, const T* WfT, const T* WyfT,
                  T* ys, T* zs, int64_t L, int64_t B, int64_t d, T dt, int64_t b0, int64_t nb) {
  const int m = nb, dd = d, ld = 4 * d, k_in = d_in;
  for (int64_t n = 0; n < L; ++n) {
    T* g = G + (n * B + b0) * ld;
    const T* y = ys + (n * B + b0) * d;
    T* z_next = zs + ((n + 1) * B + b0) * d;
    if (d_in > 0) {  // this step's input projections, made here so that G is written once, in cache
      for (int64_t r = 0; r < nb; ++r) std::copy(bias, bias + ld, g + r * ld);
      gemm_acc<T>(false, false, m, ld, k_in, x_rows + (n * B + b0) * d_in, k_in, VfT, ld, g, ld);  // += x_n Vf^T
    }
    gemm_acc<T>(false, false, m, 3 * dd, dd, y, dd, WfT, 3 * dd, g, ld);  // [p_y | p_z | 2 q_z] += y Wf^T
    gates_z_step(g, zs + (n * B + b0) * d, z_next, nb, d, ld, dt);
    gemm_acc<T>(false, false, m, dd, dd, z_next, dd, WyfT, dd, g + 3 * d, ld);  // 2 q_y += z_n Wyf^T
    output_y_step(g, y, ys + ((n + 1) * B + b0) * d, nb, d, ld, dt);
  }
}

// Batch rows are independent, so the threads split the batch and each runs the whole time loop on its
// rows with single-threaded BLAS (MKL and OpenBLAS run sequentially inside a parallel region): no
// synchronisation per step, where a threaded BLAS call on a (B, d) tile pays a fork and a join per matmul.
// Shares below kMinRows rows would make the matmuls too thin to pay for a second thread.
constexpr int64_t kMinRows = 8;

template <typename F>
void for_row_shares(int64_t B, const F& body) {
  at::parallel_for(0, B, kMinRows, [&](int64_t b0, int64_t b1) {
    lindy::FlushSubnormals flush;  // gradients from one late step underflow on their way back in time
    body(b0, b1 - b0);
  });
}

template <typename T>
void forward_impl(const T* x_rows, int64_t d_in, const T* VfT, const T* bias, T* G, const T* WfT, const T* WyfT,
                  T* ys, T* zs, int64_t L, int64_t B, int64_t d, T dt) {
  for_row_shares(B, [&](int64_t b0, int64_t nb) {
    forward_rows<T>(x_rows, d_in, VfT, bias, G, WfT, WyfT, ys, zs, L, B, d, dt, b0, nb);
  });
}

// x_rows (L B, d_in) time-major inputs; VfT (d_in, 4d) and bias (4d): G's input weights and biases with the
// q columns doubled; G (L, B, 4d) is written here. With d_in = 0 (x_rows (L B, 0)) G arrives filled: for
// wide inputs one large matmul before the loop beats L small ones; WfT, WyfT: the forward weights transposed and contiguous,
// (d, 3d) and (d, d): BLAS runs a row-major product with an untransposed right operand markedly faster
// (measured 18 vs 30 us at B=32, d=128).
void lem_forward(const at::Tensor& x_rows, const at::Tensor& VfT, const at::Tensor& bias, at::Tensor G,
                 const at::Tensor& WfT, const at::Tensor& WyfT, at::Tensor ys, at::Tensor zs, double dt) {
  check_layout(G, WfT, WyfT, ys, zs, /*transposed=*/true);
  const auto L = G.size(0), B = G.size(1), d = G.size(2) / 4;
  TORCH_CHECK(x_rows.is_contiguous() && x_rows.dim() == 2 && x_rows.size(0) == L * B,
              "x_rows must be contiguous (L B, d_in)");
  const auto d_in = x_rows.size(1);
  TORCH_CHECK(VfT.is_contiguous() && VfT.sizes() == at::IntArrayRef({d_in, 4 * d}),
              "VfT must be contiguous (d_in, 4d)");
  TORCH_CHECK(bias.is_contiguous() && bias.numel() == 4 * d, "bias must have 4d entries");
  for (const auto* t : {&x_rows, &VfT, &bias})
    TORCH_CHECK(t->scalar_type() == G.scalar_type(), "all tensors must share G's dtype");
  AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "lem_forward", [&] {
    forward_impl<scalar_t>(x_rows.data_ptr<scalar_t>(), d_in, VfT.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>(),
                           G.data_ptr<scalar_t>(), WfT.data_ptr<scalar_t>(), WyfT.data_ptr<scalar_t>(),
                           ys.data_ptr<scalar_t>(), zs.data_ptr<scalar_t>(), L, B, d, static_cast<scalar_t>(dt));
  });
}

// One gate's backward over a (B, d) tile. With a = dt s, the gate's output o = x + a (t - x):
//   d(pre-activation of t) = dx a (1 - t^2)
//   d(pre-activation of s) = dx a (1 - s) (t - x)
//   dx <- dx (1 - a)                                     the carry to the previous step
// s, t are read from G's row layout, their gradients written at the same offsets of the tile dg; with
// kExtra the incoming dx is dx_in + extra (the output gradient of this step).
template <typename T, bool kExtra>
inline __attribute__((always_inline)) void gate_backward(const T* dx_in, T* dx_out, const T* __restrict s_in, const T* __restrict t_in,
                   T* __restrict ds_out, T* __restrict dt_out, const T* __restrict x, const T* __restrict extra,
                   int64_t extra_ld, int64_t B, int64_t d, int64_t ld, T dt) {
  for (int64_t b = 0; b < B; ++b) {
    const T* s = s_in + b * ld;
    const T* t = t_in + b * ld;
    T* ds = ds_out + b * ld;
    T* dtt = dt_out + b * ld;
    const T* xp = x + b * d;
    const T* g = dx_in + b * d;
    T* go = dx_out + b * d;  // may be g itself: each element is read before it is written
    const T* e = extra + b * extra_ld;
#pragma GCC ivdep
    for (int64_t j = 0; j < d; ++j) {
      T gj = g[j];
      if constexpr (kExtra) gj += e[j];
      const T sj = s[j], tj = t[j], a = dt * sj;
      dtt[j] = gj * a * (T(1) - tj * tj);
      ds[j] = gj * a * (T(1) - sj) * (tj - xp[j]);
      go[j] = gj * (T(1) - a);
    }
  }
}

LINDY_CPU_CLONES void gate_backward_f32(bool extra_on, const float* dx_in, float* dx_out, const float* s,
                                        const float* t, float* ds, float* dtt, const float* x, const float* extra,
                                        int64_t extra_ld, int64_t B, int64_t d, int64_t ld, float dt) {
  if (extra_on)
    gate_backward<float, true>(dx_in, dx_out, s, t, ds, dtt, x, extra, extra_ld, B, d, ld, dt);
  else
    gate_backward<float, false>(dx_in, dx_out, s, t, ds, dtt, x, extra, extra_ld, B, d, ld, dt);
}

template <bool kExtra>
void gate_backward_step(const float* dx_in, float* dx_out, const float* s, const float* t, float* ds, float* dtt,
                        const float* x, const float* extra, int64_t extra_ld, int64_t B, int64_t d, int64_t ld,
                        float dt) {
  gate_backward_f32(kExtra, dx_in, dx_out, s, t, ds, dtt, x, extra, extra_ld, B, d, ld, dt);
}

template <bool kExtra>
void gate_backward_step(const double* dx_in, double* dx_out, const double* s, const double* t, double* ds,
                        double* dtt, const double* x, const double* extra, int64_t extra_ld, int64_t B, int64_t d,
                        int64_t ld, double dt) {
  gate_backward<double, kExtra>(dx_in, dx_out, s, t, ds, dtt, x, extra, extra_ld, B, d, ld, dt);
}

// Asks for `len` elements from p to be brought into cache (64-byte lines) ahead of use.
template <typename T>
inline void prefetch(const T* p, int64_t len) {
  for (int64_t j = 0; j < len; j += 64 / sizeof(T)) __builtin_prefetch(p + j, 0, 3);
}

// One thread's share of the backward: batch rows [b0, b0 + nb), all L steps, walked from the end in blocks
// of `block` steps. Per step it writes the gradients of [p_y | p_z | q_z | q_y] into its own tile
// (block nb, 4d) and copies the rows the weight gradients pair them with (y_{n-1}, z_n, x_n) into tiles
// alike; per block it folds the tiles into its own weight and input-weight gradients with a few matmuls.
// So no (L, B, 4d) gradient is ever allocated, the tiles stay in this core's cache, and the threads never
// wait for each other: their gradients are summed once, at the end.
template <typename T>
struct BackwardShare {
  const T *G, *dY, *W, *Wy, *ys, *zs, *x_rows, *Vp;
  int64_t sl, sb, L, B, d, d_in, block;
  T dt;
  T *cur, *next, *dz;  // the carries at rows b0 of the (B, d) tiles
  T *dWt, *dWyt, *dbias, *dVp, *dx_rows;  // this share's own accumulators (dWt (d, 3d), dWyt (d, d)); dx rows
  T *tile, *ytile, *ztile, *xtile;        // (block nb, 4d | d | d | d_in) scratch

  void run(int64_t b0, int64_t nb) {
    const int m = nb, dd = d, ld = 4 * d, k_in = d_in;
    for (int64_t hi = L; hi > 0; hi -= block) {
      const int64_t lo = std::max<int64_t>(0, hi - block);
      for (int64_t n = hi - 1; n >= lo; --n) {
        const T* g = G + (n * B + b0) * ld;
        const T* y = ys + (n * B + b0) * d;
        const T* z = zs + (n * B + b0) * d;
        const int64_t row = (n - lo) * nb;
        T* dg = tile + row * ld;
        if (n > 0) {  // the walk runs down through memory, which hardware prefetchers follow poorly
          prefetch(g - B * ld, nb * ld);
          prefetch(y - B * d, nb * d);
          prefetch(z - B * d, nb * d);
          for (int64_t r = 0; r < nb; ++r) prefetch(dY + (n - 1) * sl + (b0 + r) * sb, d);
        }
        std::copy(y, y + nb * d, ytile + row * d);
        std::copy(z + B * d, z + B * d + nb * d, ztile + row * d);
        std::copy(x_rows + (n * B + b0) * d_in, x_rows + (n * B + b0 + nb) * d_in, xtile + row * d_in);
        // the y gate (s_y at 0, tanh q_y at 3d), its incoming gradient cur + dY_n
        gate_backward_step<true>(cur, next, g, g + 3 * d, dg, dg + 3 * d, y, dY + n * sl + b0 * sb, sb, nb, d, ld,
                                 dt);
        gemm_acc<T>(false, false, m, dd, dd, dg + 3 * d, ld, Wy, dd, dz, dd);  // dz += dq_y Wy
        // the z gate (s_z at d, tanh q_z at 2d), in place on dz
        gate_backward_step<false>(dz, dz, g + d, g + 2 * d, dg + d, dg + 2 * d, z, nullptr, 0, nb, d, ld, dt);
        gemm_acc<T>(false, false, m, dd, 3 * dd, dg, ld, W, dd, next, dd);  // dy_{n-1} = next + [dp_y|dp_z|dq_z] W
        std::swap(cur, next);
        if (d_in > 0) {  // dx_n = dG_n Vp
          T* dx = dx_rows + (n * B + b0) * d_in;
          std::fill(dx, dx + nb * d_in, T(0));
          gemm_acc<T>(false, false, m, k_in, ld, dg, ld, Vp, k_in, dx, k_in);
        }
      }
      // fold the block: dW^T += Y^T dG[:, :3d], dWy^T += Z^T dG[:, 3d:], dVp += dG^T X, dbias += 1^T dG
      const int rows = (hi - lo) * nb;
      gemm_acc<T>(true, false, dd, 3 * dd, rows, ytile, dd, tile, ld, dWt, 3 * dd);
      gemm_acc<T>(true, false, dd, dd, rows, ztile, dd, tile + 3 * d, ld, dWyt, dd);
      if (d_in > 0) gemm_acc<T>(true, false, ld, k_in, rows, tile, ld, xtile, k_in, dVp, k_in);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < ld; ++j) dbias[j] += tile[r * ld + j];
    }
  }
};

// The backward (see BackwardShare).
//   G: the forward's saved gates; ys, zs: its states; x_rows (L B, d_in), Vp (4d, d_in): its input rows and
//   reordered input weights. W, Wy: the plain weights. dYt: (L, B, d) time-major view of the output
//   gradient (last dim contiguous). dy, dz: (B, d) contiguous, the gradients at y_L, z_L; on return, those
//   at y_0, z_0. Outputs, all overwritten: dW (3d, d), dWy (d, d), dbias (4d) = the gradient of G's bias
//   row, dVp (4d, d_in), dx_rows (L B, d_in). block: steps per fold.
void lem_backward(const at::Tensor& G, const at::Tensor& dYt, const at::Tensor& W, const at::Tensor& Wy,
                  const at::Tensor& ys, const at::Tensor& zs, const at::Tensor& x_rows, const at::Tensor& Vp,
                  at::Tensor dy, at::Tensor dz, at::Tensor dW, at::Tensor dWy, at::Tensor dbias,
                  at::Tensor dx_rows, at::Tensor dVp, double dt, int64_t block) {
  check_layout(G, W, Wy, ys, zs);
  const auto L = G.size(0), B = G.size(1), d = G.size(2) / 4;
  TORCH_CHECK(dYt.sizes() == at::IntArrayRef({L, B, d}) && dYt.stride(2) == 1 &&
                  dYt.scalar_type() == G.scalar_type(),
              "dYt must be (L, B, d) with a contiguous last dimension");
  TORCH_CHECK(dy.is_contiguous() && dz.is_contiguous() && dy.sizes() == at::IntArrayRef({B, d}) &&
                  dz.sizes() == dy.sizes(),
              "dy, dz must be contiguous (B, d)");
  TORCH_CHECK(x_rows.is_contiguous() && Vp.is_contiguous() && dx_rows.is_contiguous() && dVp.is_contiguous(),
              "x_rows, Vp, dx_rows and dVp must be contiguous");
  TORCH_CHECK(x_rows.dim() == 2 && x_rows.size(0) == L * B && Vp.size(0) == 4 * d &&
                  Vp.size(1) == x_rows.size(1) && dx_rows.sizes() == x_rows.sizes() && dVp.sizes() == Vp.sizes(),
              "x_rows (L B, d_in), Vp (4d, d_in) and their gradients must match");
  TORCH_CHECK(block >= 1, "block must be >= 1");
  TORCH_CHECK(dW.sizes() == W.sizes() && dWy.sizes() == Wy.sizes() && dbias.numel() == 4 * d,
              "dW, dWy, dbias must match W, Wy and G's bias row");
  const auto d_in = x_rows.size(1);
  block = std::min(block, L);
  // one set of accumulators and scratch tiles per thread, summed after the parallel region
  const int64_t shares = std::max<int64_t>(1, at::get_num_threads());
  const int64_t scratch = block * (4 * d + 2 * d + d_in);  // per batch row
  auto acc = at::zeros({shares, d * 3 * d + d * d + 4 * d + 4 * d * d_in}, G.options());
  auto work = at::empty({B * scratch}, G.options());
  // The y carry ping-pongs between two (B, d) tiles: next = cur (1 - a_y) + [dp_y | dp_z | dq_z] W, the
  // matmul accumulating in place, so that no step copies a tile.
  auto spare = at::empty_like(dy);
  AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "lem_backward", [&] {
    using T = scalar_t;
    for_row_shares(B, [&](int64_t b0, int64_t nb) {
      T* a = acc.data_ptr<T>() + at::get_thread_num() * acc.size(1);
      T* w = work.data_ptr<T>() + b0 * scratch;
      BackwardShare<T> share{G.data_ptr<T>(), dYt.data_ptr<T>(), W.data_ptr<T>(), Wy.data_ptr<T>(),
                             ys.data_ptr<T>(), zs.data_ptr<T>(), x_rows.data_ptr<T>(), Vp.data_ptr<T>(),
                             dYt.stride(0), dYt.stride(1), L, B, d, d_in, block, static_cast<T>(dt),
                             dy.data_ptr<T>() + b0 * d, spare.data_ptr<T>() + b0 * d, dz.data_ptr<T>() + b0 * d,
                             a, a + 3 * d * d, a + 4 * d * d, a + 4 * d * d + 4 * d, dx_rows.data_ptr<T>(),
                             w, w + nb * block * 4 * d, w + nb * block * 5 * d, w + nb * block * 6 * d};
      share.run(b0, nb);
    });
  });
  if (L % 2) dy.copy_(spare);  // every share swapped its carry tiles L times
  auto total = acc.sum(0);
  dW.copy_(total.narrow(0, 0, 3 * d * d).view({d, 3 * d}).t());
  dWy.copy_(total.narrow(0, 3 * d * d, d * d).view({d, d}).t());
  dbias.copy_(total.narrow(0, 4 * d * d, 4 * d));
  dVp.copy_(total.narrow(0, 4 * d * d + 4 * d, 4 * d * d_in).view({4 * d, d_in}));
}

}  // namespace

// Schemas here, the kernels for the CPU key only: torch.compile traces with fake tensors, for which
// lindy/kernels/lem_cpu.py registers shape-only implementations.
TORCH_LIBRARY(lindy_lem_cpu, m) {
  m.def(
      "forward(Tensor x_rows, Tensor VfT, Tensor bias, Tensor(a!) G, Tensor WfT, Tensor WyfT, Tensor(b!) ys, "
      "Tensor(c!) zs, float dt) -> ()");
  m.def(
      "backward(Tensor G, Tensor dYt, Tensor W, Tensor Wy, Tensor ys, Tensor zs, Tensor x_rows, Tensor Vp, "
      "Tensor(a!) dy, Tensor(b!) dz, Tensor(c!) dW, Tensor(d!) dWy, Tensor(e!) dbias, Tensor(f!) dx_rows, "
      "Tensor(g!) dVp, float dt, int block) -> ()");
}

TORCH_LIBRARY_IMPL(lindy_lem_cpu, CPU, m) {
  m.impl("forward", &lem_forward);
  m.impl("backward", &lem_backward);
}
