#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "array_shape.h"
#include "radz/errors.h"
#include "radz/vector_index.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

using radz_bindings::shape_of;

/// x as float32 C-contiguous [n, dim] (other float dtypes, e.g. float16, are converted with a
/// copy). `one_row`: a 1-D [dim] array is one row.
FloatArray rows(const py::object& obj, const std::string& name, int dim, bool one_row) {
  py::array in = py::array::ensure(obj);
  if (!in) {
    PyErr_Clear();
    radz::throw_invalid(name, "must be a numeric array");
  }
  const char kind = in.dtype().kind();
  if (kind != 'f') {
    radz::throw_invalid(name, "must be a float array, got dtype " + std::string(py::str(in.dtype())));
  }
  FloatArray a = FloatArray::ensure(in);
  if (!a) {
    PyErr_Clear();
    radz::throw_invalid(name, "must be convertible to float32");
  }
  if (one_row && a.ndim() == 1 && a.shape(0) == dim) return a.reshape({py::ssize_t{1}, py::ssize_t{dim}});
  if (a.ndim() != 2 || a.shape(1) != dim) {
    radz::throw_invalid(name, "must have shape [N, " + std::to_string(dim) + "]" +
                                  (one_row ? " or [" + std::to_string(dim) + "]" : "") + ", got " + shape_of(a));
  }
  return a;
}

template <typename T, typename U>
py::array_t<T> matrix(const std::vector<U>& values, size_t n, size_t k) {
  static_assert(sizeof(T) == sizeof(U), "element sizes must match");
  py::array_t<T> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(k)});
  if (!values.empty()) std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(U));
  return out;
}

/// A const accessor that takes the index's lock, run with the GIL released: waiting behind a
/// long add() or train() must not stall every other Python thread.
template <typename R>
auto released(R (radz::VectorIndex::*method)() const) {
  return [method](const radz::VectorIndex& self) {
    py::gil_scoped_release release;
    return (self.*method)();
  };
}

}  // namespace

void register_vector_index(py::module_& m) {
  py::class_<radz::VectorIndex>(m, "VectorIndex",
                                "FAISS inner-product index over L2-normalised embeddings (similar-case retrieval). "
                                "Ids are 0..size-1 in the order added. Many threads may search while one adds.")
      .def(py::init<int, const std::string&>(), py::arg("dim"), py::arg("factory") = "Flat",
           "An empty index built by faiss.index_factory(dim, factory, METRIC_INNER_PRODUCT).")
      .def(
          "train",
          [](radz::VectorIndex& self, const py::object& x) {
            FloatArray a = rows(x, "x", self.dim(), false);
            py::gil_scoped_release release;
            self.train(a.data(), static_cast<size_t>(a.shape(0)));
          },
          py::arg("x"), "Trains on x [N, dim] (N >= train_size_hint); only untrained indexes. GIL released.")
      .def(
          "add",
          [](radz::VectorIndex& self, const py::object& x) {
            FloatArray a = rows(x, "x", self.dim(), false);
            py::gil_scoped_release release;
            self.add(a.data(), static_cast<size_t>(a.shape(0)));
          },
          py::arg("x"), "Appends x [N, dim] (finite; float16 etc. converted); ids continue from size. GIL released.")
      .def(
          "search",
          [](const radz::VectorIndex& self, const py::object& q, int64_t k) {
            if (k < 1) radz::throw_invalid("k", "must be >= 1, got " + std::to_string(k));
            FloatArray a = rows(q, "q", self.dim(), true);
            radz::Neighbours nb;
            {
              py::gil_scoped_release release;
              nb = self.search(a.data(), static_cast<size_t>(a.shape(0)), static_cast<size_t>(k));
            }
            return py::make_tuple(matrix<float>(nb.similarities, nb.n, nb.k), matrix<int64_t>(nb.ids, nb.n, nb.k));
          },
          py::arg("q"), py::arg("k"),
          "(similarities [N, k] float32, ids [N, k] int64), most similar first; a 1-D q is one query. Rows with "
          "fewer than k neighbours are padded with id -1, similarity -inf. GIL released.")
      .def("save", &radz::VectorIndex::save, py::arg("path"), py::call_guard<py::gil_scoped_release>(),
           "Writes the index (to path + '.tmp', then renamed over path). GIL released.")
      .def_static(
          "load", [](const std::string& path) { return radz::VectorIndex::load(path); }, py::arg("path"),
          py::call_guard<py::gil_scoped_release>(), "Reads an index written by save(). GIL released.")
      .def_static("default_factory", &radz::VectorIndex::default_factory, py::arg("n"), py::arg("dim"),
                  "'Flat' (exact) below 100,000 vectors, else 'IVF<nlist>,Flat' (nlist ~ 4 sqrt(n), benchmarked).")
      .def_static("default_search_parameters", &radz::VectorIndex::default_search_parameters, py::arg("factory"),
                  py::arg("n"), "The ParameterSpace string for default_factory's choice ('' for Flat).")
      .def("set_search_parameters", &radz::VectorIndex::set_search_parameters, py::arg("params"),
           py::call_guard<py::gil_scoped_release>(),
           "Sets e.g. 'nprobe=16', 'efSearch=128' or 'nprobe=32,k_factor_rf=4' (faiss.ParameterSpace).")
      .def_property_readonly("search_parameters", released(&radz::VectorIndex::search_parameters),
                             "The parameters in effect, as default_search_parameters writes them.")
      .def_property_readonly("size", released(&radz::VectorIndex::size))
      .def_property_readonly("dim", &radz::VectorIndex::dim)
      .def_property_readonly("factory", &radz::VectorIndex::factory)
      .def_property_readonly("is_trained", released(&radz::VectorIndex::is_trained))
      .def_property_readonly("train_size_hint", released(&radz::VectorIndex::train_size_hint),
                             "Vectors train() needs (0: no training).")
      .def("memory_bytes", &radz::VectorIndex::memory_bytes, py::call_guard<py::gil_scoped_release>(),
           "Approximate size: bytes of the serialised index.")
      .def_static("set_num_threads", &radz::set_num_threads, py::arg("n"),
                  "OpenMP threads for FAISS batch work started from the calling thread (single queries always "
                  "use one).")
      .def_static("num_threads", &radz::num_threads, "OpenMP threads FAISS uses from the calling thread.")
      .def("__len__", &radz::VectorIndex::size, py::call_guard<py::gil_scoped_release>())
      .def("__repr__", [](const radz::VectorIndex& self) {
        return "VectorIndex(dim=" + std::to_string(self.dim()) + ", factory='" + self.factory() +
               "', size=" + std::to_string(self.size()) + ")";
      });
}
