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
// tile's logits are one ATen GEMM (see Gemm below) of its weight rows with
// F_n, into one reused buffer; the soft-argmax's own row reduction
// (soft_argmax_cpu::reduce_blocks) reduces each joint's part, in segments
// that run in parallel (at::parallel_for), to Partials (max and the sums
// Σe, Σe·w, Σe·h, Σe·d), and a joint's segments and plane tiles merge as a
// log-sum-exp (soft_argmax_cpu::finish_row).  Memory beyond inputs and
// outputs: the tile buffer, and for fp16/bf16 input one image's features
// and the weight converted to float.
//
// Backward: see the derivation above backward_kernel.
#include <torch/extension.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <vector>

#include "common/check.h"
#include "common/env.h"
#include "soft_argmax/soft_argmax_cpu.h"

namespace hybrik_fast {
namespace {

using soft_argmax_cpu::Blocking;
using soft_argmax_cpu::Partial;
using soft_argmax_cpu::RowGrad;

// Default tile: 2^21 voxels = 8 MiB of floats, a quarter of this CPU's L3
// (eight 64³ heatmaps: the GEMMs' inner dimension in the backward's d F is
// then 512 rows, not 64).  Measured fwd+bwd at 8×256×64² -> 29×64³ on 2
// threads with the oneDNN GEMMs (median of 8, interleaved): 348 ms with 8
// joints per tile, 368 with 4, 436 with 1, 357 with 16 and 364 with all 29.
constexpr int64_t kTileVoxels = int64_t(1) << 21;

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

}  // namespace
}  // namespace hybrik_fast

// ATen's oneDNN matmul, result = beta·result + alpha·mat1·mat2 (any strides),
// the kernel at::addmm itself runs for bf16 and fp16 on CPU.  Its header is
// not installed with torch, so it is declared here, weak: where a torch build
// lacks it (no oneDNN) the address is null and Gemm uses at::mm.
namespace at {
namespace native {
TORCH_API void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta,
                             float alpha) __attribute__((weak));
}  // namespace native
}  // namespace at

namespace hybrik_fast {
namespace {

// The tiles' GEMMs, c = a·b (accumulate: c += a·b), all through ATen.  For
// float they take ATen's oneDNN matmul, for double (which oneDNN lacks) and
// where it is absent at::mm_out / addmm_ (torch's BLAS).  On this project's
// CPU (AMD EPYC, 2 threads) torch's BLAS, MKL, runs these shapes at 190-210
// GFLOP/s and oneDNN at 410-475 (exact float32: its error against float64
// is the same size as MKL's); measurements in bench/results/README.md.
// HYBRIK_FAST_ONEDNN_GEMM=0 forces torch's BLAS (for comparison and tests).
struct Gemm {
  bool onednn;
  explicit Gemm(at::ScalarType acc)
      : onednn(acc == at::kFloat && at::native::mkldnn_matmul != nullptr && at::hasMKLDNN() &&
               env_switch("HYBRIK_FAST_ONEDNN_GEMM") != 0) {}
  void operator()(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c, bool accumulate) const {
    if (onednn) {
      at::native::mkldnn_matmul(a, b, c, accumulate ? 1.0f : 0.0f, 1.0f);
    } else if (accumulate) {
      c.addmm_(a, b);
    } else {
      at::Tensor out = c;
      at::mm_out(out, a, b);
    }
  }
};

// The logits of tile t of joint k: rows k·D + d0 .. of Wt·Fn + b, into out (n, H·W).
void tile_logits(const Gemm& gemm, const at::Tensor& Fn, const at::Tensor& w, const at::Tensor& bias, int64_t row0,
                 int64_t n, at::Tensor& out) {
  if (bias.defined()) out.copy_(bias.narrow(0, row0, n).unsqueeze(1).expand_as(out));
  gemm(w.narrow(0, row0, n), Fn, out, bias.defined());
}

// Σ x[0..n) of one backward block (in L1 after RowGrad wrote it): float
// within the block, double across blocks and images (d b sums B·H·W terms
// per row).
template <typename acc_t>
double block_sum(const acc_t* x, int64_t n) {
  acc_t s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return static_cast<double>(s);
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

// How many segments each joint of a tile is cut into for the row reduction,
// so that a tile's nk joints give at least kTasksPerThread tasks per thread
// (at most one per forward block).  The GEMMs run in torch's BLAS threads;
// the reduction between them runs in ours (at::parallel_for), which would
// otherwise leave all but one core idle for that part of the step.
constexpr int64_t kTasksPerThread = 2;
inline int64_t segments(int64_t nk, int64_t blocks) {
  const int64_t tasks = kTasksPerThread * at::get_num_threads();
  return std::max<int64_t>(1, std::min(blocks, (tasks + nk - 1) / nk));
}

// A run of dt planes of one joint is reduced as a row of its own (its
// Blocking: one for the full runs, one for a shorter last run), in S
// segments, and each Partial's Σ e·d shifted by d0·Σ e; a tile of whole
// joints is reduced joint by joint, S segments each; the segments of a
// joint merge in finish_row.
template <typename acc_t>
void forward_kernel(const Inputs& in, int64_t tile_planes, acc_t* coords, double* lse, acc_t* conf) {
  const Gemm gemm(in.acc);
  const int64_t HW = in.H * in.W;
  const Tiles tiles(in.K, in.D, HW, tile_planes);
  const Blocking<acc_t> full(tiles.planes, in.H, in.W), last(tiles.size(tiles.count - 1), in.H, in.W);
  const int64_t L = std::max(full.super_row_len(), last.super_row_len());
  at::Tensor buf = at::empty({tiles.rows(), HW}, in.w.options());
  // a tile's partials: nk joints × S segments (whole joints), or the
  // count × S of one joint's plane runs
  std::vector<Partial> parts(std::max(tiles.joints, tiles.count) * std::max(full.fnb, last.fnb));
  for (int64_t n = 0; n < in.B; ++n) {
    const at::Tensor Fn = in.image(n);
    for (int64_t k0 = 0; k0 < in.K; k0 += tiles.joints) {
      const int64_t nk = std::min(tiles.joints, in.K - k0);
      int64_t np = 0;  // partials of this joint so far (plane runs)
      for (int64_t t = 0; t < tiles.count; ++t) {
        const int64_t d0 = tiles.d0(t), dt = tiles.size(t);
        const Blocking<acc_t>& blk = dt == tiles.planes ? full : last;
        at::Tensor out = buf.narrow(0, 0, nk * dt);
        tile_logits(gemm, Fn, in.w, in.bias, k0 * in.D + d0, nk * dt, out);
        const acc_t* x = out.const_data_ptr<acc_t>();
        const int64_t S = segments(nk, blk.fnb);
        Partial* tp = parts.data() + (nk == 1 ? np : 0);
        at::parallel_for(0, nk * S, 1, [&](int64_t begin, int64_t end) {
          std::vector<acc_t> col(L), suf(L);
          for (int64_t task = begin; task < end; ++task) {
            const int64_t j = task / S, seg = task % S;
            Partial p = soft_argmax_cpu::reduce_blocks<acc_t>(x + j * dt * HW, blk, seg * blk.fnb / S,
                                                              (seg + 1) * blk.fnb / S, nullptr, col.data(),
                                                              suf.data());
            p.sd += static_cast<double>(d0) * p.s;
            tp[task] = p;
          }
        });
        if (nk == 1) {
          np += S;
        } else {  // whole joints: S parts each
          for (int64_t j = 0; j < nk; ++j) {
            const int64_t r = n * in.K + k0 + j;
            soft_argmax_cpu::finish_row(tp + j * S, S, in.D, in.H, in.W, coords + 3 * r, lse + r, conf + r);
          }
        }
      }
      if (nk == 1) {
        const int64_t r = n * in.K + k0;
        soft_argmax_cpu::finish_row(parts.data(), np, in.D, in.H, in.W, coords + 3 * r, lse + r, conf + r);
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
// (RowGrad, block by block in parallel; each block's Σ dx goes to d b while
// it is in cache), and add the tile's d F and d Wt terms with ATen GEMMs,
// each only where its input needs a gradient.  Memory: the tile, as in the
// forward.
template <typename acc_t>
void backward_kernel(const Inputs& in, int64_t tile_planes, const acc_t* grad, const acc_t* coords,
                     const double* lse, std::array<bool, 3> needs, const at::Tensor& dF, const at::Tensor& dW,
                     const at::Tensor& dB) {
  const Gemm gemm(in.acc);
  const Blocking<acc_t> blk(in.D, in.H, in.W);
  const int64_t HW = in.H * in.W;
  const Tiles tiles(in.K, in.D, HW, tile_planes);
  at::Tensor buf = at::empty({tiles.rows(), HW}, in.w.options());
  const bool f_acc = dF.defined() && dF.scalar_type() == in.acc;
  at::Tensor dFn_acc = needs[0] && !f_acc ? at::empty({in.C, HW}, in.w.options()) : at::Tensor();
  // per backward block of a tile, the sum of its dx (for d b)
  std::vector<double> bsum(needs[2] ? tiles.rows() * blk.nbh : 0);
  double* db = needs[2] ? dB.mutable_data_ptr<double>() : nullptr;
  for (int64_t n = 0; n < in.B; ++n) {
    const at::Tensor Fn = in.image(n);
    at::Tensor dFn;
    if (needs[0]) dFn = f_acc ? dF[n].view({in.C, HW}) : dFn_acc;
    bool first = true;  // the image's first tile sets d F_n (no zeroing pass), the others add to it
    for (int64_t k0 = 0; k0 < in.K; k0 += tiles.joints) {
      const int64_t nk = std::min(tiles.joints, in.K - k0);
      for (int64_t t = 0; t < tiles.count; ++t) {
        const int64_t d0 = tiles.d0(t), dt = tiles.size(t), row0 = k0 * in.D + d0;
        at::Tensor x = buf.narrow(0, 0, nk * dt);
        tile_logits(gemm, Fn, in.w, in.bias, row0, nk * dt, x);
        // dx in place, the tile's nk·dt·nbh blocks in parallel; a thread
        // sets up a joint's terms when its range enters the joint
        acc_t* xp = x.mutable_data_ptr<acc_t>();
        const int64_t per_joint = dt * blk.nbh;
        at::parallel_for(0, nk * per_joint, 1, [&](int64_t begin, int64_t end) {
          RowGrad<acc_t> rg(blk);
          int64_t joint = -1;
          for (int64_t i = begin; i < end; ++i) {
            const int64_t j = i / per_joint, b = d0 * blk.nbh + i % per_joint;
            if (j != joint) {
              joint = j;
              const int64_t r = n * in.K + k0 + j;
              rg.setup(grad + 3 * r, coords + 3 * r, lse[r]);
            }
            acc_t* xb = xp + j * dt * HW + (blk.offset(b) - d0 * HW);
            rg.block(xb, b, nullptr, xb);
            if (needs[2]) bsum[i] = block_sum(xb, blk.size(b));
          }
        });
        if (needs[0]) gemm(in.w.narrow(0, row0, nk * dt).t(), x, dFn, !first);
        first = false;
        if (needs[1]) gemm(x, Fn.t(), dW.narrow(0, row0, nk * dt), true);
        if (needs[2]) {  // row j·dt + dd of the tile is plane dd of joint j: its nbh blocks
          for (int64_t row = 0; row < nk * dt; ++row)
            for (int64_t h = 0; h < blk.nbh; ++h) db[row0 + row] += bsum[row * blk.nbh + h];
        }
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
