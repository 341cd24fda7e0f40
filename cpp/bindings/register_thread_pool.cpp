#include <pybind11/pybind11.h>

#include "radz/thread_pool.h"

namespace py = pybind11;

void register_thread_pool(py::module_& m) {
  py::class_<radz::ThreadPool>(m, "ThreadPool", "Worker threads for preprocess_batch.")
      .def(py::init<size_t>(), py::arg("num_threads") = 0)
      .def_property_readonly("size", &radz::ThreadPool::size);
}
