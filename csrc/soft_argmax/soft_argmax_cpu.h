// The CPU soft-argmax's row reduction, shared by the fused soft-argmax
// (soft_argmax_cpu.cpp, which defines these) and the fused 1×1 conv +
// soft-argmax (csrc/conv_soft_argmax/conv_soft_argmax_cpu.cpp), which feeds
// it tiles of logits it has just computed.  A "row" is the D·H·W voxels of
// one joint; the formulas are at the top of soft_argmax_cpu.cpp.
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace hybrik_fast {
namespace soft_argmax_cpu {

// Voxels per block: 4096 floats = 16 KiB, half of a typical L1 data cache.
constexpr int64_t kBlock = 4096;

// h-rows per block: as many as fit kBlock voxels, at least one, at most the plane.
inline int64_t block_rows(int64_t H, int64_t W) { return std::min<int64_t>(H, std::max<int64_t>(1, kBlock / W)); }

// How a row is cut into blocks: `rows` h-rows of W voxels each, never
// crossing a d-plane; nbh blocks per d-plane, nb per row (the last block of a
// plane may have fewer h-rows).  wv/hv hold the per-voxel w and relative-h
// tables of a full block.  The backward walks these blocks.
//
// The forward walks the same blocks (planes = 1, super-rows of one h-row)
// except where h-rows are short (W < kShortRow) and a d-plane holds at most
// kPlaneBlock/2 voxels: it then takes `planes` whole d-planes per block
// (super-rows of one plane each: see block_sums), fnb blocks per row.  The
// thresholds are where per-plane blocks measured faster ("Measurement logs";
// the per-plane block ends in a pass over a plane-long col and suf).
constexpr int64_t kShortRow = 32;
constexpr int64_t kPlaneBlock = 16384;

template <typename acc_t>
struct Blocking {
  int64_t D, H, W, rows, len, nbh, nb, planes, fnb;
  std::vector<acc_t> wv, hv;  // len entries, or H·W when planes > 1
  Blocking(int64_t D_, int64_t H_, int64_t W_) : D(D_), H(H_), W(W_) {
    rows = block_rows(H, W);
    len = rows * W;
    nbh = (H + rows - 1) / rows;
    nb = D * nbh;
    planes = (W < kShortRow && H * W <= kPlaneBlock / 2) ? kPlaneBlock / (H * W) : 1;
    fnb = planes > 1 ? (D + planes - 1) / planes : nb;
    const int64_t table = std::max(len, super_row_len());
    wv.resize(table);
    hv.resize(table);
    for (int64_t i = 0; i < table; ++i) {
      wv[i] = static_cast<acc_t>(i % W);
      hv[i] = static_cast<acc_t>(i / W);
    }
  }
  // block j of a row: its d, its first h and its voxel offset in the row
  int64_t d(int64_t j) const { return j / nbh; }
  int64_t h0(int64_t j) const { return (j % nbh) * rows; }
  int64_t offset(int64_t j) const { return (d(j) * H + h0(j)) * W; }
  int64_t size(int64_t j) const { return std::min(rows, H - h0(j)) * W; }

  // Forward block f of a row: its voxels [offset, offset + count·L) are
  // `count` super-rows of L voxels, starting at plane d0, h-row h0.
  struct Forward {
    int64_t offset, count, L, d0, h0;
    bool by_plane;  // super-row = one d-plane (else one h-row)
  };
  Forward forward(int64_t f) const {
    if (planes > 1) {
      const int64_t d0 = f * planes;
      return {d0 * H * W, std::min(planes, D - d0), H * W, d0, 0, true};
    }
    return {offset(f), size(f) / W, W, d(f), h0(f), false};
  }
  int64_t forward_len() const { return planes > 1 ? planes * H * W : len; }  // voxels of the largest block
  int64_t super_row_len() const { return planes > 1 ? H * W : W; }
};


// One segment's max m, and Σ e, Σ e·w, Σ e·h, Σ e·d with e = exp(x − m).
struct Partial {
  double m, s, sw, sh, sd;
  bool nan;
};

// Forward: the Partial of forward blocks [f0, f1) of the row at x (the
// fused conv + soft-argmax passes a tile of d-planes as a row of its own).
// buf: forward_len() scratch (used only when scalar_t is not acc_t); col,
// suf: super_row_len() scratch each.
template <typename scalar_t>
Partial reduce_blocks(const scalar_t* x, const Blocking<at::opmath_type<scalar_t>>& blk, int64_t f0,
                      int64_t f1, at::opmath_type<scalar_t>* buf, at::opmath_type<scalar_t>* col,
                      at::opmath_type<scalar_t>* suf);

// The S partials of one row merged (a log-sum-exp) into its coords[0..3),
// lse and conf.
template <typename acc_t>
void finish_row(const Partial* parts, int64_t S, int64_t D, int64_t H, int64_t W, acc_t* coords, double* lse,
                acc_t* conf);

// Backward of one row (derivation above backward_kernel in
// soft_argmax_cpu.cpp): set up once per row from its incoming gradient g[3],
// coords c[3] and lse, then block(x, j, dx) writes the gradient of the
// logits of backward block j (blk.size(j) voxels at x) to dx; dx may be x.
template <typename acc_t>
struct RowGrad {
  const Blocking<acc_t>& blk;
  acc_t ah = 0, ad = 0, C = 0, hi = 0, k = 0;
  std::vector<acc_t> coef;  // blk.len entries
  explicit RowGrad(const Blocking<acc_t>& b) : blk(b), coef(b.len) {}
  void setup(const acc_t* g, const acc_t* c, double lse);
  void block(const acc_t* x, int64_t j, const acc_t* next, acc_t* dx) const;
};

}  // namespace soft_argmax_cpu
}  // namespace hybrik_fast
