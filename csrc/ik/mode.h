// The target rules of the fused IK, as codes: defined here only.  The
// extension exports them (hybrik_fast._C.ik_modes(), csrc/bindings.cpp) and
// hybrik_fast/ik.py reads them from there.
#pragma once

#include <cstdint>
#include <type_traits>

#include "ik/host_device.h"

namespace hybrik_fast {
namespace ik {

// The target rule is a compile-time parameter: each mode becomes its own
// straight-line loop over the tree, with no runtime branch on the mode per
// joint, and the naive mode drops the reconstructed-joint bookkeeping (q and
// its adjoint) entirely.
enum class Mode : int { kNaive = 0, kAdaptive = 1, kAdaptiveFallback = 2 };

HOST_DEVICE constexpr bool is_adaptive(Mode m) { return m != Mode::kNaive; }

// The name each code is exported under.
struct ModeName {
  Mode mode;
  const char* name;
};
constexpr ModeName kModeNames[] = {
    {Mode::kNaive, "naive"}, {Mode::kAdaptive, "adaptive"}, {Mode::kAdaptiveFallback, "adaptive_fallback"}};
constexpr int kNumModes = sizeof(kModeNames) / sizeof(kModeNames[0]);

// Calls f(std::integral_constant<Mode, M>{}) for the runtime mode
// (host code; the caller has checked 0 <= mode < kNumModes).
template <typename F>
inline void dispatch_mode(int64_t mode, F&& f) {
  switch (static_cast<Mode>(mode)) {
    case Mode::kNaive: f(std::integral_constant<Mode, Mode::kNaive>{}); break;
    case Mode::kAdaptive: f(std::integral_constant<Mode, Mode::kAdaptive>{}); break;
    case Mode::kAdaptiveFallback: f(std::integral_constant<Mode, Mode::kAdaptiveFallback>{}); break;
  }
}

}  // namespace ik
}  // namespace hybrik_fast
