// The memory-system probes of memory.h.
#include "common/memory.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/env.h"

#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace hybrik_fast {

size_t last_level_cache_bytes() {
  static const size_t bytes = [] {
    size_t best = 0;
#ifdef __linux__
    for (int i = 0; i < 8; ++i) {
      const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
      std::ifstream type(dir + "type"), size(dir + "size");
      std::string t, z;
      if (!(type >> t) || !(size >> z) || t == "Instruction") continue;
      char* unit = nullptr;
      const unsigned long long v = std::strtoull(z.c_str(), &unit, 10);
      const size_t mult = (*unit == 'K') ? (1u << 10) : (*unit == 'M') ? (1u << 20) : 1;
      best = std::max<size_t>(best, v * mult);
    }
#endif
    return best > 0 ? best : size_t(32) << 20;
  }();
  return bytes;
}

bool is_resident(const void* p, size_t bytes) {
#ifdef __linux__
  if (bytes == 0) return false;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(p);
  for (uintptr_t a : {first, first + bytes / 2, first + bytes - 1}) {
    unsigned char v = 0;
    if (mincore(reinterpret_cast<void*>(a & ~(page - 1)), 1, &v) != 0 || (v & 1) == 0) return false;
  }
  return true;
#else
  (void)p;
  (void)bytes;
  return false;
#endif
}

void advise_huge_pages(void* p, size_t bytes) {
#ifdef __linux__
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

bool streaming_stores_pay(size_t in_bytes, const void* out, size_t out_bytes, bool long_runs) {
  const int forced = env_switch("HYBRIK_FAST_STREAMING_STORES");
  if (forced >= 0) return forced == 1;
  const size_t llc = last_level_cache_bytes();
  return long_runs && in_bytes + out_bytes > llc && (out_bytes <= llc || is_resident(out, out_bytes));
}

}  // namespace hybrik_fast
