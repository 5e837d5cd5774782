// The Python module hybrik_fast._C.  The kernels register themselves as
// operators in the torch.library namespace "hybrik_fast_C" (schemas in
// csrc/<op>/<op>_op.cpp, kernels per dispatch key in <op>_cpu.cpp and
// <op>_cuda.cu); this file adds build facts, the IK's mode codes
// (csrc/ik/mode.h) and the output cache's controls (csrc/common/output_cache.h).
#include <torch/extension.h>

#include "common/output_cache.h"
#include "ik/mode.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("compiled_with_cuda", []() {
#ifdef WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  m.def(
      "ik_modes",
      []() {
        pybind11::dict codes;
        for (const auto& mn : hybrik_fast::ik::kModeNames) codes[mn.name] = static_cast<int>(mn.mode);
        return codes;
      },
      "The IK operators' mode codes: {name: code} (csrc/ik/mode.h).");
  m.def("clear_output_cache", &hybrik_fast::clear_output_cache,
        "Frees the cached output buffers (not those of live tensors).");
  m.def("output_cache_blocks", &hybrik_fast::output_cache_blocks, "Number of cached output buffers.");
  m.def("output_cache_bytes", &hybrik_fast::output_cache_bytes, "Bytes of the cached output buffers.");
}
