// The pelvis rotation of the IK: the rotation that best aligns the rest
// pelvis children with their targets, forward and VJP.
#pragma once

#include "ik/algebra.h"
#include "ik/topology.h"

namespace hybrik_fast {
namespace ik {

// ---------------------------------------------------------------- pelvis
//
// Kabsch with the reflection fix, by Horn's quaternion method (Horn 1987,
// "Closed-form solution of absolute orientation using unit quaternions",
// JOSA A 4(4)).  With S = Σ_c t_c p_cᵀ the rotation maximising tr(R S) over
// SO(3) is R(q) for q the eigenvector of the largest eigenvalue of the
// symmetric 4x4
//   N = [ tr S        Syz−Szy       Szx−Sxz       Sxy−Syx     ]
//       [ Syz−Szy     Sxx−Syy−Szz   Sxy+Syx       Szx+Sxz     ]
//       [ Szx−Sxz     Sxy+Syx      −Sxx+Syy−Szz   Syz+Szy     ]
//       [ Sxy−Syx     Szx+Sxz       Syz+Szy      −Sxx−Syy+Szz ].
// Its eigenvalues are ±σ1 ± σ2 ± d σ3 (d = det(V Uᵀ), even numbers of minus
// signs), so the top one, σ1 + σ2 + d σ3, is simple and q equals the SVD
// answer V diag(1, 1, d) Uᵀ whenever σ2 + d σ3 > 0, which is when that answer
// is unique, e.g. also when one pelvis child has zero length (σ3 = 0).  The
// top eigenvector comes from Newton on the characteristic polynomial
// (horn_top_newton) or, where that is ill-conditioned, from cyclic Jacobi
// sweeps (Golub & Van Loan, Matrix Computations, §8.5), both on N / max|S|.
// S = 0 gives the identity; a non-finite S gives NaN.

constexpr int kJacobiMaxSweeps = 16;

template <typename T> struct Eig4 {
  T lam[4];      // eigenvalues (of N / scale)
  T vec[4][4];   // vec[k][j]: component k of eigenvector j
  int top;       // index of the largest eigenvalue
};

template <typename T>
IK_INLINE void horn_matrix(const Mat3<T>& S, T n[4][4]) {
  const T xx = S.m[0], xy = S.m[1], xz = S.m[2];
  const T yx = S.m[3], yy = S.m[4], yz = S.m[5];
  const T zx = S.m[6], zy = S.m[7], zz = S.m[8];
  n[0][0] = xx + yy + zz; n[0][1] = yz - zy;      n[0][2] = zx - xz;       n[0][3] = xy - yx;
  n[1][1] = xx - yy - zz; n[1][2] = xy + yx;      n[1][3] = zx + xz;
  n[2][2] = -xx + yy - zz; n[2][3] = yz + zy;
  n[3][3] = -xx - yy + zz;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < i; ++j) n[i][j] = n[j][i];
}

// adjoint of horn_matrix: ∂L/∂S from ∂L/∂N (any 4x4, not necessarily symmetric)
template <typename T>
IK_INLINE Mat3<T> horn_matrix_vjp(const T g[4][4]) {
  const T d0 = g[0][0], d1 = g[1][1], d2 = g[2][2], d3 = g[3][3];
  const T h01 = g[0][1] + g[1][0], h02 = g[0][2] + g[2][0], h03 = g[0][3] + g[3][0];
  const T h12 = g[1][2] + g[2][1], h13 = g[1][3] + g[3][1], h23 = g[2][3] + g[3][2];
  Mat3<T> gS;
  gS.m[0] = d0 + d1 - d2 - d3;   // xx
  gS.m[4] = d0 - d1 + d2 - d3;   // yy
  gS.m[8] = d0 - d1 - d2 + d3;   // zz
  gS.m[1] = h03 + h12;           // xy
  gS.m[3] = -h03 + h12;          // yx
  gS.m[5] = h01 + h23;           // yz
  gS.m[7] = -h01 + h23;          // zy
  gS.m[6] = h02 + h13;           // zx
  gS.m[2] = -h02 + h13;          // xz
  return gS;
}

// cyclic Jacobi on the symmetric a (overwritten): a = V diag(λ) Vᵀ.
// Sweeps stop once the off-diagonal mass is below ε² of the whole; a rotation
// is skipped when its a_pq is already below ε of the diagonal (Golub & Van
// Loan's threshold), which makes the last, confirming sweep cheap.
template <typename T>
HOST_DEVICE inline Eig4<T> jacobi_eig4(T a[4][4]) {
  Eig4<T> e;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) e.vec[i][j] = T(i == j);
  const T eps = machine_eps<T>();
  for (int sweep = 0; sweep < kJacobiMaxSweeps; ++sweep) {
    T off = 0, diag = 0;
    for (int p = 0; p < 4; ++p) {
      diag += a[p][p] * a[p][p];
      for (int q = p + 1; q < 4; ++q) off += a[p][q] * a[p][q];
    }
    if (off <= eps * eps * diag) break;
    for (int p = 0; p < 3; ++p) {
      for (int q = p + 1; q < 4; ++q) {
        const T apq = a[p][q];
        if (abs_(apq) <= eps * T(1e-2) * (abs_(a[p][p]) + abs_(a[q][q]))) continue;
        // rotation J (J_pp = J_qq = c, J_pq = s, J_qp = −s) zeroing a_pq in Jᵀ a J:
        // t = tan θ = sign(τ) / (|τ| + √(1 + τ²)), τ = (a_qq − a_pp) / (2 a_pq),
        // written as e / (|d| + √(d² + e²)) with d = a_qq − a_pp, e = ±2 a_pq
        const T d = a[q][q] - a[p][p];
        const T e2 = d >= T(0) ? T(2) * apq : T(-2) * apq;
        const T tt = e2 / (abs_(d) + sqrt_(d * d + e2 * e2));
        const T c = T(1) / sqrt_(T(1) + tt * tt), s = tt * c;
        for (int k = 0; k < 4; ++k) {
          if (k == p || k == q) continue;
          const T akp = a[k][p], akq = a[k][q];
          a[k][p] = a[p][k] = c * akp - s * akq;
          a[k][q] = a[q][k] = s * akp + c * akq;
        }
        a[p][p] -= tt * apq;
        a[q][q] += tt * apq;
        a[p][q] = a[q][p] = T(0);
        for (int k = 0; k < 4; ++k) {
          const T vkp = e.vec[k][p], vkq = e.vec[k][q];
          e.vec[k][p] = c * vkp - s * vkq;
          e.vec[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  e.top = 0;
  for (int j = 0; j < 4; ++j) {
    e.lam[j] = a[j][j];
    if (a[j][j] > a[e.top][e.top]) e.top = j;
  }
  return e;
}

// rotation of the unit quaternion (w, x, y, z)
template <typename T>
IK_INLINE Mat3<T> quat_to_mat(const T q[4]) {
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  return {{T(1) - T(2) * (y * y + z * z), T(2) * (x * y - w * z), T(2) * (x * z + w * y),
           T(2) * (x * y + w * z), T(1) - T(2) * (x * x + z * z), T(2) * (y * z - w * x),
           T(2) * (x * z - w * y), T(2) * (y * z + w * x), T(1) - T(2) * (x * x + y * y)}};
}

// ∂L/∂q of quat_to_mat
template <typename T>
IK_INLINE void quat_to_mat_vjp(const T q[4], const Mat3<T>& g, T gq[4]) {
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  const T* G = g.m;
  gq[0] = T(2) * (-z * G[1] + y * G[2] + z * G[3] - x * G[5] - y * G[6] + x * G[7]);
  gq[1] = T(2) * (y * G[1] + z * G[2] + y * G[3] - T(2) * x * G[4] - w * G[5] + z * G[6] + w * G[7] - T(2) * x * G[8]);
  gq[2] = T(2) * (-T(2) * y * G[0] + x * G[1] + w * G[2] + x * G[3] + z * G[5] - w * G[6] + z * G[7] - T(2) * y * G[8]);
  gq[3] = T(2) * (-T(2) * z * G[0] - w * G[1] + x * G[2] + w * G[3] - T(2) * z * G[4] + y * G[5] + x * G[6] + y * G[7]);
}

// The forward's fast path to the top eigenvector (Theobald 2005, "Rapid
// calculation of RMSDs using a quaternion-based characteristic polynomial",
// Acta Cryst. A61): N is traceless, so det(λI − N) = λ⁴ + c2 λ² + c1 λ + c0
// with c2 = −2 |S|²_F, c1 = −8 det S, c0 = det N.  Newton from
// √3 |S|_F ≥ σ1 + σ2 + σ3 ≥ λ0 descends monotonically onto λ0 (all roots are
// real); q is then the largest row of adj(N − λ0 I) = Π_{j≠0}(λj − λ0) q qᵀ.
// That row is small, and q inaccurate, when λ0 is close to another
// eigenvalue: below kNewtonMinCofactor (N scaled to max|S| = 1) this returns
// false and the caller uses the Jacobi sweeps, which are accurate everywhere.
constexpr double kNewtonMinCofactor = 1e-3;
constexpr int kNewtonMaxSteps = 32;

template <typename T>
IK_INLINE T det3(const Mat3<T>& a) {
  return a.m[0] * (a.m[4] * a.m[8] - a.m[5] * a.m[7]) - a.m[1] * (a.m[3] * a.m[8] - a.m[5] * a.m[6]) +
         a.m[2] * (a.m[3] * a.m[7] - a.m[4] * a.m[6]);
}

// adj(a) of a symmetric 4x4 (Laplace expansion in the 2x2 minors of rows
// (0, 1) and (2, 3)); returns det(a)
template <typename T>
HOST_DEVICE inline T adjugate4(const T a[4][4], T b[4][4]) {
  const T s0 = a[0][0] * a[1][1] - a[1][0] * a[0][1], s1 = a[0][0] * a[1][2] - a[1][0] * a[0][2];
  const T s2 = a[0][0] * a[1][3] - a[1][0] * a[0][3], s3 = a[0][1] * a[1][2] - a[1][1] * a[0][2];
  const T s4 = a[0][1] * a[1][3] - a[1][1] * a[0][3], s5 = a[0][2] * a[1][3] - a[1][2] * a[0][3];
  const T c0 = a[2][0] * a[3][1] - a[3][0] * a[2][1], c1 = a[2][0] * a[3][2] - a[3][0] * a[2][2];
  const T c2 = a[2][0] * a[3][3] - a[3][0] * a[2][3], c3 = a[2][1] * a[3][2] - a[3][1] * a[2][2];
  const T c4 = a[2][1] * a[3][3] - a[3][1] * a[2][3], c5 = a[2][2] * a[3][3] - a[3][2] * a[2][3];
  b[0][0] = a[1][1] * c5 - a[1][2] * c4 + a[1][3] * c3;
  b[0][1] = -a[0][1] * c5 + a[0][2] * c4 - a[0][3] * c3;
  b[0][2] = a[3][1] * s5 - a[3][2] * s4 + a[3][3] * s3;
  b[0][3] = -a[2][1] * s5 + a[2][2] * s4 - a[2][3] * s3;
  b[1][0] = -a[1][0] * c5 + a[1][2] * c2 - a[1][3] * c1;
  b[1][1] = a[0][0] * c5 - a[0][2] * c2 + a[0][3] * c1;
  b[1][2] = -a[3][0] * s5 + a[3][2] * s2 - a[3][3] * s1;
  b[1][3] = a[2][0] * s5 - a[2][2] * s2 + a[2][3] * s1;
  b[2][0] = a[1][0] * c4 - a[1][1] * c2 + a[1][3] * c0;
  b[2][1] = -a[0][0] * c4 + a[0][1] * c2 - a[0][3] * c0;
  b[2][2] = a[3][0] * s4 - a[3][1] * s2 + a[3][3] * s0;
  b[2][3] = -a[2][0] * s4 + a[2][1] * s2 - a[2][3] * s0;
  b[3][0] = -a[1][0] * c3 + a[1][1] * c1 - a[1][2] * c0;
  b[3][1] = a[0][0] * c3 - a[0][1] * c1 + a[0][2] * c0;
  b[3][2] = -a[3][0] * s3 + a[3][1] * s1 - a[3][2] * s0;
  b[3][3] = a[2][0] * s3 - a[2][1] * s1 + a[2][2] * s0;
  return s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0;
}

// top eigenpair (λ0, q) of N = horn_matrix(S), S scaled to max|S| = 1;
// false when the Jacobi sweeps must be used instead (see above).  The
// iteration runs until every lane has stopped.
template <typename T>
HOST_DEVICE inline mask_t<T> horn_top_newton(const Mat3<T>& S, T q[4], T& lam) {
  T a[4][4], b[4][4];
  horn_matrix(S, a);
  T fro2 = 0;
  for (int k = 0; k < 9; ++k) fro2 += S.m[k] * S.m[k];
  const T c0 = adjugate4(a, b);
  const T c1 = T(-8) * det3(S), c2 = T(-2) * fro2;
  lam = sqrt_(T(3) * fro2);
  mask_t<T> live = T(0) == T(0);
  for (int it = 0; it < kNewtonMaxSteps && any_(live); ++it) {
    const T l2 = lam * lam;
    const T P = (l2 + c2) * l2 + c1 * lam + c0;
    const T dP = (T(4) * l2 + T(2) * c2) * lam + c1;
    live = live && dP > T(0);
    const T step = P / dP;
    lam = select_(live, lam - step, lam);
    live = live && !(abs_(step) <= T(4 * machine_eps<typename ElementOf<T>::type>()) * lam);
  }
  for (int k = 0; k < 4; ++k) a[k][k] -= lam;
  adjugate4(a, b);
  T best_n2 = -1;  // the largest row of b, first on ties
  for (int r = 0; r < 4; ++r) {
    const T n2 = b[r][0] * b[r][0] + b[r][1] * b[r][1] + b[r][2] * b[r][2] + b[r][3] * b[r][3];
    const mask_t<T> better = n2 > best_n2;
    best_n2 = select_(better, n2, best_n2);
    for (int k = 0; k < 4; ++k) q[k] = select_(better, b[r][k], q[k]);
  }
  const T inv = T(1) / sqrt_(best_n2);
  for (int k = 0; k < 4; ++k) q[k] = inv * q[k];
  return best_n2 > T(kNewtonMinCofactor * kNewtonMinCofactor);
}

// the branch of the pelvis solver: S = 0 (identity), S not finite (NaN),
// or neither (regular)
template <typename T> struct PelvisBranch {
  mask_t<T> zero, nonfinite, regular;
};

// S = Σ_c t_c p_cᵀ, its branch, and 1 / max|S_ij| (the Jacobi runs on N / max|S|)
template <typename T>
HOST_DEVICE inline PelvisBranch<T> pelvis_matrix(const Vec3<T> t[3], const Vec3<T> p[3], Mat3<T>& S, T& inv_scale) {
  S = zeros3<T>();
  for (int c = 0; c < kNumPelvisChildren; ++c) S += outer(t[c], p[c]);
  mask_t<T> finite = T(0) == T(0), zero = finite;
  T mx = 0;
  for (int k = 0; k < 9; ++k) {
    finite = finite && finite_(S.m[k]);
    zero = zero && S.m[k] == T(0);
    mx = select_(abs_(S.m[k]) > mx, abs_(S.m[k]), mx);
  }
  inv_scale = T(1) / mx;
  return {zero && finite, !finite, finite && !zero};
}

template <typename T>
HOST_DEVICE inline Eig4<T> pelvis_eig(const Mat3<T>& S, T inv_scale) {
  T n[4][4];
  horn_matrix(inv_scale * S, n);
  return jacobi_eig4(n);
}

template <typename T>
IK_INLINE void top_quat(const Eig4<T>& e, T q[4]) {
  for (int k = 0; k < 4; ++k) q[k] = e.vec[k][e.top];
}

// The rare path where horn_top_newton declines, taken where `use` is set:
// q by the Jacobi sweeps (ik_simd.h overloads this and jacobi_vjp_u to run
// lane by lane).
template <typename T>
HOST_DEVICE inline void jacobi_quat(const Mat3<T>& S, T inv_scale, mask_t<T> use, T q[4]) {
  if (use) top_quat(pelvis_eig(S, inv_scale), q);
}

// q and u = Σ_{j≠0} v_j (v_j·gq) / (λ0 − λj) (see pelvis_vjp) from the
// Jacobi eigenvectors, where `use` is set
template <typename T>
HOST_DEVICE inline void jacobi_vjp_u(const Mat3<T>& S, T inv_scale, const Mat3<T>& gR, mask_t<T> use, T q[4],
                                     T u[4]) {
  if (!use) return;
  const Eig4<T> e = pelvis_eig(S, inv_scale);
  T gq[4];
  top_quat(e, q);
  quat_to_mat_vjp(q, gR, gq);
  for (int a = 0; a < 4; ++a) u[a] = T(0);
  for (int j = 0; j < 4; ++j) {
    const T gap = e.lam[e.top] - e.lam[j];
    if (j == e.top || !(gap > T(64) * machine_eps<T>())) continue;
    T vg = 0;
    for (int k = 0; k < 4; ++k) vg += e.vec[k][j] * gq[k];
    for (int a = 0; a < 4; ++a) u[a] += vg / gap * e.vec[a][j];
  }
}

// R0 from the pelvis children: t_c = T[c] − T[0], p_c = P[c] − P[0]
template <typename T>
HOST_DEVICE inline Mat3<T> pelvis_forward(const Vec3<T> t[3], const Vec3<T> p[3]) {
  Mat3<T> S; T inv_scale;
  const PelvisBranch<T> br = pelvis_matrix(t, p, S, inv_scale);
  Mat3<T> special;  // the identity for S = 0, else NaN
  for (int k = 0; k < 9; ++k) special.m[k] = select_(br.zero, eye3<T>().m[k], T(NAN));
  if (!any_(br.regular)) return special;
  T q[4];
  T lam;
  const mask_t<T> newton = horn_top_newton(inv_scale * S, q, lam);
  jacobi_quat(S, inv_scale, br.regular && !newton, q);
  return select_(br.regular, quat_to_mat(q), special);
}

// VJP of the pelvis rotation.  q = v0, the top eigenvector of N̂ = N / s
// (s = max|S|, a constant here: q does not depend on the scale).  First-order
// eigenvector perturbation (the top eigenvalue λ0 is simple):
//   dq = Σ_{j≠0} v_j v_jᵀ dN̂ q / (λ0 − λj) = (λ0 I − N̂)⁺ dN̂ q
// so with gq = ∂L/∂q and u = (λ0 I − N̂)⁺ gq:
//   gN̂ = u qᵀ,   gN = gN̂ / s,
// then gS = horn_matrix_vjp(gN) and, from S = Σ t pᵀ, gt_c = gS p_c,
// gp_c = gSᵀ t_c.  dq ⟂ q, so R(q) may use the unit-quaternion formula.
// Where the forward took the Newton path, u = M⁻¹ gq − q (q·gq) with
// M = λ0 I − N̂ + q qᵀ (eigenvalues 1 and λ0 − λj, det M = Π_{j≠0}(λ0 − λj),
// bounded below by the forward's cofactor test), by the adjugate.  Otherwise
// u = Σ_{j≠0} v_j (v_j·gq) / (λ0 − λj) from the Jacobi eigenvectors, where
// a gap below 64 ε (rank(S) <= 1: the rotation is not determined)
// contributes nothing, which keeps the gradient finite.  S = 0 has no
// gradient.
template <typename T>
HOST_DEVICE inline void pelvis_vjp(const Vec3<T> t[3], const Vec3<T> p[3], const Mat3<T>& gR,
                                   Vec3<T> gt[3], Vec3<T> gp[3]) {
  Mat3<T> S; T inv_scale;
  const PelvisBranch<T> br = pelvis_matrix(t, p, S, inv_scale);
  const Vec3<T> special{select_(br.zero, T(0), T(NAN)), select_(br.zero, T(0), T(NAN)),
                        select_(br.zero, T(0), T(NAN))};  // no gradient for S = 0, else NaN
  if (!any_(br.regular)) {
    for (int c = 0; c < kNumPelvisChildren; ++c) {
      gt[c] += special;
      gp[c] += special;
    }
    return;
  }
  const Mat3<T> Sn = inv_scale * S;
  T q[4], gq[4], u[4], lam;
  const mask_t<T> newton = horn_top_newton(Sn, q, lam);
  quat_to_mat_vjp(q, gR, gq);
  T m[4][4], adj[4][4];
  horn_matrix(Sn, m);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) m[a][b] = (a == b ? lam : T(0)) - m[a][b] + q[a] * q[b];
  const T inv_det = T(1) / adjugate4(m, adj);
  T qg = 0;
  for (int k = 0; k < 4; ++k) qg += q[k] * gq[k];
  for (int a = 0; a < 4; ++a) {
    T y = 0;
    for (int b = 0; b < 4; ++b) y += adj[a][b] * gq[b];
    u[a] = inv_det * y - q[a] * qg;
  }
  jacobi_vjp_u(S, inv_scale, gR, br.regular && !newton, q, u);
  T gN[4][4];
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) gN[a][b] = inv_scale * u[a] * q[b];
  const Mat3<T> gS = horn_matrix_vjp(gN);
  for (int c = 0; c < kNumPelvisChildren; ++c) {
    gt[c] += select_(br.regular, mv(gS, p[c]), special);
    gp[c] += select_(br.regular, mtv(gS, t[c]), special);
  }
}

}  // namespace ik
}  // namespace hybrik_fast
