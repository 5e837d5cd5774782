// HybrIK inverse kinematics, per sample: the maths shared by the CPU loop
// (ik_cpu.cpp) and the CUDA kernel (ik_cuda_kernel.cuh).
//
// Everything here is a HOST_DEVICE inline function on one sample's raw,
// contiguous data, so the CPU tests exercise exactly the code the GPU runs.
// The semantics are those of hybrik_fast/reference/kinematics.py (its module
// docstring is the specification); the paper is Li et al., "HybrIK", CVPR
// 2021, Alg. 1 (naive) and Alg. 2 (adaptive).
//
// Shapes, per sample (row-major, contiguous):
//   joints  P  29 x 3    target joints (re-rooted here: P <- P - P[0])
//   twist   Φ  23 x 2    (cos φ, sin φ) of joints 1..23, any length
//   rest    T  29 x 3    rest pose
//   rot     R  24 x 3x3  local rotations, root first
//
// Contents: small vector algebra; the topology; swing, twist, the pelvis
// (Horn's quaternion method: Newton on the characteristic polynomial, cyclic
// Jacobi where that is ill-conditioned) and the target rule, each as a
// forward and a vector-Jacobian product (VJP); the per-sample drivers
// ik_forward_sample and ik_backward_sample.  All arithmetic is float64 (see
// opmath_t).
#pragma once

#include <cmath>

#ifdef __CUDACC__
#define HOST_DEVICE __host__ __device__
#else
#define HOST_DEVICE
#endif

// The small helpers must be inlined into the per-joint loop: with six
// (dtype, mode) instantiations of forward and backward in one translation
// unit, GCC's inliner otherwise gives up on them and the calls (returning
// 3x3 matrices through memory) double the CPU time.
#if defined(__CUDACC__)
#define IK_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define IK_INLINE inline __attribute__((always_inline))
#else
#define IK_INLINE inline
#endif

namespace hybrik_fast {
namespace ik {

constexpr int kNumJoints = 29;      // 24 SMPL joints + 5 leaves
constexpr int kNumSmplJoints = 24;  // joints with a rotation
constexpr int kNumTwist = 23;       // joints 1..23; joint i uses twist row i - 1
constexpr int kNumPelvisChildren = 3;

// ---------------------------------------------------------------- topology
//
// Generated from hybrik_fast/skeleton.py (PARENTS_29, IK_CHILD,
// PELVIS_CHILDREN); tests/test_ik.py parses these lines and checks that they
// agree.  A function returning a literal (rather than namespace-scope arrays)
// so that device code can use it: nvcc does not place host constexpr arrays
// in device memory.
struct Topology {
  int parent[kNumJoints];           // parent of each joint, -1 for the root
  int ik_child[kNumJoints];         // child that aims joint i, -1 for leaves
  int pelvis_children[kNumPelvisChildren];
};

HOST_DEVICE constexpr Topology topology() {
  return Topology{
      /*parent=*/{-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21, 15, 22, 23, 10, 11},
      /*ik_child=*/{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 27, 28, 15, 16, 17, 24, 18, 19, 20, 21, 22, 23, 25, 26, -1, -1, -1, -1, -1},
      /*pelvis_children=*/{3, 1, 2}};
}

// has_rotating_child(i): some joint 1..23 hangs from i (false for 10, 11, 15,
// 22, 23, whose children are leaves), derived from the parents above
struct ChildFlags {
  bool has_rotating_child[kNumSmplJoints];
};

HOST_DEVICE constexpr ChildFlags child_flags() {
  ChildFlags f{};
  const Topology topo = topology();
  for (int j = 1; j < kNumSmplJoints; ++j) f.has_rotating_child[topo.parent[j]] = true;
  return f;
}

// The target rule is a compile-time parameter: each mode becomes its own
// straight-line loop over the tree, with no runtime branch on the mode per
// joint, and the naive mode drops the reconstructed-joint bookkeeping (q and
// its adjoint) entirely.
enum class Mode : int { kNaive = 0, kAdaptive = 1, kAdaptiveFallback = 2 };

HOST_DEVICE constexpr bool is_adaptive(Mode m) { return m != Mode::kNaive; }

// ---------------------------------------------------------------- scalars

template <typename T> HOST_DEVICE constexpr T machine_eps();
template <> HOST_DEVICE constexpr float machine_eps<float>() { return 1.1920928955078125e-07f; }
template <> HOST_DEVICE constexpr double machine_eps<double>() { return 2.220446049250313e-16; }

IK_INLINE float sqrt_(float x) { return ::sqrtf(x); }
IK_INLINE double sqrt_(double x) { return ::sqrt(x); }
IK_INLINE float abs_(float x) { return ::fabsf(x); }
IK_INLINE double abs_(double x) { return ::fabs(x); }
// false for ±inf and NaN (no -ffast-math anywhere in this build)
template <typename T> IK_INLINE bool finite_(T x) { return x - x == T(0); }
template <typename T> IK_INLINE T nan_();
template <> IK_INLINE float nan_<float>() { return ::nanf(""); }
template <> IK_INLINE double nan_<double>() { return ::nan(""); }

// the swing's quaternion counts as zero (antiparallel bone and target) below
// this many machine epsilons times |t||p| (reference: ANTIPARALLEL_ULPS)
constexpr double kAntiparallelUlps = 64.0;

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

enum class SwingBranch { kZero, kHalfTurn, kRegular };

template <typename T> struct Swing {
  SwingBranch branch;
  T tn, pn, w, n2;  // |t|, |p|, quaternion scalar part, |q|²
  Vec3<T> v;        // quaternion vector part t × p
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
  if (m == T(0)) s.branch = SwingBranch::kZero;
  else if (s.n2 <= thr * thr) s.branch = SwingBranch::kHalfTurn;
  else s.branch = SwingBranch::kRegular;
  return s;
}

// the coordinate axis on which |t| is smallest, first on ties (torch.argmin)
template <typename T>
IK_INLINE Vec3<T> smallest_axis(Vec3<T> t) {
  const T ax = abs_(t.x), ay = abs_(t.y), az = abs_(t.z);
  int k = 0;
  T best = ax;
  if (ay < best) { k = 1; best = ay; }
  if (az < best) k = 2;
  return {T(k == 0), T(k == 1), T(k == 2)};
}

// R = scale · M: M unnormalised (regular: scale = 1 / n2) or, in the other
// branches, R itself (scale = 1), so that a caller can multiply by M while
// the division is in flight
template <typename T>
IK_INLINE Mat3<T> swing_matrix(const Swing<T>& s, Vec3<T> t, T& scale) {
  scale = T(1);
  if (s.branch == SwingBranch::kZero) return eye3<T>();
  if (s.branch == SwingBranch::kHalfTurn) {
    const Vec3<T> u = cross(t, smallest_axis(t));
    const Vec3<T> a = (T(1) / norm(u)) * u;
    Mat3<T> r = T(2) * outer(a, a);
    r.m[0] -= T(1); r.m[4] -= T(1); r.m[8] -= T(1);
    return r;
  }
  const Vec3<T> v = s.v;
  Mat3<T> r = T(2) * outer(v, v) + (T(2) * s.w) * skew(v);
  const T d = s.w * s.w - dot(v, v);
  r.m[0] += d; r.m[4] += d; r.m[8] += d;
  scale = T(1) / s.n2;
  return r;
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
  if (s.branch == SwingBranch::kZero) return;
  if (s.branch == SwingBranch::kHalfTurn) {
    const Vec3<T> e = smallest_axis(t);
    const Vec3<T> u = cross(t, e);
    const T un = norm(u);
    const Vec3<T> a = (T(1) / un) * u;
    const Vec3<T> ga = T(2) * sym_mv(gR, a);
    const Vec3<T> gu = (T(1) / un) * (ga - dot(a, ga) * a);
    gt += cross(e, gu);
    return;
  }
  const T inv_n2 = T(1) / s.n2;
  const Mat3<T> gM = inv_n2 * gR;
  const T gn2 = -inner(gR, R) * inv_n2;
  const T tr = trace(gM);
  const Vec3<T> ax = axial(gM);
  const Vec3<T> v = s.v;
  const T gw = T(2) * s.w * (tr + gn2) + T(2) * dot(v, ax);
  const Vec3<T> gv = (T(2) * (gn2 - tr)) * v + T(2) * sym_mv(gM, v) + (T(2) * s.w) * ax;
  const T inv_m = T(1) / (s.tn * s.pn);
  gt += gw * ((s.pn * s.pn * inv_m) * t + p) + cross(p, gv);
  gp += gw * ((s.tn * s.tn * inv_m) * p + t) + cross(gv, t);
}

// ---------------------------------------------------------------- twist
//
// twist(t, Φ) = I + s [k]× + (1 − c) [k]×², k = t/|t|, (c, s) = Φ/|Φ|;
// the identity if Φ = (0, 0) or t = 0 (NaN propagates).

template <typename T> struct Twist {
  bool ok;     // false: the identity
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
  w.c = w.ok ? a * w.inv_r : T(1);
  w.s = w.ok ? b * w.inv_r : T(0);
  return w;
}

template <typename T>
IK_INLINE Mat3<T> twist_matrix(const Twist<T>& w) {
  if (!w.ok) return eye3<T>();
  const Vec3<T> k = w.k;
  const T c1 = T(1) - w.c;
  // I + s K + (1 − c) K²,  K² = k kᵀ − |k|² I
  Mat3<T> out = c1 * outer(k, k) + w.s * skew(k);
  const T d = T(1) - c1 * dot(k, k);
  out.m[0] += d; out.m[4] += d; out.m[8] += d;
  return out;
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
  if (!w.ok) return;
  const Vec3<T> k = w.k;
  const T c = w.c, s = w.s;
  const Vec3<T> ax = axial(gR);
  const Vec3<T> gRk = sym_mv(gR, k);  // (gR + gRᵀ) k
  const T tr = trace(gR), kk = dot(k, k);
  const T gs = dot(k, ax);
  const T gc = -(T(0.5) * dot(k, gRk) - kk * tr);
  const Vec3<T> gk = s * ax + (T(1) - c) * (gRk - (T(2) * tr) * k);
  gt += w.inv_tn * (gk - dot(k, gk) * k);
  const T proj = c * gc + s * gs;
  ga = (gc - c * proj) * w.inv_r;
  gb = (gs - s * proj) * w.inv_r;
}

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
// false when the Jacobi sweeps must be used instead (see above)
template <typename T>
HOST_DEVICE inline bool horn_top_newton(const Mat3<T>& S, T q[4], T& lam) {
  T a[4][4], b[4][4];
  horn_matrix(S, a);
  T fro2 = 0;
  for (int k = 0; k < 9; ++k) fro2 += S.m[k] * S.m[k];
  const T c0 = adjugate4(a, b);
  const T c1 = T(-8) * det3(S), c2 = T(-2) * fro2;
  lam = sqrt_(T(3) * fro2);
  for (int it = 0; it < kNewtonMaxSteps; ++it) {
    const T l2 = lam * lam;
    const T P = (l2 + c2) * l2 + c1 * lam + c0;
    const T dP = (T(4) * l2 + T(2) * c2) * lam + c1;
    if (!(dP > T(0))) break;
    const T step = P / dP;
    lam -= step;
    if (abs_(step) <= T(4) * machine_eps<T>() * lam) break;
  }
  for (int k = 0; k < 4; ++k) a[k][k] -= lam;
  adjugate4(a, b);
  int best = 0;
  T best_n2 = -1;
  for (int r = 0; r < 4; ++r) {
    const T n2 = b[r][0] * b[r][0] + b[r][1] * b[r][1] + b[r][2] * b[r][2] + b[r][3] * b[r][3];
    if (n2 > best_n2) { best = r; best_n2 = n2; }
  }
  if (!(best_n2 > T(kNewtonMinCofactor * kNewtonMinCofactor))) return false;
  const T inv = T(1) / sqrt_(best_n2);
  for (int k = 0; k < 4; ++k) q[k] = inv * b[best][k];
  return true;
}

enum class PelvisBranch { kZero, kNonFinite, kRegular };

// S = Σ_c t_c p_cᵀ, its branch, and 1 / max|S_ij| (the Jacobi runs on N / max|S|)
template <typename T>
HOST_DEVICE inline PelvisBranch pelvis_matrix(const Vec3<T> t[3], const Vec3<T> p[3], Mat3<T>& S, T& inv_scale) {
  S = zeros3<T>();
  for (int c = 0; c < kNumPelvisChildren; ++c) S += outer(t[c], p[c]);
  bool finite = true, zero = true;
  T mx = 0;
  for (int k = 0; k < 9; ++k) {
    finite = finite && finite_(S.m[k]);
    zero = zero && S.m[k] == T(0);
    mx = abs_(S.m[k]) > mx ? abs_(S.m[k]) : mx;
  }
  inv_scale = T(1) / mx;
  if (!finite) return PelvisBranch::kNonFinite;
  return zero ? PelvisBranch::kZero : PelvisBranch::kRegular;
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

// R0 from the pelvis children: t_c = T[c] − T[0], p_c = P[c] − P[0]
template <typename T>
HOST_DEVICE inline Mat3<T> pelvis_forward(const Vec3<T> t[3], const Vec3<T> p[3]) {
  Mat3<T> S; T inv_scale;
  const PelvisBranch br = pelvis_matrix(t, p, S, inv_scale);
  if (br == PelvisBranch::kZero) return eye3<T>();
  if (br == PelvisBranch::kNonFinite) {
    const T nan = nan_<T>();
    Mat3<T> r;
    for (int k = 0; k < 9; ++k) r.m[k] = nan;
    return r;
  }
  T q[4];
  T lam;
  if (!horn_top_newton(inv_scale * S, q, lam)) top_quat(pelvis_eig(S, inv_scale), q);
  return quat_to_mat(q);
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
  const PelvisBranch br = pelvis_matrix(t, p, S, inv_scale);
  if (br == PelvisBranch::kZero) return;
  if (br == PelvisBranch::kNonFinite) {
    const T nan = nan_<T>();
    for (int c = 0; c < kNumPelvisChildren; ++c) {
      gt[c] += Vec3<T>{nan, nan, nan};
      gp[c] += Vec3<T>{nan, nan, nan};
    }
    return;
  }
  const Mat3<T> Sn = inv_scale * S;
  T q[4], gq[4], u[4], lam;
  if (horn_top_newton(Sn, q, lam)) {
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
  } else {
    const Eig4<T> e = pelvis_eig(S, inv_scale);
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
  T gN[4][4];
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) gN[a][b] = inv_scale * u[a] * q[b];
  const Mat3<T> gS = horn_matrix_vjp(gN);
  for (int c = 0; c < kNumPelvisChildren; ++c) {
    gt[c] += mv(gS, p[c]);
    gp[c] += mtv(gS, t[c]);
  }
}

// ---------------------------------------------------------------- target
//
// naive:    target = P[c] − P[i]
// adaptive: target = P[c] − q[i]
// fallback: with n = P[c] − P[i] and the rescaled naive target
//           s = n |t| / |n| (0 if n = 0): if |target − s| > f, target = s.

// the target from P[c], the naive target n = P[c] − P[i], its rescaled
// version s (fallback mode only) and q[i] (adaptive modes only)
template <typename T, Mode M>
IK_INLINE Vec3<T> ik_target(Vec3<T> Pc, Vec3<T> naive, Vec3<T> scaled, Vec3<T> qi, T fallback, bool& stray) {
  stray = false;
  if (M == Mode::kNaive) return naive;
  const Vec3<T> adaptive = Pc - qi;
  if (M == Mode::kAdaptive) return adaptive;
  const Vec3<T> d = adaptive - scaled;
  stray = dot(d, d) > fallback * fallback;  // |d| > f (f >= 0) without a square root on the chain
  return stray ? scaled : adaptive;
}

// VJP of the target: g = ∂L/∂target into gPc, gPi, gqi and gt.
// The rescaled naive target s = n |t| / |n| has
//   gn = (|t|/|n|)(g − n̂ (n̂·g)),   gt = t̂ (n̂·g)   (0 where t = 0 or n = 0).
template <typename T, Mode M>
IK_INLINE void ik_target_vjp(Vec3<T> Pc, Vec3<T> Pi, Vec3<T> t, T tn, bool stray, Vec3<T> g,
                                      Vec3<T>& gPc, Vec3<T>& gPi, Vec3<T>& gqi, Vec3<T>& gt) {
  if (M == Mode::kNaive) {
    gPc += g;
    gPi -= g;
    return;
  }
  if (!stray) {
    gPc += g;
    gqi -= g;
    return;
  }
  const Vec3<T> n = Pc - Pi;
  const T nn = norm(n);
  if (nn == T(0)) return;
  const Vec3<T> nh = (T(1) / nn) * n;
  const T ng = dot(nh, g);
  const Vec3<T> gn = (tn / nn) * (g - ng * nh);
  gPc += gn;
  gPi -= gn;
  if (tn != T(0)) gt += (ng / tn) * t;
}

// ---------------------------------------------------------------- drivers
//
// The drivers read inputs of storage type S and compute in T = opmath_t<S> =
// double, for float inputs too: the float reference itself is off the exact
// answer by up to ~2e-5 on distal joints in adaptive mode (rounding in the
// reconstructed joints q accumulates down the tree), and this way the fused
// float result is the exact answer rounded once.  The CPU and CUDA paths
// instantiate the same types, so they run the same arithmetic.  (On the GPU
// this costs fp64 throughput, which the per-sample work, ~10 kflop, does not
// notice on data-centre parts.)  Branch thresholds that the reference ties
// to its dtype (the half-turn test) use the input's epsilon.

template <typename S> using opmath_t = double;

// row j of an (n, 3) array, converted to the compute type
template <typename T, typename S>
IK_INLINE Vec3<T> load_vec(const S* x, int j) {
  return {T(x[3 * j]), T(x[3 * j + 1]), T(x[3 * j + 2])};
}
// P[j] as the reference re-roots it: joints[j] − joints[0]
template <typename T, typename S>
IK_INLINE Vec3<T> rerooted(const S* joints, int j) {
  return load_vec<T>(joints, j) - load_vec<T>(joints, 0);
}

template <typename T, typename S>
IK_INLINE void pelvis_vectors(const S* joints, const S* rest, Vec3<T> t[3], Vec3<T> p[3]) {
  constexpr Topology topo = topology();
  const Vec3<T> P0 = rerooted<T>(joints, 0);
  for (int k = 0; k < kNumPelvisChildren; ++k) {
    const int c = topo.pelvis_children[k];
    t[k] = load_vec<T>(rest, c) - load_vec<T>(rest, 0);
    p[k] = rerooted<T>(joints, c) - P0;
  }
}

// What the backward needs of joint i's forward step, recorded by ik_tree so
// that the reverse sweep does not recompute the swing and twist.
template <typename T> struct JointTape {
  Mat3<T> W, V;   // swing and twist rotations
  Mat3<T> R;      // local rotation W V
  Vec3<T> x, p;   // target and its parent-frame version G[pa]ᵀ x
  Swing<T> sw;
  Twist<T> tw;
  bool stray;     // the fallback took the rescaled naive target
};

// The whole tree for one sample: global rotations G (24) and, in adaptive
// modes, reconstructed joints q (24).  With rot non-null the local rotations
// are stored there (24 x 9); with tape non-null (the backward) each joint's
// step is recorded there (entries 1..23).
template <typename S, Mode M, typename T = opmath_t<S>>
IK_INLINE void ik_tree(const S* joints, const S* twist, const S* rest, T fallback, Mat3<T>* G,
                                Vec3<T>* q, S* rot, JointTape<T>* tape) {
  constexpr Topology topo = topology();
  const T eps = T(machine_eps<S>());
  // Per-joint quantities that do not depend on the tree, computed for all
  // joints before the walk: the rest bone t = T[c] − T[i] and |t|, the twist
  // rotation V, the naive target n = P[c] − P[i] and (fallback) its rescaled
  // version n |t| / |n| (0 if n = 0).  The inputs are first gathered into
  // arrays so that the square roots and divisions vectorise across joints
  // instead of queueing on the scalar divider.
  T bx[kNumSmplJoints], by[kNumSmplJoints], bz[kNumSmplJoints], ca[kNumSmplJoints], cb[kNumSmplJoints];
  T nx[kNumSmplJoints], ny[kNumSmplJoints], nz[kNumSmplJoints];
  T tn[kNumSmplJoints], inv_tn[kNumSmplJoints], inv_r[kNumSmplJoints], ks[kNumSmplJoints];
  for (int i = 1; i < kNumSmplJoints; ++i) {
    const int c = topo.ik_child[i];
    const Vec3<T> t = load_vec<T>(rest, c) - load_vec<T>(rest, i);
    const Vec3<T> n = rerooted<T>(joints, c) - rerooted<T>(joints, i);
    bx[i] = t.x; by[i] = t.y; bz[i] = t.z;
    nx[i] = n.x; ny[i] = n.y; nz[i] = n.z;
    ca[i] = T(twist[2 * (i - 1)]);
    cb[i] = T(twist[2 * (i - 1) + 1]);
  }
#if !defined(__CUDACC__)
#pragma omp simd
#endif
  for (int i = 1; i < kNumSmplJoints; ++i) {
    tn[i] = sqrt_(bx[i] * bx[i] + by[i] * by[i] + bz[i] * bz[i]);
    inv_tn[i] = T(1) / tn[i];
    inv_r[i] = T(1) / sqrt_(ca[i] * ca[i] + cb[i] * cb[i]);
    if (M == Mode::kAdaptiveFallback) {
      const T nn = sqrt_(nx[i] * nx[i] + ny[i] * ny[i] + nz[i] * nz[i]);
      const T k = tn[i] / nn;  // computed unconditionally: the select below vectorises
      ks[i] = nn != T(0) ? k : T(0);
    }
  }
  Mat3<T> V[kNumSmplJoints];   // twist rotations
  Vec3<T> tb[kNumSmplJoints];  // rest bones
  Vec3<T> naive[kNumSmplJoints], scaled[M == Mode::kAdaptiveFallback ? kNumSmplJoints : 1];
  for (int i = 1; i < kNumSmplJoints; ++i) {
    tb[i] = Vec3<T>{bx[i], by[i], bz[i]};
    const Twist<T> w = twist_parts(tb[i], tn[i], inv_tn[i], ca[i], cb[i], inv_r[i]);
    V[i] = twist_matrix(w);
    naive[i] = Vec3<T>{nx[i], ny[i], nz[i]};
    if (M == Mode::kAdaptiveFallback) scaled[i] = ks[i] * naive[i];
    if (tape != nullptr) tape[i].tw = w;
  }

  Vec3<T> t0[3], p0[3];
  pelvis_vectors<T>(joints, rest, t0, p0);
  G[0] = pelvis_forward(t0, p0);
  if (rot != nullptr)
    for (int k = 0; k < 9; ++k) rot[k] = S(G[0].m[k]);
  if (is_adaptive(M)) q[0] = Vec3<T>{0, 0, 0};
  for (int i = 1; i < kNumSmplJoints; ++i) {
    const int pa = topo.parent[i], c = topo.ik_child[i];
    // The serial chain runs G[pa] -> p -> swing -> G[i].  To keep it short,
    // G[pa] being a rotation: p = G[pa]ᵀ x is formed from q[pa] rather than
    // q[i] = q[pa] + G[pa] (T[i] − T[pa]), as G[pa]ᵀ (P[c] − q[pa]) − (T[i] − T[pa]);
    // |p| = |x|; and the swing's 1/n2 is applied after the products.
    const Vec3<T> Pc = rerooted<T>(joints, c);
    const Vec3<T> off = load_vec<T>(rest, i) - load_vec<T>(rest, pa);
    if (is_adaptive(M)) q[i] = q[pa] + mv(G[pa], off);
    bool stray;
    const Vec3<T> x = ik_target<T, M>(Pc, naive[i], M == Mode::kAdaptiveFallback ? scaled[i] : Vec3<T>{0, 0, 0},
                                      is_adaptive(M) ? q[i] : Vec3<T>{0, 0, 0}, fallback, stray);
    Vec3<T> p;
    if (M == Mode::kNaive) {
      p = mtv(G[pa], x);
    } else {
      p = mtv(G[pa], Pc - q[pa]) - off;
      if (M == Mode::kAdaptiveFallback) {
        const Vec3<T> ps = mtv(G[pa], scaled[i]);
        p = Vec3<T>{stray ? ps.x : p.x, stray ? ps.y : p.y, stray ? ps.z : p.z};
      }
    }
    const Swing<T> sw = swing_parts(tb[i], tn[i], p, norm(x), eps);
    T scale;
    const Mat3<T> Wu = swing_matrix(sw, tb[i], scale);  // W = scale · Wu
    const Mat3<T> MV = mm(Wu, V[i]);
    G[i] = scale * mm(G[pa], MV);
    const Mat3<T> R = scale * MV;
    if (rot != nullptr)
      for (int k = 0; k < 9; ++k) rot[9 * i + k] = S(R.m[k]);
    if (tape != nullptr) {
      tape[i].W = scale * Wu;
      tape[i].V = V[i];
      tape[i].R = R;
      tape[i].x = x;
      tape[i].p = p;
      tape[i].sw = sw;
      tape[i].stray = stray;
    }
  }
}

// joints (29 x 3), twist (23 x 2), rest (29 x 3) -> rot (24 x 9), one sample
template <typename S, Mode M>
HOST_DEVICE inline void ik_forward_sample(const S* joints, const S* twist, const S* rest, double fallback, S* rot) {
  using T = opmath_t<S>;
  Mat3<T> G[kNumSmplJoints];
  Vec3<T> q[is_adaptive(M) ? kNumSmplJoints : 1];
  ik_tree<S, M>(joints, twist, rest, T(fallback), G, q, rot, static_cast<JointTape<T>*>(nullptr));
}

// Backward of one sample.
//
// Strategy: recompute the forward tree (cheap: one forward) in local memory,
// keeping G, q and each joint's step (JointTape: swing, twist, target), so
// nothing but the inputs is saved between forward and backward (no
// (B, ...) activations in the autograd graph); then sweep the joints in
// reverse tree order (23..1, children before parents).
//
// Forward step i (pa = parent, c = IK child, t = T[c] − T[i]):
//   q[i] = q[pa] + G[pa] (T[i] − T[pa])                 (adaptive modes)
//   x    = target(P[c], P[i], q[i], t)
//   p    = G[pa]ᵀ x
//   R[i] = W V,  W = swing(t, p),  V = twist(t, Φ_i)
//   G[i] = G[pa] R[i]
// Adjoints (gX = ∂L/∂X; gG[i] and gq[i] are complete when joint i is reached,
// since all their uses are in i's own step or its children's):
//   ḡR      = gR[i] + G[pa]ᵀ gG[i]          gG[pa] += gG[i] R[i]ᵀ
//   gW      = ḡR Vᵀ,  gV = Wᵀ ḡR            -> swing_vjp, twist_vjp: gt, gp, gΦ_i
//   gx      = G[pa] gp                      gG[pa] += x gpᵀ
//   gx      -> target_vjp: gP[c], gP[i], gq[i], gt
//   gT[c]  += gt,  gT[i] −= gt
//   gq[pa] += gq[i]                         gG[pa] += gq[i] (T[i] − T[pa])ᵀ
//   gT[i]  += G[pa]ᵀ gq[i],  gT[pa] −= G[pa]ᵀ gq[i]
// Then the pelvis, with gR0 = gR[0] + gG[0] -> pelvis_vjp, and the re-rooting
// P = joints − joints[0]: g joints[j] = gP[j] (j ≥ 1), g joints[0] = −Σ_{j≥1} gP[j].
// Branch choices (zero-length, half turn, fallback, degenerate pelvis) were
// fixed by the forward; each contributes the gradient of the branch taken.
//
// grad_rot: 24 x 9.  Writes grad_joints (29 x 3), grad_twist (23 x 2),
// grad_rest (29 x 3), all overwritten.
template <typename S, Mode M>
HOST_DEVICE inline void ik_backward_sample(const S* grad_rot, const S* joints, const S* twist, const S* rest,
                                           double fallback, S* grad_joints, S* grad_twist, S* grad_rest) {
  using T = opmath_t<S>;
  constexpr Topology topo = topology();
  constexpr ChildFlags flags = child_flags();
  constexpr int NQ = is_adaptive(M) ? kNumSmplJoints : 1;
  Mat3<T> G[kNumSmplJoints];
  Vec3<T> q[NQ];
  JointTape<T> tape[kNumSmplJoints];
  ik_tree<S, M>(joints, twist, rest, T(fallback), G, q, static_cast<S*>(nullptr), tape);

  Mat3<T> gG[kNumSmplJoints];
  Vec3<T> gq[NQ];
  Vec3<T> gP[kNumJoints], gT[kNumJoints];
  for (int i = 0; i < kNumSmplJoints; ++i) gG[i] = zeros3<T>();
  for (int i = 0; i < NQ; ++i) gq[i] = Vec3<T>{0, 0, 0};
  for (int j = 0; j < kNumJoints; ++j) gP[j] = gT[j] = Vec3<T>{0, 0, 0};

  for (int i = kNumSmplJoints - 1; i >= 1; --i) {
    const int pa = topo.parent[i], c = topo.ik_child[i];
    const JointTape<T>& tp = tape[i];
    const Vec3<T> Ti = load_vec<T>(rest, i);
    const Vec3<T> t = load_vec<T>(rest, c) - Ti;

    Mat3<T> gR;
    for (int k = 0; k < 9; ++k) gR.m[k] = T(grad_rot[9 * i + k]);
    if (flags.has_rotating_child[i]) {  // else gG[i] = 0
      gR += mm_tn(G[pa], gG[i]);
      gG[pa] += mm_nt(gG[i], tp.R);
    }

    Vec3<T> gt{0, 0, 0}, gp{0, 0, 0};
    T ga = 0, gb = 0;
    twist_vjp(tp.tw, mm_tn(tp.W, gR), gt, ga, gb);
    swing_vjp(tp.sw, t, tp.p, tp.W, mm_nt(gR, tp.V), gt, gp);
    grad_twist[2 * (i - 1)] = S(ga);
    grad_twist[2 * (i - 1) + 1] = S(gb);

    gG[pa] += outer(tp.x, gp);
    Vec3<T> gqi{0, 0, 0};
    ik_target_vjp<T, M>(rerooted<T>(joints, c), rerooted<T>(joints, i), t, tp.sw.tn, tp.stray, mv(G[pa], gp),
                        gP[c], gP[i], gqi, gt);
    gT[c] += gt;
    gT[i] -= gt;
    if (is_adaptive(M)) {
      const Vec3<T> g = gq[i] + gqi;
      gq[pa] += g;
      gG[pa] += outer(g, Ti - load_vec<T>(rest, pa));
      const Vec3<T> gbone = mtv(G[pa], g);
      gT[i] += gbone;
      gT[pa] -= gbone;
    }
  }

  Mat3<T> gR0;
  for (int k = 0; k < 9; ++k) gR0.m[k] = T(grad_rot[k]);
  gR0 += gG[0];
  Vec3<T> t0[3], p0[3], gt0[3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}, gp0[3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  pelvis_vectors<T>(joints, rest, t0, p0);
  pelvis_vjp(t0, p0, gR0, gt0, gp0);
  for (int k = 0; k < kNumPelvisChildren; ++k) {
    const int c = topo.pelvis_children[k];
    gT[c] += gt0[k];
    gT[0] -= gt0[k];
    gP[c] += gp0[k];
    gP[0] -= gp0[k];
  }

  Vec3<T> root{0, 0, 0};
  for (int j = 1; j < kNumJoints; ++j) root -= gP[j];
  gP[0] = root;
  for (int j = 0; j < kNumJoints; ++j) {
    grad_joints[3 * j] = S(gP[j].x);
    grad_joints[3 * j + 1] = S(gP[j].y);
    grad_joints[3 * j + 2] = S(gP[j].z);
    grad_rest[3 * j] = S(gT[j].x);
    grad_rest[3 * j + 1] = S(gT[j].y);
    grad_rest[3 * j + 2] = S(gT[j].z);
  }
}

}  // namespace ik
}  // namespace hybrik_fast
