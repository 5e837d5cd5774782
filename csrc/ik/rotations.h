// The two rotations of each step of the HybrIK recursion: swing, the
// minimal rotation taking a rest bone onto its target, and twist about the
// bone; each as a forward and a vector-Jacobian product (VJP).
#pragma once

#include "ik/algebra.h"

namespace hybrik_fast {
namespace ik {

// the swing's quaternion counts as zero (antiparallel bone and target) below
// this many machine epsilons times |t||p| (reference: ANTIPARALLEL_ULPS)
constexpr double kAntiparallelUlps = 64.0;

// ---------------------------------------------------------------- swing
//
// swing(t → p): the minimal rotation taking t̂ to p̂, from the unnormalised
// quaternion (w, v) = (|t||p| + t·p, t × p):
//   R = ((w² − |v|²) I + 2 v vᵀ + 2 w [v]×) / n2,   n2 = w² + |v|² = |q|².
// Branches (decided exactly as the reference does; NaN takes "regular"):
//   zero      |t||p| = 0                       -> I
//   halfturn  n2 <= (64 ε |t||p|)²             -> 2 a aᵀ − I, a = unit(t × e),
//             e the axis of the smallest |t_k| (first on ties)
//   regular   otherwise.
// ε is the machine epsilon of the input dtype (the reference's), passed in,
// since the maths may run in a wider type than the input.  tn = |t| and
// pn = |p| come from the caller, which has them off its serial chain (ik_tree
// passes |x| for |G[pa]ᵀ x|, G[pa] being a rotation).

template <typename T> struct Swing {
  mask_t<T> zero, halfturn;  // the branch (neither: regular)
  T tn, pn, w, n2;           // |t|, |p|, quaternion scalar part, |q|²
  Vec3<T> v;                 // quaternion vector part t × p
};

template <typename T>
IK_INLINE Swing<T> swing_parts(Vec3<T> t, T tn, Vec3<T> p, T pn, T eps) {
  Swing<T> s;
  s.tn = tn;
  s.pn = pn;
  const T m = tn * s.pn;
  s.w = m + dot(t, p);
  s.v = cross(t, p);
  s.n2 = s.w * s.w + dot(s.v, s.v);
  const T thr = T(kAntiparallelUlps) * eps * m;
  s.zero = m == T(0);
  s.halfturn = !s.zero && s.n2 <= thr * thr;
  return s;
}

// the coordinate axis on which |t| is smallest, first on ties (torch.argmin)
template <typename T>
IK_INLINE Vec3<T> smallest_axis(Vec3<T> t) {
  const T ax = abs_(t.x), ay = abs_(t.y), az = abs_(t.z);
  const mask_t<T> y = ay < ax;
  const mask_t<T> z = az < select_(y, ay, ax);
  return {select_(y || z, T(0), T(1)), select_(y && !z, T(1), T(0)), select_(z, T(1), T(0))};
}

// R = scale · M: M unnormalised (regular: scale = 1 / n2) or, in the other
// branches, R itself (scale = 1), so that a caller can multiply by M while
// the division is in flight
template <typename T>
IK_INLINE Mat3<T> swing_matrix(const Swing<T>& s, Vec3<T> t, T& scale) {
  const Vec3<T> v = s.v;
  Mat3<T> r = T(2) * outer(v, v) + (T(2) * s.w) * skew(v);
  const T d = s.w * s.w - dot(v, v);
  r.m[0] += d; r.m[4] += d; r.m[8] += d;
  const mask_t<T> special = s.zero || s.halfturn;
  scale = select_(special, T(1), T(1) / s.n2);
  if (any_(s.halfturn)) {
    const Vec3<T> u = cross(t, smallest_axis(t));
    const Vec3<T> a = (T(1) / norm(u)) * u;
    Mat3<T> h = T(2) * outer(a, a);
    h.m[0] -= T(1); h.m[4] -= T(1); h.m[8] -= T(1);
    r = select_(s.halfturn, h, r);
  }
  return select_(s.zero, eye3<T>(), r);
}

// VJP of swing: given R = swing(t → p) and gR = ∂L/∂R, add ∂L/∂t to gt and
// ∂L/∂p to gp.
//
// regular: R = M / n2, M = (w² − |v|²) I + 2 v vᵀ + 2 w [v]×.
//   gM  = gR / n2,  gn2 = −<gR, R> / n2
//   gw  = 2w tr(gM) + 2 v·axial(gM) + 2w gn2
//   gv  = −2 tr(gM) v + 2 (gM + gMᵀ) v + 2w axial(gM) + 2 v gn2
//   w = |t||p| + t·p, v = t × p:
//   gt  = gw (|p|/|t| t + p) + p × gv,   gp = gw (|t|/|p| p + t) + gv × t.
// halfturn: R = 2 a aᵀ − I, a = u/|u|, u = t × e (e fixed: piecewise):
//   ga = 2 (gR + gRᵀ) a,  gu = (ga − a (a·ga)) / |u|,  gt = e × gu,  gp = 0.
// zero: R = I, no gradient.
template <typename T>
IK_INLINE void swing_vjp(const Swing<T>& s, Vec3<T> t, Vec3<T> p, const Mat3<T>& R, const Mat3<T>& gR,
                                  Vec3<T>& gt, Vec3<T>& gp) {
  const Vec3<T> zero{0, 0, 0};
  Vec3<T> gth = zero;  // the half turn's gt
  if (any_(s.halfturn)) {
    const Vec3<T> e = smallest_axis(t);
    const Vec3<T> u = cross(t, e);
    const T un = norm(u);
    const Vec3<T> a = (T(1) / un) * u;
    const Vec3<T> ga = T(2) * sym_mv(gR, a);
    const Vec3<T> gu = (T(1) / un) * (ga - dot(a, ga) * a);
    gth = cross(e, gu);
  }
  const mask_t<T> special = s.zero || s.halfturn;
  const T inv_n2 = T(1) / s.n2;
  const Mat3<T> gM = inv_n2 * gR;
  const T gn2 = -inner(gR, R) * inv_n2;
  const T tr = trace(gM);
  const Vec3<T> ax = axial(gM);
  const Vec3<T> v = s.v;
  const T gw = T(2) * s.w * (tr + gn2) + T(2) * dot(v, ax);
  const Vec3<T> gv = (T(2) * (gn2 - tr)) * v + T(2) * sym_mv(gM, v) + (T(2) * s.w) * ax;
  const T inv_m = T(1) / (s.tn * s.pn);
  gt += select_(special, select_(s.halfturn, gth, zero), gw * ((s.pn * s.pn * inv_m) * t + p) + cross(p, gv));
  gp += select_(special, zero, gw * ((s.tn * s.tn * inv_m) * p + t) + cross(gv, t));
}

// ---------------------------------------------------------------- twist
//
// twist(t, Φ) = I + s [k]× + (1 − c) [k]×², k = t/|t|, (c, s) = Φ/|Φ|;
// the identity if Φ = (0, 0) or t = 0 (NaN propagates).

template <typename T> struct Twist {
  mask_t<T> ok;  // false: the identity
  Vec3<T> k;   // t / |t|
  T c, s;      // Φ / |Φ|
  T inv_tn, inv_r;
};

// inv_tn = 1/|t| and inv_r = 1/|Φ| come from the caller (ik_tree computes
// them for all joints at once); |Φ| = 0 exactly when 1/|Φ| = inf, since
// |Φ|² >= the smallest subnormal gives 1/|Φ| < 1e162.
template <typename T>
IK_INLINE Twist<T> twist_parts(Vec3<T> t, T tn, T inv_tn, T a, T b, T inv_r) {
  Twist<T> w;
  w.ok = (inv_r != T(INFINITY)) && (tn != T(0));
  w.inv_tn = inv_tn;
  w.inv_r = inv_r;
  w.k = w.inv_tn * t;
  w.c = select_(w.ok, a * w.inv_r, T(1));
  w.s = select_(w.ok, b * w.inv_r, T(0));
  return w;
}

template <typename T>
IK_INLINE Mat3<T> twist_matrix(const Twist<T>& w) {
  const Vec3<T> k = w.k;
  const T c1 = T(1) - w.c;
  // I + s K + (1 − c) K²,  K² = k kᵀ − |k|² I
  Mat3<T> out = c1 * outer(k, k) + w.s * skew(k);
  const T d = T(1) - c1 * dot(k, k);
  out.m[0] += d; out.m[4] += d; out.m[8] += d;
  return select_(w.ok, out, eye3<T>());
}

// VJP of twist, differentiating the form twist_matrix evaluates,
// R = I + s [k]× + (1 − c)(k kᵀ − |k|² I):
//   gs = k·axial(gR),  gc = −(kᵀ gR k − |k|² tr gR),
//   gk = s axial(gR) + (1 − c)((gR + gRᵀ) k − 2 tr(gR) k),
//   gt = (gk − k (k·gk)) / |t|                         (k = t/|t|)
//   g(a, b) = (g(c, s) − (c, s) ((c, s)·g(c, s))) / |Φ|  ((c, s) = Φ/|Φ|).
// Identity branch: no gradient.
template <typename T>
IK_INLINE void twist_vjp(const Twist<T>& w, const Mat3<T>& gR, Vec3<T>& gt, T& ga, T& gb) {
  const Vec3<T> k = w.k;
  const T c = w.c, s = w.s;
  const Vec3<T> ax = axial(gR);
  const Vec3<T> gRk = sym_mv(gR, k);  // (gR + gRᵀ) k
  const T tr = trace(gR), kk = dot(k, k);
  const T gs = dot(k, ax);
  const T gc = -(T(0.5) * dot(k, gRk) - kk * tr);
  const Vec3<T> gk = s * ax + (T(1) - c) * (gRk - (T(2) * tr) * k);
  gt += select_(w.ok, w.inv_tn * (gk - dot(k, gk) * k), Vec3<T>{0, 0, 0});
  const T proj = c * gc + s * gs;
  ga = select_(w.ok, (gc - c * proj) * w.inv_r, ga);
  gb = select_(w.ok, (gs - s * proj) * w.inv_r, gb);
}

}  // namespace ik
}  // namespace hybrik_fast
