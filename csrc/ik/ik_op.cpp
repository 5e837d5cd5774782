// The fused IK operators of the torch.library namespace hybrik_fast_C: their
// schemas, and the device-independent autograd kernel of hybrik_ik.  Each
// device's kernels register under their dispatch key (CPU: ik_cpu.cpp, CUDA:
// ik_cuda.cu).  mode is a code of mode.h (hybrik_fast._C.ik_modes());
// fallback in metres (adaptive with fallback only).
//   hybrik_ik_fwd: joints (B, 29, 3), twist (B, 23, 2), rest_joints (B, 29, 3) -> rot (B, 24, 3, 3)
//   hybrik_ik_bwd: grad_rot (B, 24, 3, 3) and the inputs -> their gradients
//   hybrik_ik:     hybrik_ik_fwd with hybrik_ik_bwd as its backward
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace hybrik_fast {
namespace ik {
namespace {

// hybrik_fast_C::hybrik_ik: the forward op with its backward attached in C++,
// for eager autograd without a Python layer (the torch.library.custom_op
// hybrik_fast::hybrik_ik in hybrik_fast/ik.py is the traceable face of the
// same two kernels, used by torch.compile and torch.export).  Calls the
// kernels through the dispatcher, so it serves every device.
class HybrikIKFunction : public torch::autograd::Function<HybrikIKFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& joints,
                            const at::Tensor& twist, const at::Tensor& rest_joints, int64_t mode, double fallback) {
    static const auto fwd = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("hybrik_fast_C::hybrik_ik_fwd", "")
                                .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                                  double)>();
    // the backward recomputes the forward from the inputs: nothing else is kept
    ctx->save_for_backward({joints, twist, rest_joints});
    ctx->saved_data["mode"] = mode;
    ctx->saved_data["fallback"] = fallback;
    return fwd.call(joints, twist, rest_joints, mode, fallback);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    static const auto bwd =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("hybrik_fast_C::hybrik_ik_bwd", "")
            .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                  const at::Tensor&, const at::Tensor&, int64_t,
                                                                  double)>();
    const auto saved = ctx->get_saved_variables();
    auto [g_joints, g_twist, g_rest] = bwd.call(grad[0], saved[0], saved[1], saved[2],
                                                ctx->saved_data["mode"].toInt(),
                                                ctx->saved_data["fallback"].toDouble());
    return {g_joints, g_twist, g_rest, at::Tensor(), at::Tensor()};
  }
};

at::Tensor hybrik_ik_autograd(const at::Tensor& joints, const at::Tensor& twist, const at::Tensor& rest_joints,
                              int64_t mode, double fallback) {
  return HybrikIKFunction::apply(joints, twist, rest_joints, mode, fallback);
}

}  // namespace
}  // namespace ik
}  // namespace hybrik_fast

TORCH_LIBRARY_FRAGMENT(hybrik_fast_C, m) {
  m.def("hybrik_ik_fwd(Tensor joints, Tensor twist, Tensor rest_joints, int mode, float fallback) -> Tensor");
  m.def(
      "hybrik_ik_bwd(Tensor grad_rot, Tensor joints, Tensor twist, Tensor rest_joints, int mode, float fallback) "
      "-> (Tensor, Tensor, Tensor)");
  m.def("hybrik_ik(Tensor joints, Tensor twist, Tensor rest_joints, int mode, float fallback) -> Tensor");
}

TORCH_LIBRARY_IMPL(hybrik_fast_C, Autograd, m) {
  m.impl("hybrik_ik", &hybrik_fast::ik::hybrik_ik_autograd);
}
