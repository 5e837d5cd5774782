// Fused soft-argmax over 3D heatmaps: CPU forward and backward kernels.
//
// Shapes: x (B, K, D, H, W) logits, any floating dtype.  A "row" is the D·H·W
// voxels of one joint; there are R = B·K rows.  Per row, with p = softmax(x)
// over the row:
//
//   c_x = Σ_v p_v·w_v/W − 0.5,   c_y = Σ_v p_v·h_v/H − 0.5,   c_z = Σ_v p_v·d_v/D − 0.5
//   lse = log Σ_v exp(x_v),      conf = max_v p_v = exp(max_v x_v − lse)
//
// which equals the marginal form of the reference
// (hybrik_fast/reference/soft_argmax.py).
//
// Forward reads each logit from memory once.  It walks a row in blocks of
// whole h-rows of one d-plane (at most kBlock voxels, so a block stays in L1):
// the block's max is taken first, the running max m and the sums are rescaled
// by exp(m_old − m_new) when it grows (online softmax at block granularity),
// then one vectorised pass over the block (now in cache) accumulates
// Σ e, Σ e·w and Σ e·h for e = exp(x − m) with adds only (block_sums); the d
// index is constant in a block.  Float sums inside a block, double across
// blocks.  Rows are cut into segments that run in parallel (at::parallel_for)
// and are merged as a log-sum-exp, so that B = 1 (29 rows) shares out evenly.
//
// Backward reads x once and writes dx once, recomputing p = exp(x − lse).
// lse is kept in double: at |x| ~ 1e4 a float lse would be off by up to half
// an ulp (5e-4) and so would every p.  Backward splits it per row into
// float hi + lo and forms exp(x − hi)·exp(−lo), where x − hi is exact for
// the x that matter (Sterbenz) and exp(−lo) is one per-row factor.  dx is
// taken from a cache of freed gradients (common/output_cache.h), so that in a
// training loop it is memory already mapped, not fresh pages the OS must zero
// on the first touch; a float dx goes out with streaming stores where that
// pays (use_streaming_stores).  The fast exp, the memory-system probes and
// the streaming stores are in csrc/common/; the operator schemas in
// soft_argmax_op.cpp; the measurements behind the constants below in
// bench/results/README.md ("Measurement logs").
//
// Accumulation is in float for fp16/bf16/fp32 and in double for fp64; the
// outputs coords and conf are in that accumulation dtype (the Python op
// casts them to the input dtype) so that backward sees unrounded coordinates.
#include <torch/extension.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common/check.h"
#include "common/fast_exp.h"
#include "common/memory.h"
#include "common/multiversion.h"
#include "common/output_cache.h"
#include "soft_argmax/soft_argmax_cpu.h"
#include "soft_argmax/soft_argmax_op.h"

namespace hybrik_fast {
namespace soft_argmax_cpu {
namespace {

// The three hot loops.  They are plain loops under `omp simd`, so GCC
// vectorises them, reductions included, without -ffast-math.

// Max of x[0..n).  A NaN may or may not win; the sums below turn a row with a
// NaN into NaN either way.
template <typename acc_t>
inline __attribute__((always_inline)) acc_t block_max_impl(const acc_t* x, int64_t n) {
  acc_t m = -std::numeric_limits<acc_t>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// Software prefetch.  The arithmetic-bound passes (block_sums, block_grad)
// run over a block from cache while the next block is prefetched, one cache
// line per 16 floats of this one, interleaved in chunks of kPrefetchChunk
// voxels.  The lines go to L2 only (locality 1: prefetcht2), which has room
// for more misses in flight than L1 and does not evict the block being
// worked on (measured against prefetches into L1 and against no prefetch:
// bench/results/README.md, "Measurement logs").
constexpr int64_t kPrefetchChunk = 512;
constexpr int kPrefetchLocality = 1;

template <typename acc_t>
inline __attribute__((always_inline)) void prefetch_lines(const acc_t* p, int64_t n) {
  for (int64_t j = 0; j < n; j += 64 / sizeof(acc_t)) __builtin_prefetch(p + j, 0, kPrefetchLocality);
}

// The sums of one forward block, laid out as `count` super-rows of L voxels
// (one h-row each, L = W, or one d-plane each, L = H·W: Blocking), with
// e = exp(x − m) and J the super-row's index in the block:
//   out = {Σ e, Σ e·w, Σ e·h, Σ e·J},
// w and h of a voxel from its place in a super-row (tables wv and hv of L
// entries; hv null when a super-row is one h-row, out[2] is then 0).  The
// next block (next, if not null) is prefetched meanwhile, super-row by
// super-row, so that block_max's pass over it, the memory-bound one, finds
// it in cache.
//
// The loop is bound by its floating-point ops (per 16 voxels about 8 on the
// FMA/multiply pipes for the exp, Zen 4), so the sums cost adds, not FMAs:
// the super-rows are walked from the last one, col[i] accumulates e (col is
// then the suffix sum Σ_{J' >= J} e[J'][i] after super-row J), and suf[i]
// accumulates col after every J >= 1, so that
//   Σ_i suf[i] = Σ_{J>=1} Σ_{J'>=J} e[J'] = Σ_J' J'·e[J'] = Σ e·J,
// a sum of non-negative terms (no cancellation).  Σ e, Σ e·w and Σ e·h are
// then one pass over col (faster than three accumulators, an add and two
// FMAs per voxel: "Measurement logs").  Where h-rows are short, whole
// d-planes are grouped into a block
// instead (super-row = plane: Blocking).
// col and suf are caller scratch of L elements.
template <typename acc_t>
inline __attribute__((always_inline)) void block_sums_impl(const acc_t* x, const acc_t* wv, const acc_t* hv,
                                                           int64_t L, int64_t count, acc_t m, const acc_t* next,
                                                           acc_t* col, acc_t* suf, acc_t* out /* [4] */) {
  for (int64_t i = 0; i < L; ++i) col[i] = suf[i] = 0;
  for (int64_t j = count - 1; j >= 0; --j) {
    const acc_t* xj = x + j * L;
    if (next != nullptr) prefetch_lines(next + j * L, L);
    if (j > 0) {
#pragma omp simd
      for (int64_t i = 0; i < L; ++i) {
        const acc_t c = col[i] + exp_nonpos(xj[i] - m);
        col[i] = c;
        suf[i] += c;
      }
    } else {
#pragma omp simd
      for (int64_t i = 0; i < L; ++i) col[i] += exp_nonpos(xj[i] - m);
    }
  }
  acc_t s = 0, sw = 0, sh = 0, sj = 0;
  if (hv != nullptr) {
#pragma omp simd reduction(+ : s, sw, sh, sj)
    for (int64_t i = 0; i < L; ++i) {
      s += col[i];
      sw += col[i] * wv[i];
      sh += col[i] * hv[i];
      sj += suf[i];
    }
  } else {
#pragma omp simd reduction(+ : s, sw, sj)
    for (int64_t i = 0; i < L; ++i) {
      s += col[i];
      sw += col[i] * wv[i];
      sj += suf[i];
    }
  }
  out[0] = s;
  out[1] = sw;
  out[2] = sh;
  out[3] = sj;
}

// dx = exp(x − hi)·(coef + base) over one block, where the caller has folded
// exp(−lo) (lse = hi + lo) and the per-voxel w, h terms into coef; the next
// block (next, if not null) is prefetched meanwhile.
template <typename acc_t>
inline __attribute__((always_inline)) void block_grad_impl(const acc_t* x, const acc_t* coef, int64_t n,
                                                           acc_t hi, acc_t base, const acc_t* next, acc_t* dx) {
  for (int64_t c = 0; c < n; c += kPrefetchChunk) {
    const int64_t end = std::min(n, c + kPrefetchChunk);
    if (next != nullptr) prefetch_lines(next + c, end - c);
#pragma omp simd
    for (int64_t i = c; i < end; ++i) dx[i] = exp_nonpos(x[i] - hi) * (coef[i] + base);
  }
}

// The float versions are compiled for AVX-512, AVX2+FMA and baseline x86-64
// and picked at load time (common/multiversion.h); the double ones
// (gradcheck) are not speed-critical.
#define HF_MULTIVERSION HYBRIK_MULTIVERSION(HYBRIK_ISA_AVX512)

HF_MULTIVERSION float block_max(const float* x, int64_t n) { return block_max_impl(x, n); }
HF_MULTIVERSION void block_sums(const float* x, const float* wv, const float* hv, int64_t L, int64_t count,
                                float m, const float* next, float* col, float* suf, float* out) {
  block_sums_impl(x, wv, hv, L, count, m, next, col, suf, out);
}
HF_MULTIVERSION void block_grad(const float* x, const float* coef, int64_t n, float hi, float base,
                                const float* next, float* dx) {
  block_grad_impl(x, coef, n, hi, base, next, dx);
}
// block_grad with streaming stores (float only): each chunk goes through an
// L1-resident buffer to stream_store.
HF_MULTIVERSION void block_grad_stream(const float* x, const float* coef, int64_t n, float hi, float base,
                                       const float* next, float* dx) {
  alignas(64) float chunk[kPrefetchChunk];
  for (int64_t c = 0; c < n; c += kPrefetchChunk) {
    const int64_t end = std::min(n, c + kPrefetchChunk);
    if (next != nullptr) prefetch_lines(next + c, end - c);
#pragma omp simd
    for (int64_t i = 0; i < end - c; ++i) chunk[i] = exp_nonpos(x[c + i] - hi) * (coef[c + i] + base);
    stream_store(dx + c, chunk, end - c);
  }
}
double block_max(const double* x, int64_t n) { return block_max_impl(x, n); }
void block_sums(const double* x, const double* wv, const double* hv, int64_t L, int64_t count, double m,
                const double* next, double* col, double* suf, double* out) {
  block_sums_impl(x, wv, hv, L, count, m, next, col, suf, out);
}
void block_grad(const double* x, const double* coef, int64_t n, double hi, double base, const double* next,
                double* dx) {
  block_grad_impl(x, coef, n, hi, base, next, dx);
}

// Whether the float dx of the backward goes out with streaming stores
// (common/memory.h, streaming_stores_pay): they pay only with long blocks
// (block_len voxels, at least kBlock/2).
bool use_streaming_stores(const at::Tensor& x, const at::Tensor& dx, int64_t block_len) {
  return dx.scalar_type() == at::kFloat &&
         streaming_stores_pay(x.nbytes(), dx.data_ptr(), dx.nbytes(), block_len >= kBlock / 2);
}

// Half and BFloat16 <-> float over one block, vectorised: fp16 with c10's
// branch-free bit conversions, bf16 as the upper half of a float's bits,
// rounded to nearest even on the way back with NaN kept a quiet NaN, exactly
// as c10::BFloat16 does.
typedef uint16_t __attribute__((may_alias)) u16_alias;

HF_MULTIVERSION void to_float(const at::Half* x, int64_t n, float* out) {
  const u16_alias* h = reinterpret_cast<const u16_alias*>(x);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = c10::detail::fp16_ieee_to_fp32_value(h[i]);
}
HF_MULTIVERSION void from_float(const float* x, int64_t n, at::Half* out) {
  u16_alias* h = reinterpret_cast<u16_alias*>(out);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) h[i] = c10::detail::fp16_ieee_from_fp32_value(x[i]);
}
HF_MULTIVERSION void to_float(const at::BFloat16* x, int64_t n, float* out) {
  const u16_alias* b = reinterpret_cast<const u16_alias*>(x);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(b[i]) << 16;
    std::memcpy(&out[i], &bits, sizeof bits);
  }
}
HF_MULTIVERSION void from_float(const float* x, int64_t n, at::BFloat16* out) {
  u16_alias* b = reinterpret_cast<u16_alias*>(out);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &x[i], sizeof bits);
    const uint16_t rounded = static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    b[i] = x[i] != x[i] ? uint16_t(0x7FC0) : rounded;
  }
}

// The block as acc_t: a pointer into x itself when the dtypes agree, else the
// block converted into `buf`.
template <typename scalar_t, typename acc_t>
inline const acc_t* as_acc(const scalar_t* x, int64_t n, acc_t* buf) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    return x;
  } else {
    to_float(x, n, buf);
    return buf;
  }
}

// Rows are cut into S segments of whole blocks, and the R·S segments run in
// parallel, so that a few rows still share out evenly (B = 1: 29 rows on 2
// threads would leave one thread 15 rows and the other 14).  Each segment
// leaves its max m and its sums scaled to it; a serial pass merges a row's
// segments as a log-sum-exp.  S depends on the shape only (at least 256
// tasks, segments of at least 32768 voxels), so the result does not depend
// on the thread count.
constexpr int64_t kMinTasks = 256;
constexpr int64_t kMinSegment = 32768;

}  // namespace

template <typename scalar_t>
Partial reduce_blocks(const scalar_t* x, const Blocking<at::opmath_type<scalar_t>>& blk, int64_t f0,
                      int64_t f1, at::opmath_type<scalar_t>* buf, at::opmath_type<scalar_t>* col,
                      at::opmath_type<scalar_t>* suf) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t m = -std::numeric_limits<acc_t>::infinity();
  double s = 0, sw = 0, sh = 0, sd = 0;
  bool nan = false;
  for (int64_t f = f0; f < f1; ++f) {
    const auto b = blk.forward(f);
    const int64_t n = b.count * b.L;
    const scalar_t* xf = x + b.offset;
    const acc_t* xb = as_acc(xf, n, buf);
    const acc_t bm = block_max(xb, n);
    if (bm == -std::numeric_limits<acc_t>::infinity()) continue;  // adds exactly 0
    if (std::isnan(bm)) nan = true;
    if (bm > m) {  // rescale the sums to the new max
      const double scale = std::exp(static_cast<double>(m) - static_cast<double>(bm));
      s *= scale;
      sw *= scale;
      sh *= scale;
      sd *= scale;
      m = bm;
    }
    acc_t part[4];
    // the next block starts where this one ends (also across d-planes and
    // rows); prefetching past the tensor's end is harmless
    const acc_t* next = std::is_same_v<scalar_t, acc_t> ? reinterpret_cast<const acc_t*>(xf + n) : nullptr;
    block_sums(xb, blk.wv.data(), b.by_plane ? blk.hv.data() : nullptr, b.L, b.count, m, next, col, suf, part);
    // part[3] = Σ e·J counts planes (from d0) or h-rows (from h0)
    s += part[0];
    sw += part[1];
    sh += part[2] + (b.by_plane ? 0.0 : part[3]) + static_cast<double>(b.h0) * part[0];
    sd += (b.by_plane ? part[3] : 0.0) + static_cast<double>(b.d0) * part[0];
  }
  return {static_cast<double>(m), s, sw, sh, sd, nan};
}

template <typename acc_t>
void finish_row(const Partial* p, int64_t S, int64_t D, int64_t H, int64_t W, acc_t* coords, double* lse,
                acc_t* conf) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double m = -kInf;
  bool nan = false;
  for (int64_t g = 0; g < S; ++g) {
    m = std::max(m, p[g].m);
    nan = nan || p[g].nan;
  }
  double s = 0, sw = 0, sh = 0, sd = 0;
  for (int64_t g = 0; g < S; ++g) {
    if (p[g].m == -kInf) continue;  // an all −inf segment adds exactly 0
    const double k = std::exp(p[g].m - m);
    s += k * p[g].s;
    sw += k * p[g].sw;
    sh += k * p[g].sh;
    sd += k * p[g].sd;
  }
  if (nan) s = std::numeric_limits<double>::quiet_NaN();
  // all −inf: s = 0, m = −inf gives coords 0/0 = NaN, lse = −inf and
  // conf = exp(−inf − −inf) = NaN, as softmax does.
  coords[0] = static_cast<acc_t>(sw / (s * W) - 0.5);
  coords[1] = static_cast<acc_t>(sh / (s * H) - 0.5);
  coords[2] = static_cast<acc_t>(sd / (s * D) - 0.5);
  const double l = m + std::log(s);
  *lse = l;
  *conf = static_cast<acc_t>(std::exp(m - l));
}

namespace {

template <typename scalar_t>
void forward_kernel(const scalar_t* x, int64_t R, int64_t D, int64_t H, int64_t W,
                    at::opmath_type<scalar_t>* coords, double* lse, at::opmath_type<scalar_t>* conf) {
  using acc_t = at::opmath_type<scalar_t>;
  const Blocking<acc_t> blk(D, H, W);
  const int64_t N = D * H * W;
  if (R == 0) return;
  const int64_t S = std::max<int64_t>(1, std::min({(kMinTasks + R - 1) / R, N / kMinSegment, blk.fnb}));
  std::vector<Partial> parts(R * S);
  at::parallel_for(0, R * S, 1, [&](int64_t begin, int64_t end) {
    const int64_t L = blk.super_row_len();
    std::vector<acc_t> buf(std::is_same_v<scalar_t, acc_t> ? 0 : blk.forward_len()), col(L), suf(L);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / S, seg = task % S;
      parts[task] = reduce_blocks(x + r * N, blk, seg * blk.fnb / S, (seg + 1) * blk.fnb / S, buf.data(),
                                  col.data(), suf.data());
    }
  });
  for (int64_t r = 0; r < R; ++r)
    finish_row(parts.data() + r * S, S, D, H, W, coords + r * 3, lse + r, conf + r);
}

// Backward.  With p = softmax(x) over a row and c_a = Σ_v p_v·i_a(v)/N_a − 0.5
// for each axis a ∈ {x: (w, W), y: (h, H), z: (d, D)}:
//
//   ∂p_v/∂x_u = p_v (δ_uv − p_u)
//   ∂c_a/∂x_u = Σ_v i_a(v)/N_a · p_v (δ_uv − p_u)
//             = p_u (i_a(u)/N_a − Σ_v p_v i_a(v)/N_a)
//             = p_u (i_a(u)/N_a − 0.5 − c_a)
//
// so for the incoming gradient g = ∂L/∂c (3 numbers per row):
//
//   dx_u = p_u · Σ_a g_a (i_a(u)/N_a − 0.5 − c_a),   p_u = exp(x_u − lse).
//
// Per row the bracket is affine in (w, h, d): aw·w + ah·h + ad·d − C with
// a_a = g_a/N_a and C = Σ_a g_a (0.5 + c_a), so per block it is
// aw·w + ah·h_rel + base with base = ah·h0 + ad·d − C.  With lse = hi + lo
// (hi in float), p = exp(x − hi)·k with k = exp(−lo), and the kernel forms
//   dx = exp(x − hi) · (coef + k·base),   coef = k·(aw·w + ah·h_rel),
// coef being one table per row (the blocks of a row share their w, h_rel).
//
// RowGrad holds a row's terms; the backward kernel below and the fused
// conv + soft-argmax (csrc/conv_soft_argmax/) call it per block.
}  // namespace

template <typename acc_t>
void RowGrad<acc_t>::setup(const acc_t* g, const acc_t* c, double l) {
  const acc_t aw = g[0] / blk.W;
  ah = g[1] / blk.H;
  ad = g[2] / blk.D;
  C = g[0] * (acc_t(0.5) + c[0]) + g[1] * (acc_t(0.5) + c[1]) + g[2] * (acc_t(0.5) + c[2]);
  hi = static_cast<acc_t>(l);
  k = static_cast<acc_t>(std::exp(static_cast<double>(hi) - l));  // exp(−lo)
  for (int64_t i = 0; i < blk.len; ++i) coef[i] = k * (aw * blk.wv[i] + ah * blk.hv[i]);
}

template <typename acc_t>
void RowGrad<acc_t>::block(const acc_t* x, int64_t j, const acc_t* next, acc_t* dx) const {
  const acc_t base = k * (ah * blk.h0(j) + ad * blk.d(j) - C);
  block_grad(x, coef.data(), blk.size(j), hi, base, next, dx);
}

namespace {

// The R·nb blocks run in parallel as one range (so a few rows share out
// evenly, as in forward); a thread sets up the per-row terms when its range
// enters a new row.  `stream` (float only): see use_streaming_stores.
template <typename scalar_t>
void backward_kernel(const at::opmath_type<scalar_t>* grad, const scalar_t* x,
                     const at::opmath_type<scalar_t>* coords, const double* lse,
                     int64_t R, int64_t D, int64_t H, int64_t W, bool stream, scalar_t* dx) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr bool same = std::is_same_v<scalar_t, acc_t>;
  const Blocking<acc_t> blk(D, H, W);
  const int64_t N = D * H * W;
  at::parallel_for(0, R * blk.nb, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buf(same ? 0 : blk.len), out(same ? 0 : blk.len);
    RowGrad<acc_t> rg(blk);
    int64_t row = -1;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t r = b / blk.nb, j = b % blk.nb;
      if (r != row) {
        row = r;
        rg.setup(grad + r * 3, coords + r * 3, lse[r]);
      }
      const int64_t n = blk.size(j);
      const int64_t off = r * N + blk.offset(j);
      const acc_t* xb = as_acc(x + off, n, buf.data());
      if constexpr (same) {
        // the next block starts where this one ends; past the end is harmless
        const acc_t* next = reinterpret_cast<const acc_t*>(x + off + n);
        if constexpr (std::is_same_v<scalar_t, float>) {
          if (stream) {
            const acc_t base = rg.k * (rg.ah * blk.h0(j) + rg.ad * blk.d(j) - rg.C);
            block_grad_stream(xb, rg.coef.data(), n, rg.hi, base, next, dx + off);
            continue;
          }
        }
        rg.block(xb, j, next, dx + off);
      } else {
        rg.block(xb, j, nullptr, out.data());
        from_float(out.data(), n, dx + off);
      }
    }
    if (stream) stream_fence();  // order the streaming stores before the join
  });
}

// soft_argmax3d_fwd: x (B, K, D, H, W) -> coords (B, K, 3), lse (B, K), conf (B, K);
// coords and conf in the accumulation dtype (float, or double for double
// input), lse in double.
std::tuple<at::Tensor, at::Tensor, at::Tensor> soft_argmax3d_fwd_cpu(const at::Tensor& x_in) {
  check_heatmaps(x_in);
  const at::Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), K = x.size(1), D = x.size(2), H = x.size(3), W = x.size(4);
  const auto acc = at::toOpMathType(x.scalar_type());
  const auto opts = x.options().dtype(acc);
  at::Tensor coords = at::empty({B, K, 3}, opts);
  at::Tensor lse = at::empty({B, K}, opts.dtype(at::kDouble));
  at::Tensor conf = at::empty({B, K}, opts);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_argmax3d_fwd_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    forward_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), B * K, D, H, W, coords.mutable_data_ptr<acc_t>(),
                             lse.mutable_data_ptr<double>(), conf.mutable_data_ptr<acc_t>());
  });
  return {coords, lse, conf};
}

// soft_argmax3d_bwd: grad_coords (B, K, 3), x (B, K, D, H, W), coords (B, K, 3),
// lse (B, K) -> dx (B, K, D, H, W), contiguous, in x's dtype.
at::Tensor soft_argmax3d_bwd_cpu(const at::Tensor& grad_coords, const at::Tensor& x_in,
                                 const at::Tensor& coords, const at::Tensor& lse) {
  check_heatmaps(x_in);
  const int64_t B = x_in.size(0), K = x_in.size(1), D = x_in.size(2), H = x_in.size(3), W = x_in.size(4);
  HYBRIK_CHECK_SHAPE(grad_coords, B, K, 3);
  HYBRIK_CHECK_SHAPE(coords, B, K, 3);
  HYBRIK_CHECK_SHAPE(lse, B, K);
  const at::Tensor x = x_in.contiguous();
  const auto acc = at::toOpMathType(x.scalar_type());
  const at::Tensor g = grad_coords.to(acc).contiguous();
  const at::Tensor c = coords.to(acc).contiguous();
  const at::Tensor l = lse.to(at::kDouble).contiguous();
  at::Tensor dx = cached_empty(x.sizes(), x.options());
  const bool stream = use_streaming_stores(x, dx, block_rows(H, W) * W);
  advise_huge_pages(dx.data_ptr(), dx.nbytes());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_argmax3d_bwd_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    backward_kernel<scalar_t>(g.const_data_ptr<acc_t>(), x.const_data_ptr<scalar_t>(), c.const_data_ptr<acc_t>(),
                              l.const_data_ptr<double>(), B * K, D, H, W, stream,
                              dx.mutable_data_ptr<scalar_t>());
  });
  return dx;
}

}  // namespace

template Partial reduce_blocks<float>(const float*, const Blocking<float>&, int64_t, int64_t, float*,
                                      float*, float*);
template Partial reduce_blocks<double>(const double*, const Blocking<double>&, int64_t, int64_t, double*,
                                       double*, double*);
template void finish_row<float>(const Partial*, int64_t, int64_t, int64_t, int64_t, float*, double*, float*);
template void finish_row<double>(const Partial*, int64_t, int64_t, int64_t, int64_t, double*, double*, double*);
template struct RowGrad<float>;
template struct RowGrad<double>;

}  // namespace soft_argmax_cpu
}  // namespace hybrik_fast

// the schemas are in soft_argmax_op.cpp
TORCH_LIBRARY_IMPL(hybrik_fast_C, CPU, m) {
  m.impl("soft_argmax3d_fwd", &hybrik_fast::soft_argmax_cpu::soft_argmax3d_fwd_cpu);
  m.impl("soft_argmax3d_bwd", &hybrik_fast::soft_argmax_cpu::soft_argmax3d_bwd_cpu);
}
