#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "radz/pixel_spec.h"

namespace py = pybind11;

void register_pixel_spec(py::module_& m) {
  py::enum_<radz::VoiFunction>(m, "VoiFunction")
      .value("LINEAR", radz::VoiFunction::kLinear)
      .value("LINEAR_EXACT", radz::VoiFunction::kLinearExact)
      .value("SIGMOID", radz::VoiFunction::kSigmoid);

  py::class_<radz::PixelSpec>(m, "PixelSpec", "Grayscale pipeline parameters (see radz_engine.PixelSpec).")
      .def(py::init<>())
      .def_readwrite("rescale_slope", &radz::PixelSpec::rescale_slope)
      .def_readwrite("rescale_intercept", &radz::PixelSpec::rescale_intercept)
      .def_readwrite("window_center", &radz::PixelSpec::window_center)
      .def_readwrite("window_width", &radz::PixelSpec::window_width)
      .def_readwrite("voi_function", &radz::PixelSpec::voi_function)
      .def_readwrite("voi_lut", &radz::PixelSpec::voi_lut)
      .def_readwrite("voi_lut_first", &radz::PixelSpec::voi_lut_first)
      .def_readwrite("voi_lut_bits", &radz::PixelSpec::voi_lut_bits)
      .def_readwrite("invert", &radz::PixelSpec::invert)
      .def_readwrite("bits_stored", &radz::PixelSpec::bits_stored)
      .def_readwrite("padding_value", &radz::PixelSpec::padding_value)
      .def_readwrite("padding_limit", &radz::PixelSpec::padding_limit)
      .def("validate", [](const radz::PixelSpec& spec) { radz::validate(spec); });
}
