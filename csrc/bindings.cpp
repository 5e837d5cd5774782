// The Python module hybrik_fast._C.  The kernels register themselves as
// operators in the torch.library namespace "hybrik_fast_C" (one
// TORCH_LIBRARY_FRAGMENT per op file); this file adds build facts and the
// output cache's controls (csrc/common/output_cache.h).
#include <torch/extension.h>

#include "common/output_cache.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("compiled_with_cuda", []() {
#ifdef WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  m.def("clear_output_cache", &hybrik_fast::clear_output_cache,
        "Frees the cached output buffers (not those of live tensors).");
  m.def("output_cache_blocks", &hybrik_fast::output_cache_blocks, "Number of cached output buffers.");
  m.def("output_cache_bytes", &hybrik_fast::output_cache_bytes, "Bytes of the cached output buffers.");
}
