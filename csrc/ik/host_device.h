// HOST_DEVICE and IK_INLINE: the IK maths (csrc/ik/*.h) is host and device
// code at once, so the CPU loop (ik_cpu.cpp) and the CUDA kernel
// (ik_cuda_kernel.cuh) run the same functions.
#pragma once

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
