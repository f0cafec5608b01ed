// The fused SDN's membrane prediction on the CPU, in the neurons' layout (B, L, H): time on dim 1.
//
// For every batch row b, time t and feature h, with the window w_j = x[b, t-k+j, h] (j = 0 .. k-1, the k
// inputs before t, oldest first; times before 0 come from the history, zeros without one):
//   h_c  = relu(sum_j W1[c, j] w_j / v_th + b1[c])                 c = 0 .. d-1   (conv1, strictly causal)
//   h2_c = relu((sum_e W2[c, e] h_e + b2[c]) + h_c)                               (conv2 plus the residual)
//   m    = sum_c (v_th w3[c]) h2_c + v_th b3                                      (conv3)
// which is v_th FusedSDN(x / v_th) with 1 / v_th folded into W1 and v_th into conv3 (the SDN's first layer
// is linear in x; exact for v_th a power of two). Each sum is accumulated from zero and its bias added
// after, as addmm does.
//
// Why a hand loop: the torch path unfolds windows and runs addmm -> addmm -> addmv over (B H L, d)
// matrices, each written to and read back from memory (about 100 bytes of traffic per output value for
// some 140 multiply-adds). Here the window of time row r = (b, t) is the k rows r-k .. r-1 of x, each H
// contiguous values, so the d hidden values of a block of features live in registers only: per block,
// d x NV vectors of accumulators, and the sliding window (k H values) stays in L1 from one row to the
// next. About 140 FMAs per output: compute-bound, some 12 cycles per output on one AVX-512 core.
// Vectorised over H; H not a multiple of the vector width ends with one zero-padded vector, so every
// feature goes through the same vector arithmetic whatever H or the time split (chunks and steps give
// the numbers of one call). Rows never interact: threads split the B L time rows. A caller with
// time contiguous (x the transpose of a (B, H, L) tensor) gets the same tile vectorised over time
// instead, with no transpose copy, and the same numbers lane by lane.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "simd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <type_traits>
#include <vector>

namespace {

using lindy::Simd;  // simd.h

constexpr int D = 8;  // hidden channels: the accumulators are registers, so d is a compile-time constant

// One call's operands: x (B, L, H), hist (B, k, H) the inputs at times -k .. -1 or null (zeros), out like
// x, all three contiguous (features last) or all transposes of contiguous (B, H, .) tensors (time last);
// the SDN's weights as given (W1 (d, k), b1 (d), W2 (d, d), b2 (d), w3 (d), b3).
template <typename T>
struct Args {
  const T* x;
  const T* hist;
  const T *W1, *b1, *W2, *b2, *w3;
  T b3, v_th;
  T* out;  // the membrane, or null (the spikes op: m lives in a per-row scratch only)
  int64_t L, H, K;
  T* spikes;  // the spikes op: s = H(m + x - v_th), strided as x; null for the membrane op
  T* grad;    // and g = surrogate'(m + x - v_th), or null (no gradient wanted)
  int surrogate;
  T alpha;
};

// The surrogates of lindy/kernels/surrogate.py, by their index in sdn_cpu.SURROGATE_CODES
enum Surrogate { kPiecewiseQuadratic = 0, kAtan = 1, kSigmoid = 2 };

// The neuron's epilogue over n consecutive values of one row (or series): v = (m + x) - v_th, s = 1[v >= 0],
// g = the surrogate's pseudo-derivative at v; v is summed in the torch path's order (spike(m + x - v_th)),
// so the spikes are the torch path's bit for bit. One pass over data in L1 (the row was just computed),
// where the torch path makes some ten passes over the whole (B, L, H) in memory.
template <typename T>
inline __attribute__((always_inline)) void fire(const Args<T>& a, const T* x, const T* m, int64_t n,
                                                T* s, T* g) {
  const T v_th = a.v_th;
  if (g == nullptr) {
    for (int64_t i = 0; i < n; ++i) s[i] = (m[i] + x[i]) - v_th >= T(0) ? T(1) : T(0);
    return;
  }
  // one pass for both outputs; the surrogates multiply by 1 / alpha (the torch path divides: g differs
  // from it by an ulp or two, the spikes not at all)
  const T al = a.alpha, inv = T(1) / al;
  if (a.surrogate == kPiecewiseQuadratic) {
    for (int64_t i = 0; i < n; ++i) {
      const T v = (m[i] + x[i]) - v_th;
      const T t = T(1) - (v < T(0) ? -v : v) * inv;
      s[i] = v >= T(0) ? T(1) : T(0);
      g[i] = (t > T(0) ? t : T(0)) * inv;
    }
  } else if (a.surrogate == kAtan) {
    const T c = T(3.14159265358979323846 / 2) * al, h = al / T(2);
    for (int64_t i = 0; i < n; ++i) {
      const T v = (m[i] + x[i]) - v_th;
      const T u = c * v;
      s[i] = v >= T(0) ? T(1) : T(0);
      g[i] = h / (T(1) + u * u);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const T v = (m[i] + x[i]) - v_th;
      const T sig = T(1) / (T(1) + std::exp(-al * v));
      s[i] = v >= T(0) ? T(1) : T(0);
      g[i] = al * sig * (T(1) - sig);
    }
  }
}

// the i-th broadcast weight vector of p (V named inside: as a template argument it would lose its
// under-alignment, and the load be compiled as an aligned one)
template <typename T, int Bytes>
inline __attribute__((always_inline)) typename Simd<T, Bytes>::V vec(const T* p, int64_t i) {
  using V = typename Simd<T, Bytes>::V;
  return *reinterpret_cast<const V*>(p + i * Simd<T, Bytes>::N);
}

// max(v, 0) that keeps NaN (as torch's relu does): NaN < 0 is false
template <typename V>
inline __attribute__((always_inline)) V relu(V v) {
  return v < V{} ? V{} : v;
}

// The weights as broadcast vectors, each scalar N times in a row (read from L1 as the FMAs' memory
// operands). Plain T storage, read through the under-aligned V: a vector type as a template argument
// (std::vector<V>, Weights<V>) would lose its aligned(sizeof(T)) attribute and be assumed 64-byte aligned.
template <typename T>
struct Weights {
  const T *w1, *b1, *w2, *b2, *w3, *b3;
  int64_t K;
};

// NV vectors of features [h, h + NV N) of one time row: rows[j] points at the window's row j (column 0).
template <typename T, int Bytes, int NV>
inline __attribute__((always_inline)) void tile(const T* const* rows, int64_t h, const Weights<T>& w,
                                                T* out) {
  using V = typename Simd<T, Bytes>::V;
  constexpr int N = Simd<T, Bytes>::N;
  V a[D][NV];
#pragma GCC unroll 8
  for (int c = 0; c < D; ++c)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) a[c][v] = V{};
  for (int64_t j = 0; j < w.K; ++j) {
    V r[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) r[v] = *reinterpret_cast<const V*>(rows[j] + h + v * N);
#pragma GCC unroll 8
    for (int c = 0; c < D; ++c) {
      const V wc = vec<T, Bytes>(w.w1, c * w.K + j);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) a[c][v] += wc * r[v];
    }
  }
#pragma GCC unroll 8
  for (int c = 0; c < D; ++c)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) a[c][v] = relu(a[c][v] + vec<T, Bytes>(w.b1, c));
  // conv2 with e outer: d x NV independent accumulation chains (with c outer, each of the d sums
  // would be one chain of d dependent FMAs); the same order of terms in every sum
  V f[D][NV];
#pragma GCC unroll 8
  for (int c = 0; c < D; ++c)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) f[c][v] = V{};
#pragma GCC unroll 8
  for (int e = 0; e < D; ++e)
#pragma GCC unroll 8
    for (int c = 0; c < D; ++c) {
      const V we = vec<T, Bytes>(w.w2, c * D + e);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) f[c][v] += we * a[e][v];
    }
  V m[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) m[v] = V{};
#pragma GCC unroll 8
  for (int c = 0; c < D; ++c)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      m[v] += vec<T, Bytes>(w.w3, c) * relu(f[c][v] + vec<T, Bytes>(w.b2, c) + a[c][v]);
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) *reinterpret_cast<V*>(out + h + v * N) = m[v] + vec<T, Bytes>(w.b3, 0);
}

// The weights as broadcast vectors (N copies each) in buf, 1 / v_th folded into W1 and v_th into conv3.
template <typename T, int N>
Weights<T> broadcast(const Args<T>& a, std::vector<T>& buf) {
  const int64_t K = a.K;
  buf.resize((D * K + D + D * D + D + D + 1) * N);
  T* p = buf.data();
  auto put = [&](T v) {
    std::fill(p, p + N, v);
    p += N;
  };
  Weights<T> w{};
  w.K = K;
  w.w1 = p;
  for (int64_t i = 0; i < D * K; ++i) put(a.W1[i] / a.v_th);
  w.b1 = p;
  for (int c = 0; c < D; ++c) put(a.b1[c]);
  w.w2 = p;
  for (int i = 0; i < D * D; ++i) put(a.W2[i]);
  w.b2 = p;
  for (int c = 0; c < D; ++c) put(a.b2[c]);
  w.w3 = p;
  for (int c = 0; c < D; ++c) put(a.w3[c] * a.v_th);
  w.b3 = p;
  put(a.b3 * a.v_th);
  return w;
}

// Features last, x (B, L, H) contiguous: time rows [r0, r1) of the flattened B L rows, each in blocks of
// NV vectors of features, then single vectors, then the last H mod N features through one zero-padded
// vector. The window of row r = (b, t) is rows r-k .. r-1 of x (or of the history / zeros before t = 0).
template <typename T, int Bytes, int NV>
inline __attribute__((always_inline)) void features_last(const Args<T>& a, int64_t r0, int64_t r1) {
  constexpr int N = Simd<T, Bytes>::N;
  const int64_t K = a.K, H = a.H, L = a.L;
  std::vector<T> wbuf;
  const Weights<T> w = broadcast<T, N>(a, wbuf);
  const int64_t tail = H % N, body = H - tail;
  // the zero row (times before 0 without a history), then the tail's window (k zero-padded vectors) and
  // its output vector
  const int64_t nzero = a.hist == nullptr ? H : 0;
  std::vector<T> scratch(nzero + (K + 1) * N, T(0));
  const T* zeros = scratch.data();
  T* tail_rows = scratch.data() + nzero;
  T* tail_out = tail_rows + K * N;
  std::vector<const T*> rows(K), trows(K);
  for (int64_t j = 0; j < K; ++j) trows[j] = tail_rows + j * N;
  std::vector<T> mrow(a.out ? 0 : H);  // the spikes op: one row's membrane

  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / L, t = r - b * L;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t tau = t - K + j;  // the time of window row j
      rows[j] = tau >= 0 ? a.x + (r - K + j) * H : a.hist ? a.hist + (b * K + K + tau) * H : zeros;
    }
    T* o = a.out ? a.out + r * H : mrow.data();
    int64_t h = 0;
    for (; h + NV * N <= body; h += NV * N) tile<T, Bytes, NV>(rows.data(), h, w, o);
    for (; h < body; h += N) tile<T, Bytes, 1>(rows.data(), h, w, o);
    if (tail) {
      for (int64_t j = 0; j < K; ++j) std::memcpy(tail_rows + j * N, rows[j] + body, tail * sizeof(T));
      tile<T, Bytes, 1>(trows.data(), 0, w, tail_out);
      std::memcpy(o + body, tail_out, tail * sizeof(T));
    }
    if (a.spikes) fire(a, a.x + r * H, o, H, a.spikes + r * H, a.grad ? a.grad + r * H : nullptr);
  }
}

// Time last, x the transpose of a contiguous (B, H, L) (as a channels-first caller passes it): series
// [r0, r1) of the B H series, each in blocks of NV N consecutive times. The same tile serves: "row" j of
// the window of the times [t0, t0 + NV N) is the vector of inputs at t0 - k + j onwards, so lane i sees
// x_{t0+i-k+j}. Blocks that reach before t = 0 (the history, k values per series) or past L (the last
// L mod N times) read a gathered, zero-padded copy.
template <typename T, int Bytes, int NV>
inline __attribute__((always_inline)) void time_last(const Args<T>& a, int64_t r0, int64_t r1) {
  constexpr int N = Simd<T, Bytes>::N, W = NV * N;
  const int64_t K = a.K, L = a.L;
  std::vector<T> wbuf;
  const Weights<T> w = broadcast<T, N>(a, wbuf);
  std::vector<T> scratch(K + W + N, T(0));
  T* tail_out = scratch.data() + K + W;
  std::vector<const T*> rows(K);
  std::vector<T> mseries(a.out ? 0 : L);  // the spikes op: one series' membrane
  for (int64_t r = r0; r < r1; ++r) {
    const T* xs = a.x + r * L;
    const T* hs = a.hist ? a.hist + r * K : nullptr;
    T* o = a.out ? a.out + r * L : mseries.data();
    // window rows of the block at t0, from x itself or from scratch[i] = the input at t0 - k + i
    auto window = [&](int64_t t0, int64_t width) {
      if (t0 >= K && t0 + width <= L) {
        for (int64_t j = 0; j < K; ++j) rows[j] = xs + t0 - K + j;
        return;
      }
      for (int64_t i = 0; i < K + width; ++i) {
        const int64_t tau = t0 - K + i;
        scratch[i] = tau < 0 ? (hs ? hs[K + tau] : T(0)) : tau < L ? xs[tau] : T(0);
      }
      for (int64_t j = 0; j < K; ++j) rows[j] = scratch.data() + j;
    };
    int64_t t0 = 0;
    for (; t0 + W <= L; t0 += W) {
      window(t0, W);
      tile<T, Bytes, NV>(rows.data(), 0, w, o + t0);
    }
    for (; t0 + N <= L; t0 += N) {
      window(t0, N);
      tile<T, Bytes, 1>(rows.data(), 0, w, o + t0);
    }
    if (t0 < L) {
      window(t0, N);
      tile<T, Bytes, 1>(rows.data(), 0, w, tail_out);
      std::memcpy(o + t0, tail_out, (L - t0) * sizeof(T));
    }
    if (a.spikes) fire(a, xs, o, L, a.spikes + r * L, a.grad ? a.grad + r * L : nullptr);
  }
}

template <typename T>
using RunFn = void (*)(const Args<T>&, int64_t, int64_t);

// One entry point per layout and instruction set, chosen once by the CPU it runs on. One vector per
// tile everywhere: its d hidden vectors and d conv2 sums take 16 registers. Measured on one thread of a
// 2.6 GHz AVX-512 Xeon (B = 64, L = 1024, H = 128, float32, features last): 39 ms with one vector,
// 50 ms with two (spills), 61 ms with two and conv2 summed c outer (d dependent chains).
#define LINDY_RUN(NAME, TARGET, T, BYTES, NV)                        \
  TARGET void NAME##_fl(const Args<T>& a, int64_t r0, int64_t r1) { \
    features_last<T, BYTES, NV>(a, r0, r1);                          \
  }                                                                  \
  TARGET void NAME##_tl(const Args<T>& a, int64_t r0, int64_t r1) { \
    time_last<T, BYTES, NV>(a, r0, r1);                              \
  }
#define LINDY_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define LINDY_AVX2 __attribute__((target("avx2,fma")))
LINDY_RUN(avx512_f32, LINDY_AVX512, float, 64, 1)
LINDY_RUN(avx2_f32, LINDY_AVX2, float, 32, 1)
LINDY_RUN(base_f32, , float, 16, 1)
LINDY_RUN(avx512_f64, LINDY_AVX512, double, 64, 1)
LINDY_RUN(avx2_f64, LINDY_AVX2, double, 32, 1)
LINDY_RUN(base_f64, , double, 16, 1)
#undef LINDY_RUN

template <typename T>
RunFn<T> pick(bool features) {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if constexpr (std::is_same_v<T, float>) {
    if (features) return avx512 ? avx512_f32_fl : avx2 ? avx2_f32_fl : base_f32_fl;
    return avx512 ? avx512_f32_tl : avx2 ? avx2_f32_tl : base_f32_tl;
  } else {
    if (features) return avx512 ? avx512_f64_fl : avx2 ? avx2_f64_fl : base_f64_fl;
    return avx512 ? avx512_f64_tl : avx2 ? avx2_f64_tl : base_f64_tl;
  }
}

void check_vector(const at::Tensor& t, const char* name, int64_t n, const at::Tensor& x) {
  TORCH_CHECK(t.is_contiguous() && t.numel() == n, name, " must be a contiguous tensor of ", n, " values");
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == x.scalar_type(), name,
              " must be a CPU tensor of x's dtype");
}

// an output of x's shape, dtype and layout
void check_like(const at::Tensor& t, const char* name, const at::Tensor& x) {
  const bool layout = x.is_contiguous() ? t.is_contiguous() : t.transpose(1, 2).is_contiguous();
  TORCH_CHECK(t.sizes() == x.sizes() && layout && t.scalar_type() == x.scalar_type() && t.device().is_cpu(),
              name, " must be a CPU tensor of x's shape, dtype and layout");
}

// Checks x, history, the weights and the outputs (name, tensor or null), then runs the loop with the
// outputs fill sets in a (out, or spikes and grad).
// x (B, L, H), either contiguous (features last) or the transpose of a contiguous (B, H, L) (time last);
// history (B, k, H) laid out as x, or None (zeros); W1 (d, k), b1 (d), W2 (d, d), b2 (d), w3 (d), b3 (1),
// d = 8.
template <typename Fill>
void run_sdn(const at::Tensor& x, const std::optional<at::Tensor>& history, const at::Tensor& W1,
             const at::Tensor& b1, const at::Tensor& W2, const at::Tensor& b2, const at::Tensor& w3,
             const at::Tensor& b3, double v_th,
             std::initializer_list<std::pair<const char*, const at::Tensor*>> outputs, const Fill& fill) {
  TORCH_CHECK(x.dim() == 3 && x.device().is_cpu(), "x must be a (B, L, H) CPU tensor");
  const bool features = x.is_contiguous();
  TORCH_CHECK(features || x.transpose(1, 2).is_contiguous(),
              "x must be a contiguous (B, L, H) tensor or the transpose of a contiguous (B, H, L) one");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "x must be float32 or float64");
  TORCH_CHECK(W1.dim() == 2 && W1.size(0) == D && W1.size(1) >= 1,
              "W1 must be (d, k) with d = 8 (the channels this kernel is compiled for) and k >= 1");
  const int64_t K = W1.size(1), B = x.size(0), L = x.size(1), H = x.size(2);
  check_vector(W1, "W1", D * K, x);
  check_vector(b1, "b1", D, x);
  check_vector(W2, "W2", D * D, x);
  check_vector(b2, "b2", D, x);
  check_vector(w3, "w3", D, x);
  check_vector(b3, "b3", 1, x);
  const bool has_hist = history.has_value() && history->defined();
  if (has_hist) {
    const auto& hi = *history;
    TORCH_CHECK(hi.dim() == 3 && hi.size(0) == B && hi.size(1) == K && hi.size(2) == H &&
                    (features ? hi.is_contiguous() : hi.transpose(1, 2).is_contiguous()) &&
                    hi.scalar_type() == x.scalar_type() && hi.device().is_cpu(),
                "history must be a (B, k, H) CPU tensor of x's dtype and layout (contiguous, or the "
                "transpose of a contiguous (B, H, k))");
  }
  for (const auto& [name, t] : outputs)
    if (t != nullptr) check_like(*t, name, x);
  TORCH_CHECK(v_th > 0, "v_th must be > 0");
  if (B * L * H == 0) return;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdn_membrane", [&] {
    static const RunFn<scalar_t> run_fl = pick<scalar_t>(true), run_tl = pick<scalar_t>(false);
    Args<scalar_t> a{x.data_ptr<scalar_t>(),
                     has_hist ? history->data_ptr<scalar_t>() : nullptr,
                     W1.data_ptr<scalar_t>(),
                     b1.data_ptr<scalar_t>(),
                     W2.data_ptr<scalar_t>(),
                     b2.data_ptr<scalar_t>(),
                     w3.data_ptr<scalar_t>(),
                     b3.data_ptr<scalar_t>()[0],
                     static_cast<scalar_t>(v_th),
                     nullptr,
                     L,
                     H,
                     K,
                     nullptr,
                     nullptr,
                     kPiecewiseQuadratic,
                     scalar_t(1)};
    fill(a);
    // threads split the time rows (features last) or the series (time last); a share should be worth
    // waking a thread for: some 16K outputs (about 0.1 ms) at least
    const int64_t n = features ? B * L : B * H, per = features ? H : L;
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(per, 1));
    const RunFn<scalar_t> run = features ? run_fl : run_tl;
    at::parallel_for(0, n, grain, [&](int64_t r0, int64_t r1) { run(a, r0, r1); });
  });
}

// writes out (B, L, H), strided as x, = v_th FusedSDN(x / v_th) with time on dim 1.
void membrane(const at::Tensor& x, const std::optional<at::Tensor>& history, const at::Tensor& W1,
              const at::Tensor& b1, const at::Tensor& W2, const at::Tensor& b2, const at::Tensor& w3,
              const at::Tensor& b3, double v_th, at::Tensor out) {
  run_sdn(x, history, W1, b1, W2, b2, w3, b3, v_th, {{"out", &out}}, [&](auto& a) {
    a.out = out.data_ptr<std::remove_pointer_t<decltype(a.out)>>();
  });
}

// The SDN neuron in one pass: with m the membrane above, writes spikes = 1[(m + x) - v_th >= 0] and, when
// grad is given, grad = g((m + x) - v_th), g the surrogate (0 piecewise_quadratic, 1 atan, 2 sigmoid) of
// width/slope alpha; m itself is never written to memory.
void spikes(const at::Tensor& x, const std::optional<at::Tensor>& history, const at::Tensor& W1,
            const at::Tensor& b1, const at::Tensor& W2, const at::Tensor& b2, const at::Tensor& w3,
            const at::Tensor& b3, double v_th, int64_t surrogate, double alpha, at::Tensor spikes,
            const std::optional<at::Tensor>& grad) {
  const bool has_grad = grad.has_value() && grad->defined();
  TORCH_CHECK(surrogate >= kPiecewiseQuadratic && surrogate <= kSigmoid,
              "surrogate must be 0 (piecewise_quadratic), 1 (atan) or 2 (sigmoid), got ", surrogate);
  TORCH_CHECK(alpha > 0, "alpha must be > 0, got ", alpha);
  run_sdn(x, history, W1, b1, W2, b2, w3, b3, v_th, {{"spikes", &spikes}, {"grad", has_grad ? &*grad : nullptr}},
          [&](auto& a) {
    using T = std::remove_pointer_t<decltype(a.out)>;
    a.spikes = spikes.data_ptr<T>();
    a.grad = has_grad ? grad->data_ptr<T>() : nullptr;
    a.surrogate = static_cast<int>(surrogate);
    a.alpha = static_cast<T>(alpha);
  });
}

}  // namespace

// The schema here, the kernel for the CPU key only: torch.compile traces with fake tensors, for which
// lindy/kernels/sdn_cpu.py registers a shape-only implementation.
TORCH_LIBRARY(lindy_sdn_cpu, m) {
  m.def(
      "membrane(Tensor x, Tensor? history, Tensor W1, Tensor b1, Tensor W2, Tensor b2, Tensor w3, Tensor b3, "
      "float v_th, Tensor(a!) out) -> ()");
  m.def(
      "spikes(Tensor x, Tensor? history, Tensor W1, Tensor b1, Tensor W2, Tensor b2, Tensor w3, Tensor b3, "
      "float v_th, int surrogate, float alpha, Tensor(a!) spikes, Tensor(b!)? grad) -> ()");
}

TORCH_LIBRARY_IMPL(lindy_sdn_cpu, CPU, m) { 
  m.impl("membrane", &membrane);
  m.impl("spikes", &spikes);
}
