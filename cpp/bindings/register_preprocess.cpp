#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "radz/errors.h"
#include "radz/preprocess.h"

namespace py = pybind11;

namespace {

radz::ImageView view_of(const py::array& pixels, const std::string& name) {
  if (pixels.ndim() != 2) radz::throw_invalid(name, "must be 2-D, got ndim " + std::to_string(pixels.ndim()));
  radz::ImageView view;
  if (py::isinstance<py::array_t<uint8_t>>(pixels)) {
    view.type = radz::PixelType::kUint8;
  } else if (py::isinstance<py::array_t<uint16_t>>(pixels)) {
    view.type = radz::PixelType::kUint16;
  } else if (py::isinstance<py::array_t<int16_t>>(pixels)) {
    view.type = radz::PixelType::kInt16;
  } else if (py::isinstance<py::array_t<float>>(pixels)) {
    view.type = radz::PixelType::kFloat32;
  } else {
    radz::throw_invalid(
        name, "dtype " + std::string(py::str(pixels.dtype())) + " is not supported (uint8, uint16, int16, float32)");
  }
  if (pixels.shape(1) > 1 && pixels.strides(1) != static_cast<py::ssize_t>(radz::pixel_size(view.type))) {
    radz::throw_invalid(name, "rows must be contiguous (use np.ascontiguousarray)");
  }
  view.data = pixels.data();
  view.height = pixels.shape(0);
  view.width = pixels.shape(1);
  view.row_stride_bytes = pixels.strides(0);
  if (view.height == 1) view.row_stride_bytes = view.width * static_cast<int64_t>(radz::pixel_size(view.type));
  return view;
}

void* output_buffer(py::array& out, const radz::OutputSpec& output, py::ssize_t batch, bool batched) {
  const bool half = output.dtype == radz::OutputType::kFloat16;
  const bool dtype_ok = out.dtype().kind() == 'f' && out.itemsize() == (half ? 2 : 4);
  if (!dtype_ok) radz::throw_invalid("out", std::string("dtype must be ") + (half ? "float16" : "float32"));
  if (!(out.flags() & py::array::c_style)) radz::throw_invalid("out", "must be C-contiguous");
  if (!out.writeable()) radz::throw_invalid("out", "must be writeable");
  std::vector<py::ssize_t> want;
  if (batched) want.push_back(batch);
  want.insert(want.end(), {output.channels(), output.height, output.width});
  std::vector<py::ssize_t> got(out.shape(), out.shape() + out.ndim());
  if (got != want) radz::throw_invalid("out", "wrong shape");
  return out.mutable_data();
}

}  // namespace

void register_preprocess(py::module_& m) {
  py::enum_<radz::OutputType>(m, "OutputType")
      .value("FLOAT32", radz::OutputType::kFloat32)
      .value("FLOAT16", radz::OutputType::kFloat16);

  py::class_<radz::OutputSpec>(m, "OutputSpec", "Model input: size, normalisation, aspect, dtype.")
      .def(py::init<>())
      .def_readwrite("height", &radz::OutputSpec::height)
      .def_readwrite("width", &radz::OutputSpec::width)
      .def_readwrite("mean", &radz::OutputSpec::mean)
      .def_readwrite("std", &radz::OutputSpec::std)
      .def_readwrite("letterbox", &radz::OutputSpec::letterbox)
      .def_readwrite("pad_value", &radz::OutputSpec::pad_value)
      .def_readwrite("dtype", &radz::OutputSpec::dtype)
      .def_property_readonly("channels", &radz::OutputSpec::channels)
      .def("validate", [](const radz::OutputSpec& output) { radz::validate(output); });

  m.def(
      "preprocess",
      [](const py::array& pixels, const radz::PixelSpec& spec, const radz::OutputSpec& output, py::array out) {
        const radz::ImageView view = view_of(pixels, "pixels");
        void* buffer = output_buffer(out, output, 0, false);
        py::gil_scoped_release release;
        radz::preprocess(view, spec, output, buffer);
      },
      py::arg("pixels"), py::arg("spec"), py::arg("output"), py::arg("out"),
      "Stored pixels [H, W] -> out [C, H, W] (GIL released).");

  m.def(
      "preprocess_batch",
      [](const std::vector<py::array>& images, const std::vector<radz::PixelSpec>& specs,
         const radz::OutputSpec& output, py::array out, radz::ThreadPool& pool) {
        std::vector<radz::ImageView> views;
        views.reserve(images.size());
        for (size_t i = 0; i < images.size(); ++i)
          views.push_back(view_of(images[i], "images[" + std::to_string(i) + "]"));
        void* buffer = output_buffer(out, output, static_cast<py::ssize_t>(images.size()), true);
        py::gil_scoped_release release;
        radz::preprocess_batch(views, specs, output, buffer, pool);
      },
      py::arg("images"), py::arg("specs"), py::arg("output"), py::arg("out"), py::arg("pool"),
      "Stored pixels of many sizes -> out [B, C, H, W], in parallel on pool (GIL released).");
}
