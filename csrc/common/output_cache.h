// A cache of large CPU output buffers, so that an output a kernel writes on
// every training step lands in memory that is already mapped.
//
// glibc maps every allocation above 32 MiB anew (mmap) and unmaps it when it
// is freed, and heap memory below that may be trimmed and regrown; the OS
// then zeroes each page on the kernel's first touch.  For the soft-argmax
// backward at 8×29×64³ (a 243 MB gradient) that zeroing took 15 of the 37 ms
// on 1 thread.  This cache keeps the buffers of freed outputs (the two most
// recently freed, of at least kMinBytes each) and hands one of the same size
// back out, as PyTorch's CUDA caching allocator does on the GPU.
//
// The tensor it returns owns its buffer like any other: the buffer goes back
// to the cache only when the tensor's storage is freed, so a gradient the
// user keeps is never written over.  Its contents are uninitialised and its
// storage resizable (a resize allocates anew and gives the buffer back), as
// with at::empty.  Hand-outs and returns are reported to the PyTorch profiler as
// allocations and frees, so memory profiles still see every output.
// HYBRIK_FAST_CACHE_OUTPUTS=0 turns the cache off (at::empty instead);
// clear_output_cache() (hybrik_fast.empty_cache()) frees what it holds.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace hybrik_fast {

// A contiguous tensor of `sizes` with `options` (CPU): from the cache when it
// holds a buffer of the same byte size and the size is at least kMinBytes,
// else newly allocated.
at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

// Frees the buffers the cache holds (not those of live tensors).
void clear_output_cache();

// Buffers the cache holds, and their bytes.
int64_t output_cache_blocks();
int64_t output_cache_bytes();

}  // namespace hybrik_fast
