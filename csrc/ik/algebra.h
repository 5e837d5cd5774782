// Scalars, 3-vectors and 3x3 matrices for the IK, per sample, in registers.
#pragma once

#include <cmath>

#include "ik/host_device.h"

namespace hybrik_fast {
namespace ik {

// ---------------------------------------------------------------- scalars

template <typename T> HOST_DEVICE constexpr T machine_eps();
template <> HOST_DEVICE constexpr float machine_eps<float>() { return 1.1920928955078125e-07f; }
template <> HOST_DEVICE constexpr double machine_eps<double>() { return 2.220446049250313e-16; }

IK_INLINE float sqrt_(float x) { return ::sqrtf(x); }
IK_INLINE double sqrt_(double x) { return ::sqrt(x); }
IK_INLINE float abs_(float x) { return ::fabsf(x); }
IK_INLINE double abs_(double x) { return ::fabs(x); }
// false for ±inf and NaN (no -ffast-math anywhere in this build)
template <typename T> IK_INLINE auto finite_(T x) { return x - x == T(0); }

// Per-sample branches are written as selects, so that T may also be a
// vector of samples (simd::Lanes in csrc/common/simd.h, the CPU's lane
// groups), whose comparisons give a mask_t<T>: bool here.  A branch whose
// alternative is costly is guarded by any_(mask), a plain branch here.
template <typename T> using mask_t = decltype(T() < T());
// the number type of T (ik_simd.h: double for simd::Lanes)
template <typename T> struct ElementOf { using type = T; };
IK_INLINE float select_(bool m, float a, float b) { return m ? a : b; }
IK_INLINE double select_(bool m, double a, double b) { return m ? a : b; }
IK_INLINE bool any_(bool m) { return m; }

// ---------------------------------------------------------------- algebra

template <typename T> struct Vec3 { T x, y, z; };
template <typename T> struct Mat3 { T m[9]; };  // row-major

template <typename T> IK_INLINE Vec3<T> operator+(Vec3<T> a, Vec3<T> b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
template <typename T> IK_INLINE Vec3<T> operator-(Vec3<T> a, Vec3<T> b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
template <typename T> IK_INLINE Vec3<T> operator*(T s, Vec3<T> a) { return {s * a.x, s * a.y, s * a.z}; }
template <typename T> IK_INLINE void operator+=(Vec3<T>& a, Vec3<T> b) { a = a + b; }
template <typename T> IK_INLINE void operator-=(Vec3<T>& a, Vec3<T> b) { a = a - b; }
template <typename T> IK_INLINE T dot(Vec3<T> a, Vec3<T> b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
template <typename T> IK_INLINE T norm(Vec3<T> a) { return sqrt_(dot(a, a)); }
template <typename T> IK_INLINE Vec3<T> cross(Vec3<T> a, Vec3<T> b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

template <typename T> IK_INLINE Mat3<T> zeros3() { return {{0, 0, 0, 0, 0, 0, 0, 0, 0}}; }
template <typename T> IK_INLINE Mat3<T> eye3() { return {{1, 0, 0, 0, 1, 0, 0, 0, 1}}; }
template <typename T> IK_INLINE Mat3<T> operator+(const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> r;
  for (int k = 0; k < 9; ++k) r.m[k] = a.m[k] + b.m[k];
  return r;
}
template <typename T> IK_INLINE void operator+=(Mat3<T>& a, const Mat3<T>& b) { a = a + b; }
template <typename T> IK_INLINE Mat3<T> operator*(T s, const Mat3<T>& a) {
  Mat3<T> r;
  for (int k = 0; k < 9; ++k) r.m[k] = s * a.m[k];
  return r;
}
// A B
template <typename T> IK_INLINE Mat3<T> mm(const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      r.m[3 * i + j] = a.m[3 * i] * b.m[j] + a.m[3 * i + 1] * b.m[3 + j] + a.m[3 * i + 2] * b.m[6 + j];
  return r;
}
// A Bᵀ
template <typename T> IK_INLINE Mat3<T> mm_nt(const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      r.m[3 * i + j] = a.m[3 * i] * b.m[3 * j] + a.m[3 * i + 1] * b.m[3 * j + 1] + a.m[3 * i + 2] * b.m[3 * j + 2];
  return r;
}
// Aᵀ B
template <typename T> IK_INLINE Mat3<T> mm_tn(const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      r.m[3 * i + j] = a.m[i] * b.m[j] + a.m[3 + i] * b.m[3 + j] + a.m[6 + i] * b.m[6 + j];
  return r;
}
// A v
template <typename T> IK_INLINE Vec3<T> mv(const Mat3<T>& a, Vec3<T> v) {
  return {a.m[0] * v.x + a.m[1] * v.y + a.m[2] * v.z,
          a.m[3] * v.x + a.m[4] * v.y + a.m[5] * v.z,
          a.m[6] * v.x + a.m[7] * v.y + a.m[8] * v.z};
}
// Aᵀ v
template <typename T> IK_INLINE Vec3<T> mtv(const Mat3<T>& a, Vec3<T> v) {
  return {a.m[0] * v.x + a.m[3] * v.y + a.m[6] * v.z,
          a.m[1] * v.x + a.m[4] * v.y + a.m[7] * v.z,
          a.m[2] * v.x + a.m[5] * v.y + a.m[8] * v.z};
}
// a bᵀ
template <typename T> IK_INLINE Mat3<T> outer(Vec3<T> a, Vec3<T> b) {
  return {{a.x * b.x, a.x * b.y, a.x * b.z, a.y * b.x, a.y * b.y, a.y * b.z, a.z * b.x, a.z * b.y, a.z * b.z}};
}
// [v]×, the cross-product matrix
template <typename T> IK_INLINE Mat3<T> skew(Vec3<T> v) {
  return {{0, -v.z, v.y, v.z, 0, -v.x, -v.y, v.x, 0}};
}
// axial(A) with <A, [u]×> = u · axial(A)  (the adjoint of skew)
template <typename T> IK_INLINE Vec3<T> axial(const Mat3<T>& a) {
  return {a.m[7] - a.m[5], a.m[2] - a.m[6], a.m[3] - a.m[1]};
}
template <typename T> IK_INLINE T trace(const Mat3<T>& a) { return a.m[0] + a.m[4] + a.m[8]; }
template <typename T> IK_INLINE T inner(const Mat3<T>& a, const Mat3<T>& b) {
  T s = 0;
  for (int k = 0; k < 9; ++k) s += a.m[k] * b.m[k];
  return s;
}
// (A + Aᵀ) v
template <typename T> IK_INLINE Vec3<T> sym_mv(const Mat3<T>& a, Vec3<T> v) {
  return mv(a, v) + mtv(a, v);
}
template <typename T> IK_INLINE Vec3<T> select_(mask_t<T> m, Vec3<T> a, Vec3<T> b) {
  return {select_(m, a.x, b.x), select_(m, a.y, b.y), select_(m, a.z, b.z)};
}
template <typename T> IK_INLINE Mat3<T> select_(mask_t<T> m, const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> r;
  for (int k = 0; k < 9; ++k) r.m[k] = select_(m, a.m[k], b.m[k]);
  return r;
}

}  // namespace ik
}  // namespace hybrik_fast
