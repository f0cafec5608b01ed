// LEM recurrence on the CPU: the whole time loop of the forward and of the hand-written backward in C++.
//
// Why C++: per step the cell is two small matmuls and ~10 elementwise ops on (B, d) tiles. From Python
// each op costs a dispatch plus a fresh (B, d) temporary; here the elementwise part of a step is two fused
// loops over tiles that stay in cache, and the matmuls are BLAS calls through ATen (addmm_).
//
// Layout (time-major, every tensor contiguous in its last dimension; see lindy/layers/lem_scan.py):
//   G  (L, B, 4d)  rows [p_y | p_z | q_z | q_y], the input projections with all biases folded in.
//                  The forward overwrites it with [s_y | s_z | tanh q_z | tanh q_y] (s = sigmoid), the
//                  values the backward needs.
//   ys, zs (L + 1, B, d), row 0 holding the initial state.
#include <ATen/ATen.h>
#include <torch/library.h>

namespace {

void check_layout(const at::Tensor& G, const at::Tensor& W, const at::Tensor& Wy, const at::Tensor& ys,
                  const at::Tensor& zs) {
  TORCH_CHECK(G.dim() == 3 && G.is_contiguous(), "G must be a contiguous (L, B, 4d) tensor");
  const auto L = G.size(0), B = G.size(1), d = G.size(2) / 4;
  TORCH_CHECK(G.size(2) == 4 * d, "G's last dimension must be 4d");
  TORCH_CHECK(W.sizes() == at::IntArrayRef({3 * d, d}), "W must be (3d, d)");
  TORCH_CHECK(Wy.sizes() == at::IntArrayRef({d, d}), "Wy must be (d, d)");
  TORCH_CHECK(ys.is_contiguous() && ys.sizes() == at::IntArrayRef({L + 1, B, d}), "ys must be (L+1, B, d)");
  TORCH_CHECK(zs.is_contiguous() && zs.sizes() == at::IntArrayRef({L + 1, B, d}), "zs must be (L+1, B, d)");
  TORCH_CHECK(G.device().is_cpu(), "lem_cpu runs on CPU tensors");
  for (const auto* t : {&W, &Wy, &ys, &zs})
    TORCH_CHECK(t->scalar_type() == G.scalar_type(), "all tensors must share G's dtype");
}

// state_new = state + dt * gate * (target - state), elementwise over a (B, d) tile with row stride ld.
template <typename T>
void relax(T* __restrict out, const T* __restrict state, const T* __restrict gate,
           const T* __restrict target, int64_t B, int64_t d, int64_t ld, T dt) {
  for (int64_t b = 0; b < B; ++b) {
    const T* g = gate + b * ld;
    const T* t = target + b * ld;
    const T* s = state + b * d;
    T* o = out + b * d;
    for (int64_t j = 0; j < d; ++j) o[j] = s[j] + dt * g[j] * (t[j] - s[j]);
  }
}

void lem_forward(at::Tensor G, const at::Tensor& W, const at::Tensor& Wy, at::Tensor ys, at::Tensor zs,
                 double dt) {
  check_layout(G, W, Wy, ys, zs);
  const auto L = G.size(0), B = G.size(1), d = G.size(2) / 4;
  const auto Wt = W.t(), Wyt = Wy.t();
  for (int64_t n = 0; n < L; ++n) {
    auto g = G[n];
    auto pre = g.narrow(1, 0, 3 * d);
    pre.addmm_(ys[n], Wt);                 // [p_y | p_z | q_z] += y_{n-1} W^T
    g.narrow(1, 0, 2 * d).sigmoid_();      // gates
    g.narrow(1, 2 * d, d).tanh_();         // tanh q_z
    AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "lem_forward_z", [&] {
      const scalar_t* gp = g.data_ptr<scalar_t>();
      relax<scalar_t>(zs[n + 1].data_ptr<scalar_t>(), zs[n].data_ptr<scalar_t>(), gp + d, gp + 2 * d, B, d,
                      4 * d, static_cast<scalar_t>(dt));
    });
    auto qy = g.narrow(1, 3 * d, d);
    qy.addmm_(zs[n + 1], Wyt);            // q_y += z_n Wy^T
    qy.tanh_();
    AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "lem_forward_y", [&] {
      const scalar_t* gp = g.data_ptr<scalar_t>();
      relax<scalar_t>(ys[n + 1].data_ptr<scalar_t>(), ys[n].data_ptr<scalar_t>(), gp, gp + 3 * d, B, d,
                      4 * d, static_cast<scalar_t>(dt));
    });
  }
}

// One gate's backward over a (B, d) tile. With a = dt s, the gate's output o = x + a (t - x):
//   d(pre-activation of t) = dx a (1 - t^2)
//   d(pre-activation of s) = dx a (1 - s) (t - x)
//   dx <- dx (1 - a)                                     the carry to the previous step
// s, t are read from G's row layout, their gradients written at the same offsets of dG.
template <typename T>
void gate_backward(const T* dx_in, T* dx_out, const T* __restrict s_in, const T* __restrict t_in, T* __restrict ds_out,
                   T* __restrict dt_out, const T* __restrict x, const T* __restrict extra, int64_t extra_ld,
                   int64_t B, int64_t d, int64_t ld, T dt) {
  for (int64_t b = 0; b < B; ++b) {
    const T* s = s_in + b * ld;
    const T* t = t_in + b * ld;
    T* ds = ds_out + b * ld;
    T* dtt = dt_out + b * ld;
    const T* xp = x + b * d;
    const T* g = dx_in + b * d;
    T* go = dx_out + b * d;  // may be g itself: each element is read before it is written
    const T* e = extra ? extra + b * extra_ld : nullptr;
    for (int64_t j = 0; j < d; ++j) {
      const T gj = e ? g[j] + e[j] : g[j];
      const T sj = s[j], tj = t[j], a = dt * sj;
      dtt[j] = gj * a * (T(1) - tj * tj);
      ds[j] = gj * a * (T(1) - sj) * (tj - xp[j]);
      go[j] = gj * (T(1) - a);
    }
  }
}

// The backward, in blocks of `block` steps walked from the end. Per step it writes the gradients of
// [p_y | p_z | q_z | q_y] into a (block, B, 4d) tile, and per block it folds that tile into the weight and
// input gradients with a few large matmuls, so no (L, B, 4d) gradient is ever allocated and the tile stays
// in cache.
//   G: the forward's saved gates; ys, zs: its states; x_rows (L B, d_in), Vp (4d, d_in): its input rows and
//   reordered input weights. dYt: (L, B, d) time-major view of the output gradient (last dim contiguous).
//   dy, dz: (B, d) contiguous, the gradients at y_L, z_L; on return, those at y_0, z_0.
//   Outputs, all zero-initialised by the caller: dW (3d, d), dWy (d, d), dbias (4d) = the gradient of G's
//   bias row, dx_rows (L B, d_in), dVp (4d, d_in).
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
  TORCH_CHECK(x_rows.dim() == 2 && x_rows.size(0) == L * B && Vp.size(0) == 4 * d &&
                  Vp.size(1) == x_rows.size(1) && dx_rows.sizes() == x_rows.sizes() && dVp.sizes() == Vp.sizes(),
              "x_rows (L B, d_in), Vp (4d, d_in) and their gradients must match");
  TORCH_CHECK(block >= 1, "block must be >= 1");
  const auto sl = dYt.stride(0), sb = dYt.stride(1);
  auto tile = at::empty({std::min(block, L), B, 4 * d}, G.options());
  // The y carry ping-pongs between two (B, d) tiles: next = cur (1 - a_y) + [dp_y | dp_z | dq_z] W, the
  // matmul accumulating in place (addmm_) so that no step copies a tile.
  auto cur = dy, next = at::empty_like(dy);
  for (int64_t hi = L; hi > 0; hi -= block) {
    const int64_t lo = std::max<int64_t>(0, hi - block), nb = hi - lo;
    for (int64_t n = hi - 1; n >= lo; --n) {
      auto dg = tile[n - lo];
      AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "lem_backward", [&] {
        const scalar_t* gp = G.data_ptr<scalar_t>() + n * B * 4 * d;
        scalar_t* dgp = dg.data_ptr<scalar_t>();
        const auto step = static_cast<scalar_t>(dt);
        // the y gate (s_y at 0, tanh q_y at 3d), its incoming gradient cur + dY_n
        gate_backward<scalar_t>(cur.data_ptr<scalar_t>(), next.data_ptr<scalar_t>(), gp, gp + 3 * d, dgp,
                                dgp + 3 * d, ys[n].data_ptr<scalar_t>(), dYt.data_ptr<scalar_t>() + n * sl, sb,
                                B, d, 4 * d, step);
        dz.addmm_(dg.narrow(1, 3 * d, d), Wy);  // dz += dq_y Wy
        // the z gate (s_z at d, tanh q_z at 2d), in place on dz
        gate_backward<scalar_t>(dz.data_ptr<scalar_t>(), dz.data_ptr<scalar_t>(), gp + d, gp + 2 * d, dgp + d,
                                dgp + 2 * d, zs[n].data_ptr<scalar_t>(), nullptr, 0, B, d, 4 * d, step);
      });
      next.addmm_(dg.narrow(1, 0, 3 * d), W);  // dy_{n-1}
      std::swap(cur, next);
    }
    // fold the block: rows lo*B .. hi*B of every (L B, .) quantity
    auto dG = tile.narrow(0, 0, nb).view({nb * B, 4 * d});
    dW.addmm_(dG.narrow(1, 0, 3 * d).t(), ys.narrow(0, lo, nb).view({nb * B, d}));
    dWy.addmm_(dG.narrow(1, 3 * d, d).t(), zs.narrow(0, lo + 1, nb).view({nb * B, d}));
    dbias.add_(dG.sum(0));
    auto xb = x_rows.narrow(0, lo * B, nb * B);
    auto dxb = dx_rows.narrow(0, lo * B, nb * B);
    at::mm_out(dxb, dG, Vp);
    dVp.addmm_(dG.t(), xb);
  }
  if (!cur.is_same(dy)) dy.copy_(cur);
}

}  // namespace

// Schemas here, the kernels for the CPU key only: torch.compile traces with fake tensors, for which
// lindy/kernels/lem_cpu.py registers shape-only implementations.
TORCH_LIBRARY(lindy_lem_cpu, m) {
  m.def("forward(Tensor(a!) G, Tensor W, Tensor Wy, Tensor(b!) ys, Tensor(c!) zs, float dt) -> ()");
  m.def(
      "backward(Tensor G, Tensor dYt, Tensor W, Tensor Wy, Tensor ys, Tensor zs, Tensor x_rows, Tensor Vp, "
      "Tensor(a!) dy, Tensor(b!) dz, Tensor(c!) dW, Tensor(d!) dWy, Tensor(e!) dbias, Tensor(f!) dx_rows, "
      "Tensor(g!) dVp, float dt, int block) -> ()");
}

TORCH_LIBRARY_IMPL(lindy_lem_cpu, CPU, m) {
  m.impl("forward", &lem_forward);
  m.impl("backward", &lem_backward);
}
