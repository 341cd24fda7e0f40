#pragma once
/// Error conventions of the C++ core.
///
/// The core throws standard exceptions only; the bindings let pybind11 map them:
/// std::invalid_argument -> ValueError (bad input, message names the argument),
/// std::runtime_error -> RuntimeError (a failure that is not the caller's fault).

#include <stdexcept>
#include <string>

namespace radz {

/// Throws std::invalid_argument("<argument>: <reason>").
[[noreturn]] inline void throw_invalid(const std::string& argument, const std::string& reason) {
  throw std::invalid_argument(argument + ": " + reason);
}

}  // namespace radz
