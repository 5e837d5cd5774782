// HybrIK inverse kinematics, per sample: the maths shared by the CPU loop
// (ik_cpu.cpp) and the CUDA kernel (ik_cuda_kernel.cuh).
//
// Everything here is a HOST_DEVICE inline function on one sample's raw,
// contiguous data, templated on the compute type T: double on the GPU (one
// thread per sample) and in the CPU's scalar variant, simd::Lanes<N> (N
// samples, one per SIMD lane) in the CPU's lane groups (ik_simd.h).  So the
// per-sample branches are masks and selects (select_, any_), and the CPU
// tests exercise the formulas the GPU runs.
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
// The pieces, each in its header: host_device.h (the HOST_DEVICE macros),
// algebra.h (scalars, 3-vectors, 3x3 matrices), topology.h (the skeleton),
// mode.h (the target rules' codes), rotations.h (swing and twist),
// pelvis.h (Horn's quaternion method).  This header has the target rule and
// the recursion over the tree, forward and backward: the per-sample drivers
// ik_forward_sample and ik_backward_sample.  All arithmetic is float64 (see
// opmath_t).
#pragma once

#include "ik/algebra.h"
#include "ik/mode.h"
#include "ik/pelvis.h"
#include "ik/rotations.h"
#include "ik/topology.h"

namespace hybrik_fast {
namespace ik {

// ---------------------------------------------------------------- target
//
// naive:    target = P[c] − P[i]
// adaptive: target = P[c] − q[i]
// fallback: with n = P[c] − P[i] and the rescaled naive target
//           s = n |t| / |n| (0 if n = 0): if |target − s| > f, target = s.

// the target from P[c], the naive target n = P[c] − P[i], its rescaled
// version s (fallback mode only) and q[i] (adaptive modes only)
template <typename T, Mode M>
IK_INLINE Vec3<T> ik_target(Vec3<T> Pc, Vec3<T> naive, Vec3<T> scaled, Vec3<T> qi, T fallback, mask_t<T>& stray) {
  stray = T(0) != T(0);
  if (M == Mode::kNaive) return naive;
  const Vec3<T> adaptive = Pc - qi;
  if (M == Mode::kAdaptive) return adaptive;
  const Vec3<T> d = adaptive - scaled;
  stray = dot(d, d) > fallback * fallback;  // |d| > f (f >= 0) without a square root on the chain
  return select_(stray, scaled, adaptive);
}

// VJP of the target: g = ∂L/∂target into gPc, gPi, gqi and gt.
// The rescaled naive target s = n |t| / |n| has
//   gn = (|t|/|n|)(g − n̂ (n̂·g)),   gt = t̂ (n̂·g)   (0 where t = 0 or n = 0).
template <typename T, Mode M>
IK_INLINE void ik_target_vjp(Vec3<T> Pc, Vec3<T> Pi, Vec3<T> t, T tn, mask_t<T> stray, Vec3<T> g,
                                      Vec3<T>& gPc, Vec3<T>& gPi, Vec3<T>& gqi, Vec3<T>& gt) {
  if (M == Mode::kNaive) {
    gPc += g;
    gPi -= g;
    return;
  }
  const Vec3<T> zero{0, 0, 0};
  const Vec3<T> ga = select_(stray, zero, g);  // the adaptive target's share
  gPc += ga;
  gqi -= ga;
  if (M == Mode::kAdaptive || !any_(stray)) return;
  const Vec3<T> n = Pc - Pi;
  const T nn = norm(n);
  const mask_t<T> live = stray && nn != T(0);
  const Vec3<T> nh = (T(1) / nn) * n;
  const T ng = dot(nh, g);
  const Vec3<T> gn = select_(live, (tn / nn) * (g - ng * nh), zero);
  gPc += gn;
  gPi -= gn;
  gt += select_(live && tn != T(0), (ng / tn) * t, zero);
}

// ---------------------------------------------------------------- drivers
//
// The drivers read inputs of storage type S and compute in T = opmath_t<S> =
// double, for float inputs too: the float reference itself is off the exact
// answer by up to ~2e-5 on distal joints in adaptive mode (rounding in the
// reconstructed joints q accumulates down the tree), and this way the fused
// float result is the exact answer rounded once.  The CPU and CUDA paths
// compute in double (the CPU's lane groups a vector of doubles, one per
// sample), so they run the same arithmetic up to FMA contraction.  (On the GPU
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
// that the reverse sweep does not redo the swing (its branch and matrix).
// The twist rotation V and the local rotation R = W V are not kept: the
// backward rebuilds them from tw and W (a few dozen flops a joint), which
// keeps the tape, in a CUDA thread's local memory, 144 bytes a joint smaller.
template <typename T> struct JointTape {
  Mat3<T> W;      // swing rotation
  Vec3<T> x, p;   // target and its parent-frame version G[pa]ᵀ x
  Swing<T> sw;
  Twist<T> tw;
  mask_t<T> stray;  // the fallback took the rescaled naive target
};

// The whole tree for one sample: global rotations G (24) and, in adaptive
// modes, reconstructed joints q (24).  With rot non-null the local rotations
// are stored there (24 x 9); with tape non-null (the backward) each joint's
// step is recorded there (entries 1..23).
//
// S is the storage type and T the compute type; E is the dtype the inputs
// came in (its epsilon is the half-turn test's), S unless the CPU's lane
// groups (ik_simd.h) have already converted them into S = T = simd::Lanes.
template <typename S, Mode M, typename T = opmath_t<S>, typename E = S>
IK_INLINE void ik_tree(const S* joints, const S* twist, const S* rest, T fallback, Mat3<T>* G,
                                Vec3<T>* q, S* rot, JointTape<T>* tape) {
  constexpr Topology topo = topology();
  const T eps = T(machine_eps<E>());
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
      ks[i] = select_(nn != T(0), k, T(0));
    }
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
    // this joint's rest bone, twist and naive targets, from the arrays above
    // (built here, off the serial chain, rather than kept as arrays of
    // vectors and matrices: on CUDA those would sit in local memory)
    const Vec3<T> tb{bx[i], by[i], bz[i]};
    const Twist<T> tw = twist_parts(tb, tn[i], inv_tn[i], ca[i], cb[i], inv_r[i]);
    const Mat3<T> V = twist_matrix(tw);
    const Vec3<T> naive{nx[i], ny[i], nz[i]};
    const Vec3<T> scaled = M == Mode::kAdaptiveFallback ? ks[i] * naive : Vec3<T>{0, 0, 0};
    if (is_adaptive(M)) q[i] = q[pa] + mv(G[pa], off);
    mask_t<T> stray;
    const Vec3<T> x = ik_target<T, M>(Pc, naive, scaled, is_adaptive(M) ? q[i] : Vec3<T>{0, 0, 0}, fallback,
                                      stray);
    Vec3<T> p;
    if (M == Mode::kNaive) {
      p = mtv(G[pa], x);
    } else {
      p = mtv(G[pa], Pc - q[pa]) - off;
      if (M == Mode::kAdaptiveFallback) {
        const Vec3<T> ps = mtv(G[pa], scaled);
        p = select_(stray, ps, p);
      }
    }
    const Swing<T> sw = swing_parts(tb, tn[i], p, norm(x), eps);
    T scale;
    const Mat3<T> Wu = swing_matrix(sw, tb, scale);  // W = scale · Wu
    const Mat3<T> MV = mm(Wu, V);
    G[i] = scale * mm(G[pa], MV);
    const Mat3<T> R = scale * MV;
    if (rot != nullptr)
      for (int k = 0; k < 9; ++k) rot[9 * i + k] = S(R.m[k]);
    if (tape != nullptr) {
      tape[i].W = scale * Wu;
      tape[i].x = x;
      tape[i].p = p;
      tape[i].sw = sw;
      tape[i].tw = tw;
      tape[i].stray = stray;
    }
  }
}

// joints (29 x 3), twist (23 x 2), rest (29 x 3) -> rot (24 x 9), one sample
// (S, T, E as for ik_tree)
template <typename S, Mode M, typename T = opmath_t<S>, typename E = S>
HOST_DEVICE inline void ik_forward_sample(const S* joints, const S* twist, const S* rest, double fallback, S* rot) {
  Mat3<T> G[kNumSmplJoints];
  Vec3<T> q[is_adaptive(M) ? kNumSmplJoints : 1];
  ik_tree<S, M, T, E>(joints, twist, rest, T(fallback), G, q, rot, static_cast<JointTape<T>*>(nullptr));
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
// grad_rest (29 x 3), all overwritten.  (S, T, E as for ik_tree.)
template <typename S, Mode M, typename T = opmath_t<S>, typename E = S>
HOST_DEVICE inline void ik_backward_sample(const S* grad_rot, const S* joints, const S* twist, const S* rest,
                                           double fallback, S* grad_joints, S* grad_twist, S* grad_rest) {
  constexpr Topology topo = topology();
  constexpr ChildFlags flags = child_flags();
  constexpr int NQ = is_adaptive(M) ? kNumSmplJoints : 1;
  Mat3<T> G[kNumSmplJoints];
  Vec3<T> q[NQ];
  JointTape<T> tape[kNumSmplJoints];
  ik_tree<S, M, T, E>(joints, twist, rest, T(fallback), G, q, static_cast<S*>(nullptr), tape);

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

    const Mat3<T> V = twist_matrix(tp.tw);
    Mat3<T> gR;
    for (int k = 0; k < 9; ++k) gR.m[k] = T(grad_rot[9 * i + k]);
    if (flags.has_rotating_child[i]) {  // else gG[i] = 0
      gR += mm_tn(G[pa], gG[i]);
      gG[pa] += mm_nt(gG[i], mm(tp.W, V));  // gG[i] R[i]ᵀ, R[i] = W V
    }

    Vec3<T> gt{0, 0, 0}, gp{0, 0, 0};
    T ga = 0, gb = 0;
    twist_vjp(tp.tw, mm_tn(tp.W, gR), gt, ga, gb);
    swing_vjp(tp.sw, t, tp.p, tp.W, mm_nt(gR, V), gt, gp);
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

