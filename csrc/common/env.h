// Switches read from the environment.
#pragma once

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

namespace hybrik_fast {

// The value of the environment variable `name` as a switch: -1 when unset or
// empty, 0 for "0", 1 for "1"; anything else is an error naming the variable.
inline int env_switch(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || v[0] == '\0') return -1;
  TORCH_CHECK(std::strcmp(v, "0") == 0 || std::strcmp(v, "1") == 0, "environment variable ", name,
              " must be 0 or 1 (or unset), got '", v, "'");
  return v[0] == '1';
}

}  // namespace hybrik_fast
