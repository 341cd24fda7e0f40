#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <utility>

#include "radz/j2k_decode.h"
#include "radz/jpeg_decode.h"

namespace py = pybind11;

void register_j2k_decode(py::module_& m) {
  m.attr("HAVE_OPENJPEG") = radz::j2k_available();
  m.attr("OPENJPEG_VERSION") = radz::openjpeg_version();
  m.def(
      "j2k_decode",
      [](py::buffer data, int64_t min_size) {
        py::buffer_info info = data.request();
        if (info.itemsize != 1 || info.ndim != 1) {
          throw std::invalid_argument("data: need bytes (a 1-D buffer of bytes)");
        }
        radz::J2kImage image;
        {
          py::gil_scoped_release release;
          image = radz::j2k_decode(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size), min_size);
        }
        py::array out;
        if (image.is_signed) {
          py::array_t<int16_t> a({image.height, image.width});
          std::memcpy(a.mutable_data(), image.data.data(), image.data.size() * sizeof(uint16_t));
          out = std::move(a);
        } else if (image.precision <= 8) {
          py::array_t<uint8_t> a({image.height, image.width});
          uint8_t* dst = a.mutable_data();
          for (size_t i = 0; i < image.data.size(); ++i) dst[i] = static_cast<uint8_t>(image.data[i]);
          out = std::move(a);
        } else {
          py::array_t<uint16_t> a({image.height, image.width});
          std::memcpy(a.mutable_data(), image.data.data(), image.data.size() * sizeof(uint16_t));
          out = std::move(a);
        }
        return py::make_tuple(out, image.reduce, image.precision);
      },
      py::arg("data"), py::arg("min_size") = 0,
      "Decode one JPEG 2000 / HTJ2K codestream (or JP2 file) at the largest resolution reduction that\n"
      "keeps both sides >= min_size (<= 0: full resolution), GIL released. Returns (pixels, reduce,\n"
      "precision): pixels uint8 (precision <= 8), uint16, or int16 (signed). Raises ValueError on data\n"
      "that is not a single-component 1..16-bit JPEG 2000 image, RuntimeError without OpenJPEG.");

  m.attr("HAVE_LIBJPEG") = radz::jpeg_available();
  m.def(
      "jpeg_decode",
      [](py::buffer data, int64_t min_size) {
        py::buffer_info info = data.request();
        if (info.itemsize != 1 || info.ndim != 1) {
          throw std::invalid_argument("data: need bytes (a 1-D buffer of bytes)");
        }
        radz::JpegImage image;
        {
          py::gil_scoped_release release;
          image = radz::jpeg_decode(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size), min_size);
        }
        py::array_t<uint8_t> out({image.height, image.width});
        std::memcpy(out.mutable_data(), image.data.data(), image.data.size());
        return py::make_tuple(out, image.scale_denom);
      },
      py::arg("data"), py::arg("min_size") = 0,
      "Decode one 8-bit grayscale JPEG at the largest 1/2, 1/4 or 1/8 DCT scale that keeps both sides\n"
      ">= min_size (<= 0: full size), GIL released. Returns (pixels uint8, scale_denom). Raises\n"
      "ValueError on data that is not such a JPEG, RuntimeError without libjpeg.");
}
