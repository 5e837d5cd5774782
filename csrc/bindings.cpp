// The Python module hybrik_fast._C.  The kernels register themselves as
// operators in the torch.library namespace "hybrik_fast_C" (one
// TORCH_LIBRARY_FRAGMENT per op file); this file only adds build facts.
#include <torch/extension.h>

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("compiled_with_cuda", []() {
#ifdef WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
