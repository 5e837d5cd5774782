// The memory system, as the CPU kernels see it: probes of the cache and of
// page residency, the huge-page hint, streaming (non-temporal) stores, and
// the choice between streaming and plain stores for a large output.
// bench/results/README.md ("Measurement logs") has the figures behind the
// choices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace hybrik_fast {

// Bytes of the largest data cache: Linux sysfs (the CPUID figure that sysconf
// reports can be the whole host's in a VM: 320 MiB against a 32 MiB L3 on
// the machine this was written on), else 32 MiB.  Read once.
size_t last_level_cache_bytes();

// Whether the pages of [p, p + bytes) are resident, judged by the first,
// middle and last page (mincore; false off Linux).  An output the allocator
// hands back from memory already in use is; a fresh mapping (glibc maps
// allocations above 32 MiB anew each time) is not.
bool is_resident(const void* p, size_t bytes);

// Asks Linux for transparent huge pages over [p, p + bytes), so that the
// first touch of a fresh multi-MiB output costs one page fault per 2 MiB
// instead of one per 4 KiB (PyTorch's allocator does the same when
// THP_MEM_ALLOC_ENABLE=1).  Only a hint: memory already touched is unaffected.
void advise_huge_pages(void* p, size_t bytes);

// Whether a kernel that reads in_bytes and writes the out_bytes at `out`
// should write them with streaming stores.  Streaming stores skip the read of
// each line that a plain store makes first, and leave the cache to the input.
// They pay when input and output together overflow the largest cache (below
// that, plain stores leave the output in cache for the next op), unless the
// output is itself larger than that cache and fresh: the OS zeroes each fresh
// page on the first touch, in cache, and plain stores then land on those
// lines, while streaming ones write every line twice.  They pay only with
// long runs of stores (long_runs: the caller's judgement).  The environment
// variable HYBRIK_FAST_STREAMING_STORES=0 or 1 forces the choice (the tests
// cover both paths with it).
bool streaming_stores_pay(size_t in_bytes, const void* out, size_t out_bytes, bool long_runs);

// Streaming stores of n floats from src to dst (SSE2, baseline on x86-64;
// elsewhere a copy).  stream_fence() orders them before later stores.
inline void stream_store(float* dst, const float* src, int64_t n) {
#if defined(__x86_64__)
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0; ++i) dst[i] = src[i];
  for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
#else
  std::memcpy(dst, src, n * sizeof(float));
#endif
}

inline void stream_fence() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

}  // namespace hybrik_fast
