#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "array_shape.h"
#include "radz/anchor_index.h"
#include "radz/errors.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

using radz_bindings::shape_of;

FloatArray float_array(const py::object& obj, const std::string& name) {
  FloatArray a = FloatArray::ensure(obj);
  if (!a) {
    PyErr_Clear();
    radz::throw_invalid(name, "must be a numeric array");
  }
  return a;
}

std::vector<float> vector_of(const py::object& obj, const std::string& name, int dim) {
  if (obj.is_none()) return {};
  FloatArray a = float_array(obj, name);
  if (a.ndim() != 1 || a.shape(0) != dim) {
    radz::throw_invalid(name, "must have shape (" + std::to_string(dim) + ",), got " + shape_of(a));
  }
  return std::vector<float>(a.data(), a.data() + a.shape(0));
}

radz::ClassVectors class_vectors(const radz::AnchorIndex& index, const py::object& prompt, const py::object& positive,
                                 const py::object& negative, const py::object& anchor) {
  radz::ClassVectors v;
  v.prompt = vector_of(prompt, "prompt", index.dim());
  v.positive = vector_of(positive, "positive", index.dim());
  v.negative = vector_of(negative, "negative", index.dim());
  v.anchor = vector_of(anchor, "anchor", index.dim());
  return v;
}

FloatArray queries(const radz::AnchorIndex& index, const py::object& x) {
  FloatArray a = float_array(x, "x");
  if (a.ndim() != 2 || a.shape(1) != index.dim()) {
    radz::throw_invalid("x", "must have shape [N, " + std::to_string(index.dim()) + "], got " + shape_of(a));
  }
  return a;
}

template <typename T, typename U>
py::array_t<T> matrix(const std::vector<U>& values, size_t rows, size_t cols) {
  static_assert(sizeof(T) == sizeof(U), "element sizes must match");
  py::array_t<T> out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
  if (!values.empty()) std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(U));
  return out;
}

}  // namespace

void register_anchor_index(py::module_& m) {
  py::class_<radz::AnchorIndex>(m, "AnchorIndex",
                                "Zero-shot class scores (softmax | posneg | anchor) with per-class calibration; "
                                "classes change at run time while other threads score.")
      .def(py::init([](int dim, const std::string& mode, double tau) {
             return new radz::AnchorIndex(dim, radz::parse_scoring_mode(mode), tau);
           }),
           py::arg("dim"), py::arg("mode") = "anchor", py::arg("tau") = 0.05)
      .def(
          "add_class",
          [](radz::AnchorIndex& self, const std::string& name, const py::object& prompt, const py::object& positive,
             const py::object& negative, const py::object& anchor) {
            radz::ClassVectors v = class_vectors(self, prompt, positive, negative, anchor);
            py::gil_scoped_release release;
            self.add_class(name, v);
          },
          py::arg("name"), py::kw_only(), py::arg("prompt") = py::none(), py::arg("positive") = py::none(),
          py::arg("negative") = py::none(), py::arg("anchor") = py::none(),
          "Appends a class; vectors [dim] float32, L2-normalised on entry (the mode's are required).")
      .def(
          "replace_class",
          [](radz::AnchorIndex& self, const std::string& name, const py::object& prompt, const py::object& positive,
             const py::object& negative, const py::object& anchor) {
            radz::ClassVectors v = class_vectors(self, prompt, positive, negative, anchor);
            py::gil_scoped_release release;
            self.replace_class(name, v);
          },
          py::arg("name"), py::kw_only(), py::arg("prompt") = py::none(), py::arg("positive") = py::none(),
          py::arg("negative") = py::none(), py::arg("anchor") = py::none(),
          "Replaces a class's vectors; its column and calibration stay.")
      .def("remove_class", &radz::AnchorIndex::remove_class, py::arg("name"), py::call_guard<py::gil_scoped_release>())
      .def(
          "set_background",
          [](radz::AnchorIndex& self, const py::object& background) {
            std::optional<std::vector<float>> v;
            if (!background.is_none()) v = vector_of(background, "background", self.dim());
            py::gil_scoped_release release;
            self.set_background(v);
          },
          py::arg("background"), "Sets ([dim] vector) or clears (None) the anchor mode's background anchor.")
      .def(
          "set_calibration",
          [](radz::AnchorIndex& self, const std::string& name, const std::string& method,
             const std::vector<double>& params, std::optional<double> threshold) {
            const double thr = threshold ? *threshold : std::numeric_limits<double>::infinity();
            self.set_calibration(name, radz::Calibration::from_params(method, params, thr));
          },
          py::arg("name"), py::arg("method"), py::arg("params") = std::vector<double>(), py::arg("threshold") = 0.5,
          "method 'none' | 'platt' (params [a, b]) | 'temperature' (params [T]); threshold on the "
          "calibrated probability, None (or inf) = never positive, as radz_train's Calibration.")
      .def(
          "calibration",
          [](const radz::AnchorIndex& self, const std::string& name) {
            const radz::Calibration cal = self.calibration(name);
            py::dict d;
            d["method"] = radz::to_string(cal.method);
            d["params"] = cal.params();
            d["threshold"] = std::isinf(cal.threshold) ? py::object(py::none()) : py::object(py::float_(cal.threshold));
            return d;
          },
          py::arg("name"), "A class's calibration: dict(method, params, threshold (None = never positive)).")
      .def(
          "score",
          [](const radz::AnchorIndex& self, const py::object& x) {
            FloatArray q = queries(self, x);
            radz::Scores s;
            {
              py::gil_scoped_release release;
              s = self.score(q.data(), static_cast<size_t>(q.shape(0)));
            }
            py::dict d;
            d["scores"] = matrix<float>(s.raw, s.n, s.num_classes);
            d["probabilities"] = matrix<float>(s.probabilities, s.n, s.num_classes);
            d["positive"] = matrix<bool>(s.positive, s.n, s.num_classes);
            d["class_names"] = s.class_names;
            return d;
          },
          py::arg("x"),
          "x [N, dim] L2-normalised embeddings -> dict(scores, probabilities [N, C] float32, positive [N, C] "
          "bool, class_names: the columns). GIL released.")
      .def(
          "top_k",
          [](const radz::AnchorIndex& self, const py::object& x, int64_t k) {
            if (k < 1) radz::throw_invalid("k", "must be >= 1, got " + std::to_string(k));
            FloatArray q = queries(self, x);
            radz::TopK t;
            {
              py::gil_scoped_release release;
              t = self.top_k(q.data(), static_cast<size_t>(q.shape(0)), static_cast<size_t>(k));
            }
            return py::make_tuple(matrix<int64_t>(t.indices, t.n, t.k), matrix<float>(t.probabilities, t.n, t.k));
          },
          py::arg("x"), py::arg("k"),
          "(indices [N, k'] int64, probabilities [N, k'] float32), most probable first; k' = min(k, len). "
          "GIL released.")
      .def_property_readonly("class_names", &radz::AnchorIndex::class_names)
      .def_property_readonly("mode", [](const radz::AnchorIndex& self) { return radz::to_string(self.mode()); })
      .def_property_readonly("tau", &radz::AnchorIndex::tau)
      .def_property_readonly("dim", &radz::AnchorIndex::dim)
      .def_property_readonly("has_background", &radz::AnchorIndex::has_background)
      .def("__len__", &radz::AnchorIndex::size)
      .def("__contains__",
           [](const radz::AnchorIndex& self, const std::string& name) {
             const auto names = self.class_names();
             return std::find(names.begin(), names.end(), name) != names.end();
           })
      .def("__repr__", [](const radz::AnchorIndex& self) {
        return "AnchorIndex(dim=" + std::to_string(self.dim()) + ", mode='" + radz::to_string(self.mode()) +
               "', tau=" + std::string(py::repr(py::float_(self.tau()))) + ", classes=" + std::to_string(self.size()) +
               ")";
      });
}
