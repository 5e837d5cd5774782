// The CPU's lane groups: N samples at once through the per-sample drivers of
// ik_tree.h, with the compute type T = simd::Lanes<N> (csrc/common/simd.h),
// one sample per lane.  The formulas are those of ik_tree.h and the headers
// it includes; what is here is the layout (a group's inputs transposed to
// structure-of-arrays, the outputs back) and the pelvis solver's rare path,
// which runs lane by lane.
//
// Shapes, per group (n <= N samples, each as in ik_tree.h):
//   joints (n, 29, 3), twist (n, 23, 2), rest (n, 29, 3), rot (n, 24, 3, 3);
//   in the transposed buffers element k of sample l is buf[k][l].  Lanes past
//   n repeat sample n − 1 and are not stored.
#pragma once

#include "common/simd.h"
#include "ik/ik_op.h"  // the per-sample strides
#include "ik/ik_tree.h"

namespace hybrik_fast {
namespace ik {

template <int N> struct ElementOf<simd::Lanes<N>> { using type = double; };

// ---------------------------------------------------------------- pelvis
//
// The pelvis solver's rare Jacobi path (where Newton's cofactor test fails)
// runs lane by lane through the scalar code.  These overloads are more
// specialised than pelvis.h's templates: pelvis_forward and pelvis_vjp,
// instantiated with T = Lanes<N>, reach them by argument-dependent lookup.

template <int N> IK_INLINE Mat3<double> lane(const Mat3<simd::Lanes<N>>& a, int l) {
  Mat3<double> r;
  for (int k = 0; k < 9; ++k) r.m[k] = a.m[k][l];
  return r;
}

template <int N>
IK_INLINE void jacobi_quat(const Mat3<simd::Lanes<N>>& S, simd::Lanes<N> inv_scale, simd::Mask<N> use,
                           simd::Lanes<N> q[4]) {
  if (!any_(use)) return;
  for (int l = 0; l < N; ++l) {
    if (!use[l]) continue;
    double ql[4];
    jacobi_quat(lane(S, l), inv_scale[l], true, ql);
    for (int k = 0; k < 4; ++k) q[k].set(l, ql[k]);
  }
}

template <int N>
IK_INLINE void jacobi_vjp_u(const Mat3<simd::Lanes<N>>& S, simd::Lanes<N> inv_scale, const Mat3<simd::Lanes<N>>& gR,
                            simd::Mask<N> use, simd::Lanes<N> q[4], simd::Lanes<N> u[4]) {
  if (!any_(use)) return;
  for (int l = 0; l < N; ++l) {
    if (!use[l]) continue;
    double ql[4], ul[4];
    jacobi_vjp_u(lane(S, l), inv_scale[l], lane(gR, l), true, ql, ul);
    for (int k = 0; k < 4; ++k) {
      q[k].set(l, ql[k]);
      u[k].set(l, ul[k]);
    }
  }
}

// ---------------------------------------------------------------- layout

// x: n samples of K values each, contiguous -> out[k][l]: N x N blocks
// loaded by rows (samples) and transposed, the last K mod N values one by one
template <int N, int K, typename S>
IK_INLINE void to_lanes(const S* x, int n, simd::Lanes<N>* out) {
  const S* xl[N];
  for (int l = 0; l < N; ++l) xl[l] = x + static_cast<long>(l < n ? l : n - 1) * K;
  constexpr int K0 = K / N * N;
  for (int k = 0; k < K0; k += N) {
    typename simd::VectorOf<N>::D r[N];
    for (int l = 0; l < N; ++l) r[l] = simd::load_row<N>(xl[l] + k);
    simd::transpose<N>(r);
    for (int m = 0; m < N; ++m) out[k + m] = simd::Lanes<N>(r[m]);
  }
  for (int k = K0; k < K; ++k)
    for (int l = 0; l < N; ++l) out[k].set(l, double(xl[l][k]));
}

// in[k][l] -> x: n samples of K values each (the reverse of to_lanes)
template <int N, int K, typename S>
IK_INLINE void from_lanes(const simd::Lanes<N>* in, int n, S* x) {
  constexpr int K0 = K / N * N;
  for (int k = 0; k < K0; k += N) {
    typename simd::VectorOf<N>::D r[N];
    for (int m = 0; m < N; ++m) r[m] = in[k + m].v;
    simd::transpose<N>(r);
    for (int l = 0; l < n; ++l) simd::store_row<N>(r[l], x + static_cast<long>(l) * K + k);
  }
  for (int l = 0; l < n; ++l)
    for (int k = K0; k < K; ++k) x[static_cast<long>(l) * K + k] = S(in[k][l]);
}

// ---------------------------------------------------------------- drivers

// ik_forward_sample for the n <= N samples at joints, twist, rest -> rot
template <typename S, Mode M, int N>
IK_INLINE void ik_forward_group(const S* joints, const S* twist, const S* rest, double fallback, S* rot, int n) {
  using T = simd::Lanes<N>;
  T j[kJointsStride], tw[kTwistStride], r[kJointsStride], out[kRotStride];
  to_lanes<N, kJointsStride>(joints, n, j);
  to_lanes<N, kTwistStride>(twist, n, tw);
  to_lanes<N, kJointsStride>(rest, n, r);
  ik_forward_sample<T, M, T, S>(j, tw, r, fallback, out);
  from_lanes<N, kRotStride>(out, n, rot);
}

// ik_backward_sample for the n <= N samples
template <typename S, Mode M, int N>
IK_INLINE void ik_backward_group(const S* grad_rot, const S* joints, const S* twist, const S* rest, double fallback,
                                 S* grad_joints, S* grad_twist, S* grad_rest, int n) {
  using T = simd::Lanes<N>;
  T g[kRotStride], j[kJointsStride], tw[kTwistStride], r[kJointsStride];
  T gj[kJointsStride], gtw[kTwistStride], gr[kJointsStride];
  to_lanes<N, kRotStride>(grad_rot, n, g);
  to_lanes<N, kJointsStride>(joints, n, j);
  to_lanes<N, kTwistStride>(twist, n, tw);
  to_lanes<N, kJointsStride>(rest, n, r);
  ik_backward_sample<T, M, T, S>(g, j, tw, r, fallback, gj, gtw, gr);
  from_lanes<N, kJointsStride>(gj, n, grad_joints);
  from_lanes<N, kTwistStride>(gtw, n, grad_twist);
  from_lanes<N, kJointsStride>(gr, n, grad_rest);
}

}  // namespace ik
}  // namespace hybrik_fast
