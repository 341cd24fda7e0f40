#pragma once
/// Shared by the bindings: a numpy array's shape for error messages, "(3,)" or "(2,128)".

#include <pybind11/numpy.h>

#include <string>

namespace radz_bindings {

inline std::string shape_of(const pybind11::array& a) {
  std::string s = "(";
  for (pybind11::ssize_t i = 0; i < a.ndim(); ++i)
    s += std::to_string(a.shape(i)) + (a.ndim() == 1 || i + 1 < a.ndim() ? "," : "");
  return s + ")";
}

}  // namespace radz_bindings
