// Lanes<N>: N doubles processed as one value (GCC vector extensions), for
// code written once over a scalar type T that runs either on one double
// (CUDA, the scalar CPU path) or on N samples at once (the CPU's lane
// groups, csrc/ik/ik_simd.h).
//
// Lanes<N> behaves like double under + − * / and unary −, converts
// implicitly from double (a broadcast), and compares into Mask<N>, whose
// &&, || and ! act lane by lane (both operands are always evaluated).  The
// generic code branches through the helpers that both types provide:
//   select_(m, a, b)   a where m, else b      (m ? a : b for bool)
//   any_(m)            some lane of m is set  (m for bool)
//   sqrt_(x), abs_(x)  lane by lane
// The vector size is N * 8 bytes whatever the compile target: a function
// compiled for AVX2 handles a Lanes<8> as two 256-bit halves.  Callers pick
// N per target (csrc/ik/ik_cpu.cpp: 4 for AVX-512 and AVX2, 2 for baseline).
#pragma once

#include <cmath>

// Every function here is always inlined into a caller compiled for a target
// with the vector registers, so the ABI of a 256/512-bit vector passed
// between functions of the default target (GCC's -Wpsabi note) never arises.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#if defined(__GNUC__)
#define SIMD_INLINE inline __attribute__((always_inline))
#else
#define SIMD_INLINE inline
#endif

namespace hybrik_fast {
namespace simd {

// the GCC vector types of N doubles, N 64-bit integers and N floats
template <int N> struct VectorOf;
template <> struct VectorOf<2> {
  typedef double D __attribute__((vector_size(16)));
  typedef long I __attribute__((vector_size(16)));
  typedef float F __attribute__((vector_size(8)));
};
template <> struct VectorOf<4> {
  typedef double D __attribute__((vector_size(32)));
  typedef long I __attribute__((vector_size(32)));
  typedef float F __attribute__((vector_size(16)));
};
template <> struct VectorOf<8> {
  typedef double D __attribute__((vector_size(64)));
  typedef long I __attribute__((vector_size(64)));
  typedef float F __attribute__((vector_size(32)));
};

template <int N> struct Mask {
  typedef typename VectorOf<N>::I V;  // all ones (true) or all zeros per lane
  V v;
  friend SIMD_INLINE Mask operator&&(Mask a, Mask b) { return {a.v & b.v}; }
  friend SIMD_INLINE Mask operator||(Mask a, Mask b) { return {a.v | b.v}; }
  friend SIMD_INLINE Mask operator!(Mask a) { return {~a.v}; }
  SIMD_INLINE bool operator[](int l) const { return v[l] != 0; }
};

template <int N> struct Lanes {
  typedef typename VectorOf<N>::D V;
  V v;
  Lanes() = default;
  SIMD_INLINE Lanes(double x) : v(V{} + x) {}  // NOLINT: implicit, as a double literal converts to double
  SIMD_INLINE explicit Lanes(V x) : v(x) {}
  SIMD_INLINE double operator[](int l) const { return v[l]; }
  SIMD_INLINE void set(int l, double x) { v[l] = x; }

  friend SIMD_INLINE Lanes operator+(Lanes a, Lanes b) { return Lanes(a.v + b.v); }
  friend SIMD_INLINE Lanes operator-(Lanes a, Lanes b) { return Lanes(a.v - b.v); }
  friend SIMD_INLINE Lanes operator*(Lanes a, Lanes b) { return Lanes(a.v * b.v); }
  friend SIMD_INLINE Lanes operator/(Lanes a, Lanes b) { return Lanes(a.v / b.v); }
  friend SIMD_INLINE Lanes operator-(Lanes a) { return Lanes(-a.v); }
  SIMD_INLINE Lanes& operator+=(Lanes b) { v += b.v; return *this; }
  SIMD_INLINE Lanes& operator-=(Lanes b) { v -= b.v; return *this; }
  SIMD_INLINE Lanes& operator*=(Lanes b) { v *= b.v; return *this; }

  friend SIMD_INLINE Mask<N> operator<(Lanes a, Lanes b) { return {a.v < b.v}; }
  friend SIMD_INLINE Mask<N> operator<=(Lanes a, Lanes b) { return {a.v <= b.v}; }
  friend SIMD_INLINE Mask<N> operator>(Lanes a, Lanes b) { return {a.v > b.v}; }
  friend SIMD_INLINE Mask<N> operator>=(Lanes a, Lanes b) { return {a.v >= b.v}; }
  friend SIMD_INLINE Mask<N> operator==(Lanes a, Lanes b) { return {a.v == b.v}; }
  friend SIMD_INLINE Mask<N> operator!=(Lanes a, Lanes b) { return {a.v != b.v}; }

  friend SIMD_INLINE Lanes select_(Mask<N> m, Lanes a, Lanes b) { return Lanes(m.v ? a.v : b.v); }
  friend SIMD_INLINE Lanes sqrt_(Lanes a) {
    Lanes r;
    for (int l = 0; l < N; ++l) r.v[l] = __builtin_sqrt(a.v[l]);  // one vector sqrt (-fno-math-errno)
    return r;
  }
  friend SIMD_INLINE Lanes abs_(Lanes a) {
    typedef typename VectorOf<N>::I I;
    return Lanes((V)((I)a.v & ~(I{} + (1L << 63))));  // clear the sign bit
  }
};

template <int N> SIMD_INLINE bool any_(Mask<N> m) {
  long r = 0;
  for (int l = 0; l < N; ++l) r |= m.v[l];
  return r != 0;
}

// N values from x, as doubles
template <int N> SIMD_INLINE typename VectorOf<N>::D load_row(const double* x) {
  typename VectorOf<N>::D r;
  __builtin_memcpy(&r, x, sizeof(r));
  return r;
}
template <int N> SIMD_INLINE typename VectorOf<N>::D load_row(const float* x) {
  typename VectorOf<N>::F r;
  __builtin_memcpy(&r, x, sizeof(r));
  return __builtin_convertvector(r, typename VectorOf<N>::D);
}
// N doubles to x, rounded to x's type
template <int N> SIMD_INLINE void store_row(typename VectorOf<N>::D r, double* x) { __builtin_memcpy(x, &r, sizeof(r)); }
template <int N> SIMD_INLINE void store_row(typename VectorOf<N>::D r, float* x) {
  const typename VectorOf<N>::F f = __builtin_convertvector(r, typename VectorOf<N>::F);
  __builtin_memcpy(x, &f, sizeof(f));
}

// r (N rows of N) <- rᵀ, in log2 N rounds of two-input shuffles: round d
// swaps bit d of the row and column indices where they differ, exchanging
// the off-diagonal d-blocks of rows i and i + d (i & d = 0).
template <int N> SIMD_INLINE void transpose(typename VectorOf<N>::D r[N]) {
  typedef typename VectorOf<N>::I I;
  for (int d = 1; d < N; d *= 2) {
    I lo, hi;  // indices into the concatenation (r[i], r[i + d])
    for (int p = 0; p < N; ++p) {
      lo[p] = (p & d) ? N + p - d : p;
      hi[p] = (p & d) ? N + p : p + d;
    }
    for (int i = 0; i < N; ++i) {
      if (i & d) continue;
      const typename VectorOf<N>::D a = r[i], b = r[i + d];
      r[i] = __builtin_shuffle(a, b, lo);
      r[i + d] = __builtin_shuffle(a, b, hi);
    }
  }
}

}  // namespace simd
}  // namespace hybrik_fast
