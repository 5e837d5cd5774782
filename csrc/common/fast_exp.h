// A fast exp for the vectorised loops of the CPU kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace hybrik_fast {

// exp(x) for x <= 0 (or barely above) in float, in a form the compiler
// vectorises (no libm call).  The soft-argmax loops that call it are bound by
// their count of vector ops (about 15 per 16 voxels), so every op counts:
// * n = round(x·log2e) by the round-to-nearest "magic number": t = x·log2e +
//   1.5·2^23 + 127 holds n + 127 in its low mantissa bits, so the biased
//   exponent of 2^n is (bits of t) << 23 in one shift (the magic's own bits
//   shift out);
// * r = fma(−n, ln2_f, x), |r| <= ln2/2 (ln2_f = ln2 rounded to float, off by
//   1.9e-9: r is off by at most 126 · 1.9e-9 = 2.4e-7 at the bottom of the
//   range and by under 4e-8 for x > −20, where the terms that matter are; a
//   Cody–Waite hi/lo split's second FMA cost 9% of the forward);
// * a degree-5 polynomial for exp(r) in Horner form (5 FMAs; coefficients
//   fitted for minimax relative error on |r| <= ln2/2: 7.5e-8 in exact
//   arithmetic, 2.1e-7 as evaluated in float).
// Measured against double exp over [−87, 0]: relative error at most 4.3e-7
// (2.4e-7 for x > −20).  Below the smallest normal result (x < −87,
// including −inf, where the bits above are garbage) it returns 0; NaN stays
// NaN (NaN < c is false, and NaN·2^n is NaN).
inline __attribute__((always_inline)) float exp_nonpos(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2 = 0.693147180559945f;
  constexpr float kMagic = 12582912.0f + 127.0f;  // 1.5 * 2^23, plus the exponent bias
  constexpr float kMin = -87.0f;                  // exp(-87) ~ 1.6e-38, still normal
  const float t = x * kLog2e + kMagic;  // low mantissa bits hold round(x·log2e) + 127
  const float n = t - kMagic;
  const float r = x - n * kLn2;  // one FMA: n·ln2 exact before the rounding
  float p = 8.29765201e-3f;
  p = p * r + 4.19153832e-2f;
  p = p * r + 1.66675746e-1f;
  p = p * r + 4.99988943e-1f;
  p = p * r + 9.99999702e-1f;
  p = p * r + 1.00000012e+0f;
  uint32_t ti;
  std::memcpy(&ti, &t, sizeof ti);
  const uint32_t bits = ti << 23;  // t's bits are 0x4B400000 + n + 127: 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < kMin ? 0.0f : p * scale;
}

inline double exp_nonpos(double x) { return std::exp(x); }

}  // namespace hybrik_fast
