// Switches read from the environment.
#pragma once

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <string>

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

// The value of the environment variable `name` as one of n choices: -1 when
// unset or empty, else the index of the choice it names; anything else is an
// error naming the variable and the choices.
inline int env_choice(const char* name, const char* const* choices, int n) {
  const char* v = std::getenv(name);
  if (v == nullptr || v[0] == '\0') return -1;
  for (int k = 0; k < n; ++k)
    if (std::strcmp(v, choices[k]) == 0) return k;
  std::string list;
  for (int k = 0; k < n; ++k) list += (k == 0 ? "" : k + 1 == n ? " or " : ", ") + std::string(choices[k]);
  TORCH_CHECK(false, "environment variable ", name, " must be ", list, " (or unset), got '", v, "'");
}

}  // namespace hybrik_fast
