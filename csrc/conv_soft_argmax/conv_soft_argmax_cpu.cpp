// Fused 1×1 convolution + soft-argmax over 3D heatmaps: CPU forward and
// backward kernels that never hold the (B, K·D, H, W) logits.
//
// Shapes: features F (B, C, H, W), weight Wt (K·D, C), bias b (K·D,).  The
// logits of image n are the GEMM  X_n = Wt·F_n + b  (K·D, H·W), and row
// k·D + d, column (h, w) of X_n is voxel (d, h, w) of joint k's heatmap
// (the layout of conv2d(...).view(B, K, D, H, W)).  The op returns the
// soft-argmax of those heatmaps (csrc/soft_argmax/soft_argmax_cpu.cpp):
// coords (B, K, 3), lse (B, K), conf (B, K).
//
// Forward.  Per image n the rows of X_n are cut into tiles that sit in L3
// (kTileVoxels floats): when one joint's whole heatmap (D·H·W voxels) fits,
// a tile is the rows of as many whole joints as fit (small heatmaps: one
// GEMM of many rows, not K small ones); when it does not, a tile is a run
// of d-planes of one joint (tile_planes, default: as many as fit).  A
// tile's logits are one ATen GEMM (at::addmm_out / at::mm_out: torch's BLAS,
// which parallelises it) of its weight rows with F_n, into one reused
// buffer; the soft-argmax's own row reduction
// (soft_argmax_cpu::reduce_blocks) reduces each joint's part to a Partial
// (max and the sums Σe, Σe·w, Σe·h, Σe·d), and a joint's plane tiles merge
// as a log-sum-exp (soft_argmax_cpu::finish_row).  Memory beyond inputs and
// outputs: the tile buffer, and for fp16/bf16 input one image's features
// and the weight converted to float.
//
// Backward: see the derivation above backward_kernel.
#include <torch/extension.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <algorithm>
#include <array>
#include <vector>

#include "common/check.h"
#include "soft_argmax/soft_argmax_cpu.h"

namespace hybrik_fast {
namespace {

using soft_argmax_cpu::Blocking;
using soft_argmax_cpu::Partial;
using soft_argmax_cpu::RowGrad;

// Default tile: 2^20 voxels = 4 MiB of floats (four 64³ heatmaps: the GEMMs'
// inner dimension in the backward's d F is then 256 rows, not 64; measured
// fwd+bwd at 8×256×64² -> 29×64³ on 2 threads: 600 ms against 643 with one
// joint per tile, and 604-612 ms with 2 or 8).
constexpr int64_t kTileVoxels = int64_t(1) << 20;

// How the K·D rows of an image's logits are cut into tiles of `rows` rows
// (`requested` if > 0, else as many as fit kTileVoxels): with fewer rows
// than D, `count` runs of `planes` d-planes per joint (the last one may have
// fewer); with D or more, ⌊rows/D⌋ whole joints per tile (`joints`).
struct Tiles {
  int64_t D, planes, count, joints;
  Tiles(int64_t K, int64_t D_, int64_t plane, int64_t requested) : D(D_) {
    const int64_t rows = std::max<int64_t>(1, requested > 0 ? requested : kTileVoxels / plane);
    planes = std::min(D, rows);
    count = (D + planes - 1) / planes;
    joints = planes == D ? std::min(K, std::max<int64_t>(1, rows / D)) : 1;
  }
  int64_t d0(int64_t t) const { return t * planes; }
  int64_t size(int64_t t) const { return std::min(planes, D - d0(t)); }
  int64_t rows() const { return joints * planes; }  // the buffer's rows
};

// The logits of tile t of joint k: rows k·D + d0 .. of Wt·Fn + b, into out (n, H·W).
void tile_logits(const at::Tensor& Fn, const at::Tensor& w, const at::Tensor& bias, int64_t row0, int64_t n,
                 at::Tensor& out) {
  const at::Tensor wt = w.narrow(0, row0, n);
  if (bias.defined()) {
    at::addmm_out(out, bias.narrow(0, row0, n).unsqueeze(1), wt, Fn);
  } else {
    at::mm_out(out, wt, Fn);
  }
}

// The inputs in the accumulation dtype: features (B, C, H·W), weight (K·D, C), bias (K·D,) or undefined.
struct Inputs {
  at::Tensor F, w, bias;
  int64_t B, C, K, D, H, W;
  at::ScalarType acc;
  Inputs(const at::Tensor& features, const at::Tensor& weight, const c10::optional<at::Tensor>& b, int64_t K_)
      : K(K_) {
    TORCH_CHECK_VALUE(features.dim() == 4 && features.size(2) > 0 && features.size(3) > 0,
                      "features must have shape (B, C, H, W) with H, W > 0, got ", features.sizes());
    TORCH_CHECK_TYPE(features.is_floating_point(), "features must be a floating tensor, got ",
                     features.scalar_type());
    HYBRIK_CHECK_LIKE(weight, features);
    TORCH_CHECK_VALUE(K > 0 && weight.dim() == 2 && weight.size(0) > 0 && weight.size(0) % K == 0 &&
                          weight.size(1) == features.size(1),
                      "weight must have shape (K·D, C) with K = num_joints = ", K, " and C = ", features.size(1),
                      ", got ", weight.sizes());
    B = features.size(0);
    C = features.size(1);
    D = weight.size(0) / K;
    H = features.size(2);
    W = features.size(3);
    acc = at::toOpMathType(features.scalar_type());
    F = features.reshape({B, C, H * W});
    w = weight.to(acc).contiguous();
    if (b.has_value() && b->defined()) {
      HYBRIK_CHECK_LIKE(*b, features);
      HYBRIK_CHECK_SHAPE(*b, K * D);
      bias = b->to(acc).contiguous();
    }
  }
  at::Tensor image(int64_t n) const { return F[n].to(acc).contiguous(); }  // (C, H·W)
};

// A run of dt planes of one joint is reduced as a row of its own (its
// Blocking: one for the full runs, one for a shorter last run), and its
// Σ e·d shifted by d0·Σ e; a tile of whole joints is reduced joint by joint.
template <typename acc_t>
void forward_kernel(const Inputs& in, int64_t tile_planes, acc_t* coords, double* lse, acc_t* conf) {
  const int64_t HW = in.H * in.W;
  const Tiles tiles(in.K, in.D, HW, tile_planes);
  const Blocking<acc_t> full(tiles.planes, in.H, in.W), last(tiles.size(tiles.count - 1), in.H, in.W);
  at::Tensor buf = at::empty({tiles.rows(), HW}, in.w.options());
  std::vector<acc_t> col(std::max(full.super_row_len(), last.super_row_len()));
  std::vector<acc_t> suf(col.size());
  std::vector<Partial> parts(tiles.count);
  for (int64_t n = 0; n < in.B; ++n) {
    const at::Tensor Fn = in.image(n);
    for (int64_t k0 = 0; k0 < in.K; k0 += tiles.joints) {
      const int64_t nk = std::min(tiles.joints, in.K - k0);
      for (int64_t t = 0; t < tiles.count; ++t) {
        const int64_t d0 = tiles.d0(t), dt = tiles.size(t);
        const Blocking<acc_t>& blk = dt == tiles.planes ? full : last;
        at::Tensor out = buf.narrow(0, 0, nk * dt);
        tile_logits(Fn, in.w, in.bias, k0 * in.D + d0, nk * dt, out);
        for (int64_t j = 0; j < nk; ++j) {
          const acc_t* x = out.const_data_ptr<acc_t>() + j * dt * HW;
          Partial p = soft_argmax_cpu::reduce_blocks<acc_t>(x, blk, 0, blk.fnb, nullptr, col.data(), suf.data());
          p.sd += static_cast<double>(d0) * p.s;
          if (nk == 1) {
            parts[t] = p;
          } else {  // whole joints: one part each
            const int64_t r = n * in.K + k0 + j;
            soft_argmax_cpu::finish_row(&p, 1, in.D, in.H, in.W, coords + 3 * r, lse + r, conf + r);
          }
        }
      }
      if (nk == 1) {
        const int64_t r = n * in.K + k0;
        soft_argmax_cpu::finish_row(parts.data(), tiles.count, in.D, in.H, in.W, coords + 3 * r, lse + r,
                                    conf + r);
      }
    }
  }
}

// Backward.  For one heatmap with logits x = Wt_k·F_n + b_k (rows of joint
// k), the soft-argmax backward (soft_argmax_cpu.cpp, above backward_kernel)
// gives
//
//   dx_u = p_u · Σ_a g_a (i_a(u)/N_a − 0.5 − c_a),   p_u = exp(x_u − lse),
//
// needing only the saved coords c and lse: no other state of the forward.
// x is a linear function of the inputs, so with dX_n (K·D, H·W) the
// gradient of all of image n's logits,
//
//   d F_n  = Wtᵀ · dX_n            (C, H·W)
//   d Wt   = Σ_n dX_n · F_nᵀ       (K·D, C)
//   d b    = Σ_n Σ_columns dX_n    (K·D,)
//
// and each is a sum over the row tiles of dX_n: a tile's rows of d Wt and
// d b get its own terms, d F_n the sum of every tile's Wt_tileᵀ·dX_tile.  So
// per tile (the forward's tiles: whole joints or runs of planes): recompute
// its logits (the forward's GEMM), overwrite them with dx in place
// (RowGrad, joint by joint), and add the tile's terms with ATen GEMMs, each
// only where its input needs a gradient.  Memory: the tile, as in the
// forward.
template <typename acc_t>
void backward_kernel(const Inputs& in, int64_t tile_planes, const acc_t* grad, const acc_t* coords,
                     const double* lse, std::array<bool, 3> needs, const at::Tensor& dF, const at::Tensor& dW,
                     const at::Tensor& dB) {
  const Blocking<acc_t> blk(in.D, in.H, in.W);
  const int64_t HW = in.H * in.W;
  const Tiles tiles(in.K, in.D, HW, tile_planes);
  at::Tensor buf = at::empty({tiles.rows(), HW}, in.w.options());
  RowGrad<acc_t> rg(blk);
  const bool f_acc = dF.defined() && dF.scalar_type() == in.acc;
  at::Tensor dFn_acc = needs[0] && !f_acc ? at::empty({in.C, HW}, in.w.options()) : at::Tensor();
  for (int64_t n = 0; n < in.B; ++n) {
    const at::Tensor Fn = in.image(n);
    at::Tensor dFn;
    if (needs[0]) {
      dFn = f_acc ? dF[n].view({in.C, HW}) : dFn_acc;
      dFn.zero_();
    }
    for (int64_t k0 = 0; k0 < in.K; k0 += tiles.joints) {
      const int64_t nk = std::min(tiles.joints, in.K - k0);
      for (int64_t t = 0; t < tiles.count; ++t) {
        const int64_t d0 = tiles.d0(t), dt = tiles.size(t), row0 = k0 * in.D + d0;
        at::Tensor x = buf.narrow(0, 0, nk * dt);
        tile_logits(Fn, in.w, in.bias, row0, nk * dt, x);
        for (int64_t j = 0; j < nk; ++j) {
          const int64_t r = n * in.K + k0 + j;
          rg.setup(grad + 3 * r, coords + 3 * r, lse[r]);  // per joint (cheap: 3 coefficients and a table)
          acc_t* xp = x.mutable_data_ptr<acc_t>() + j * dt * HW;
          for (int64_t b = d0 * blk.nbh; b < (d0 + dt) * blk.nbh; ++b) {
            acc_t* xb = xp + (blk.offset(b) - d0 * HW);
            rg.block(xb, b, nullptr, xb);
          }
        }
        if (needs[0]) dFn.addmm_(in.w.narrow(0, row0, nk * dt).t(), x);
        if (needs[1]) dW.narrow(0, row0, nk * dt).addmm_(x, Fn.t());
        if (needs[2]) dB.narrow(0, row0, nk * dt).add_(x.sum(1, false, at::kDouble));
      }
    }
    if (needs[0] && !f_acc) dF[n].view({in.C, HW}).copy_(dFn);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_soft_argmax3d_fwd_cpu(const at::Tensor& features,
                                                                          const at::Tensor& weight,
                                                                          const c10::optional<at::Tensor>& bias,
                                                                          int64_t num_joints, int64_t tile_planes) {
  const Inputs in(features, weight, bias, num_joints);
  const auto opts = features.options().dtype(in.acc);
  at::Tensor coords = at::empty({in.B, in.K, 3}, opts);
  at::Tensor lse = at::empty({in.B, in.K}, opts.dtype(at::kDouble));
  at::Tensor conf = at::empty({in.B, in.K}, opts);
  AT_DISPATCH_FLOATING_TYPES(in.acc, "conv_soft_argmax3d_fwd_cpu", [&] {
    forward_kernel<scalar_t>(in, tile_planes, coords.mutable_data_ptr<scalar_t>(), lse.mutable_data_ptr<double>(),
                             conf.mutable_data_ptr<scalar_t>());
  });
  return {coords, lse, conf};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_soft_argmax3d_bwd_cpu(
    const at::Tensor& grad_coords, const at::Tensor& features, const at::Tensor& weight,
    const c10::optional<at::Tensor>& bias, const at::Tensor& coords, const at::Tensor& lse, int64_t num_joints,
    int64_t tile_planes, std::array<bool, 3> needs) {
  const Inputs in(features, weight, bias, num_joints);
  const int64_t B = in.B, K = in.K;
  HYBRIK_CHECK_SHAPE(grad_coords, B, K, 3);
  HYBRIK_CHECK_SHAPE(coords, B, K, 3);
  HYBRIK_CHECK_SHAPE(lse, B, K);
  TORCH_CHECK_VALUE(!needs[2] || in.bias.defined(), "needs[2] (d bias) without a bias");
  const at::Tensor g = grad_coords.to(in.acc).contiguous();
  const at::Tensor c = coords.to(in.acc).contiguous();
  const at::Tensor l = lse.to(at::kDouble).contiguous();
  // an empty (0,) tensor of its own for each gradient not needed (outputs must not alias)
  at::Tensor dF = at::empty(needs[0] ? features.sizes() : at::IntArrayRef{0}, features.options());
  at::Tensor dW = needs[1] ? at::zeros(weight.sizes(), in.w.options()) : features.new_empty({0});
  // d bias sums B·H·W terms per row: in float64 (K·D numbers), rounded once at the end
  at::Tensor dB = needs[2] ? at::zeros({K * in.D}, in.w.options().dtype(at::kDouble)) : features.new_empty({0});
  AT_DISPATCH_FLOATING_TYPES(in.acc, "conv_soft_argmax3d_bwd_cpu", [&] {
    backward_kernel<scalar_t>(in, tile_planes, g.const_data_ptr<scalar_t>(), c.const_data_ptr<scalar_t>(),
                              l.const_data_ptr<double>(), needs, needs[0] ? dF : at::Tensor(),
                              needs[1] ? dW : at::Tensor(), needs[2] ? dB : at::Tensor());
  });
  return {dF, needs[1] ? dW.to(weight.scalar_type()) : dW, needs[2] ? dB.to(weight.scalar_type()) : dB};
}

}  // namespace
}  // namespace hybrik_fast

// the schemas are in conv_soft_argmax_op.cpp
TORCH_LIBRARY_IMPL(hybrik_fast_C, CPU, m) {
  m.impl("conv_soft_argmax3d_fwd", &hybrik_fast::conv_soft_argmax3d_fwd_cpu);
  m.impl("conv_soft_argmax3d_bwd", &hybrik_fast::conv_soft_argmax3d_bwd_cpu);
}
