// See output_cache.h.
#include "common/output_cache.h"

#include "common/env.h"

#include <ATen/ATen.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <deque>
#include <mutex>
#include <vector>

namespace hybrik_fast {
namespace {

// Outputs smaller than this are left to the allocator (glibc's heap serves
// them from memory it has mapped already, most of the time).
constexpr size_t kMinBytes = size_t(1) << 20;
// Freed buffers kept: enough for two outputs per step (say two heads) of
// different sizes; an older one is freed when a third comes back.
constexpr size_t kMaxCached = 2;

struct Block {
  void* ptr;
  size_t bytes;
};

class OutputCache {
 public:
  // Never destroyed: a tensor may be freed after static destructors have run.
  static OutputCache& get() {
    static OutputCache* cache = new OutputCache();
    return *cache;
  }

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = free_.rbegin(); it != free_.rend(); ++it) {  // most recently freed first
        if (it->bytes != bytes) continue;
        void* p = it->ptr;
        free_.erase(std::next(it).base());
        cached_ -= bytes;
        in_use_ += bytes;
        report(p, static_cast<int64_t>(bytes));
        return p;
      }
    }
    void* p = nullptr;
    try {
      p = c10::alloc_cpu(bytes);
    } catch (const c10::Error&) {  // out of memory: give the cached buffers back and retry once
      clear();
      p = c10::alloc_cpu(bytes);
    }
    std::lock_guard<std::mutex> lock(mu_);
    in_use_ += bytes;
    report(p, static_cast<int64_t>(bytes));
    return p;
  }

  void give_back(void* p, size_t bytes) {
    std::vector<Block> evicted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_use_ -= bytes;
      report(p, -static_cast<int64_t>(bytes));
      free_.push_back({p, bytes});
      cached_ += bytes;
      while (free_.size() > kMaxCached) {
        evicted.push_back(free_.front());
        cached_ -= free_.front().bytes;
        free_.pop_front();
      }
    }
    for (const Block& b : evicted) c10::free_cpu(b.ptr);
  }

  void clear() {
    std::deque<Block> evicted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      evicted.swap(free_);
      cached_ = 0;
    }
    for (const Block& b : evicted) c10::free_cpu(b.ptr);
  }

  int64_t blocks() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(free_.size());
  }
  int64_t bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(cached_);
  }

 private:
  // As c10's CPU allocator does: what is in use, and in use plus cached.
  void report(void* p, int64_t delta) const {
    if (c10::memoryProfilingEnabled()) {
      c10::reportMemoryUsageToProfiler(p, delta, in_use_, in_use_ + cached_, c10::Device(c10::DeviceType::CPU));
    }
  }

  std::mutex mu_;
  std::deque<Block> free_;  // oldest first
  size_t in_use_ = 0, cached_ = 0;
};

// The deleter of a handed-out buffer's DataPtr, whose context is a Block:
// freeing the storage gives the buffer back.
void give_back(void* ctx) {
  auto* b = static_cast<Block*>(ctx);
  OutputCache::get().give_back(b->ptr, b->bytes);
  delete b;
}

}  // namespace

at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  TORCH_CHECK(options.device().is_cpu(), "cached_empty: CPU tensors only");
  const auto dtype = c10::typeMetaToScalarType(options.dtype());
  const size_t bytes = static_cast<size_t>(c10::multiply_integers(sizes)) * c10::elementSize(dtype);
  if (bytes < kMinBytes || env_switch("HYBRIK_FAST_CACHE_OUTPUTS") == 0) return at::empty(sizes, options);
  void* p = OutputCache::get().take(bytes);
  Block* h = nullptr;
  try {
    h = new Block{p, bytes};
  } catch (...) {
    OutputCache::get().give_back(p, bytes);
    throw;
  }
  // A resizable storage with the CPU allocator, as at::empty makes: a resize
  // allocates anew and gives this buffer back.
  c10::Storage storage(c10::Storage::use_byte_size_t(), bytes,
                       c10::DataPtr(p, h, &give_back, c10::Device(c10::DeviceType::CPU)), c10::GetCPUAllocator(),
                       /*resizable=*/true);
  at::Tensor out = at::detail::make_tensor<c10::TensorImpl>(std::move(storage), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                                            options.dtype());
  out.unsafeGetTensorImpl()->set_sizes_contiguous(sizes);
  return out;
}

void clear_output_cache() { OutputCache::get().clear(); }
int64_t output_cache_blocks() { return OutputCache::get().blocks(); }
int64_t output_cache_bytes() { return OutputCache::get().bytes(); }

}  // namespace hybrik_fast
