// Function multi-versioning: a function marked HYBRIK_MULTIVERSION(targets)
// is compiled once per target and the best one for the CPU at hand is picked
// at load time (GCC target_clones, x86-64 only; elsewhere one plain build).
// The hot loops are plain C++ under `omp simd`, so each clone is the same
// source vectorised for its instruction set.
//
//   HYBRIK_ISA_AVX512   AVX-512, AVX2+FMA, baseline x86-64
//   HYBRIK_ISA_AVX2     AVX2+FMA, baseline x86-64 (for code that 8-wide
//                       double vectors do not fit: csrc/ik/ik_cpu.cpp)
#pragma once

#define HYBRIK_ISA_AVX512 "arch=x86-64-v4", "arch=x86-64-v3", "default"
#define HYBRIK_ISA_AVX2 "arch=x86-64-v3", "default"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HYBRIK_MULTIVERSION(...) __attribute__((target_clones(__VA_ARGS__)))
#else
#define HYBRIK_MULTIVERSION(...)
#endif
