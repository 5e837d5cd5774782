// Boundary checks of the C++ operators.  The Python functions validate user
// input first; these guard the raw operators (torch.ops.hybrik_fast_C.*) with
// the exception types the package raises everywhere: a wrong shape or value
// is a ValueError (TORCH_CHECK_VALUE), a wrong dtype a TypeError
// (TORCH_CHECK_TYPE).  Messages name what was expected.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

// x must have shape (d0, d1, ...), each d an expression (a name such as B or
// a number); the message gives the shape as written and as evaluated:
//   HYBRIK_CHECK_SHAPE(twist, B, 23, 2)
//   -> "twist must have shape (B, 23, 2) = [2, 23, 2], got [3, 23, 2]"
#define HYBRIK_CHECK_SHAPE(x, ...)                                                                     \
  TORCH_CHECK_VALUE((x).sizes() == at::IntArrayRef({__VA_ARGS__}), #x " must have shape (" #__VA_ARGS__ \
                    ") = ", at::IntArrayRef({__VA_ARGS__}), ", got ", (x).sizes())

// x must have the dtype of ref (TypeError) and sit on its device (ValueError).
#define HYBRIK_CHECK_LIKE(x, ref)                                                                        \
  TORCH_CHECK_TYPE((x).scalar_type() == (ref).scalar_type(), #x " must have the dtype of " #ref " (",    \
                   (ref).scalar_type(), "), got ", (x).scalar_type());                                   \
  TORCH_CHECK_VALUE((x).device() == (ref).device(), #x " must be on the device of " #ref " (", (ref).device(), \
                    "), got ", (x).device())
