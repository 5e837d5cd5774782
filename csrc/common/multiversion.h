// Function multi-versioning, in two forms.
//
// HYBRIK_MULTIVERSION(targets): a function compiled once per target, the
// best one for the CPU at hand picked at load time (GCC target_clones,
// x86-64 only; elsewhere one plain build).  For hot loops that are plain C++
// under `omp simd`, where each clone is the same source vectorised for its
// instruction set.
//   HYBRIK_ISA_AVX512   AVX-512, AVX2+FMA, baseline x86-64
//
// HYBRIK_TARGET(arch) and cpu_supports(arch): explicit variants, for code
// whose source differs per target (csrc/ik/ik_cpu.cpp: 4 samples to a vector
// for AVX2 and AVX-512, 2 for baseline x86-64) or that an environment
// variable must be able to pick (tests compare the variants), neither of
// which target_clones allows.  The caller marks each variant with
// HYBRIK_TARGET(arch) and calls the one cpu_supports(arch) allows.
//   HYBRIK_ARCH_AVX512  AVX-512 (x86-64-v4)
//   HYBRIK_ARCH_AVX2    AVX2+FMA (x86-64-v3)
#pragma once

#define HYBRIK_ISA_AVX512 "arch=x86-64-v4", "arch=x86-64-v3", "default"
#define HYBRIK_ARCH_AVX512 "x86-64-v4"
#define HYBRIK_ARCH_AVX2 "x86-64-v3"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HYBRIK_MULTIVERSION(...) __attribute__((target_clones(__VA_ARGS__)))
#define HYBRIK_TARGET(arch) __attribute__((target("arch=" arch)))
#define HYBRIK_HAS_TARGETS 1
#else
#define HYBRIK_MULTIVERSION(...)
#define HYBRIK_TARGET(arch)
#define HYBRIK_HAS_TARGETS 0
#endif

namespace hybrik_fast {

// whether this CPU runs code compiled for `arch` (an HYBRIK_ARCH_* name);
// false for every arch where HYBRIK_TARGET compiles nothing
inline bool cpu_supports(const char* arch) {
#if HYBRIK_HAS_TARGETS
  __builtin_cpu_init();
  if (__builtin_strcmp(arch, HYBRIK_ARCH_AVX512) == 0) return __builtin_cpu_supports(HYBRIK_ARCH_AVX512);
  if (__builtin_strcmp(arch, HYBRIK_ARCH_AVX2) == 0) return __builtin_cpu_supports(HYBRIK_ARCH_AVX2);
#endif
  (void)arch;
  return false;
}

}  // namespace hybrik_fast
