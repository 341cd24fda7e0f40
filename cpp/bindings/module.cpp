// The Python extension radz_engine._core: type conversion only, no logic.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_pixel_spec(py::module_& m);
void register_thread_pool(py::module_& m);
void register_preprocess(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "radz_engine C++ core: preprocessing (and later batching and anchor scoring).";
  register_pixel_spec(m);
  register_thread_pool(m);
  register_preprocess(m);
}
