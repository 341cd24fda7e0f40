#include "radz/jpeg_decode.h"

#include <csetjmp>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "radz/errors.h"

#ifdef RADZ_HAVE_LIBJPEG
#include <jpeglib.h>
#endif

namespace radz {

int jpeg_choose_scale(int64_t height, int64_t width, int64_t min_size) {
  if (min_size <= 0 || height <= 0 || width <= 0) return 1;
  int denom = 1;
  while (denom < 8) {
    const int64_t next = denom * 2;
    if ((height + next - 1) / next < min_size || (width + next - 1) / next < min_size) break;
    denom = static_cast<int>(next);
  }
  return denom;
}

#ifndef RADZ_HAVE_LIBJPEG

bool jpeg_available() { return false; }
JpegImage jpeg_decode(const uint8_t*, size_t, int64_t) {
  throw std::runtime_error("jpeg_decode: this build of the core has no libjpeg (install libjpeg62-turbo-dev)");
}

#else

namespace {

struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_message(j_common_ptr, int) {}  // warnings (e.g. premature end of data) are not errors here

// Plain C-style body: nothing with a destructor lives in this frame across setjmp/longjmp.
// Returns "" on success, else the reason.
bool decode_into(const uint8_t* data, size_t size, int64_t min_size, JpegImage* out, std::string* reason) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  err.message[0] = '\0';
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = on_error;
  err.base.emit_message = on_message;
  if (setjmp(err.jump)) {
    *reason = err.message;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components != 1 || cinfo.data_precision != 8) {
    *reason = "not an 8-bit single-component JPEG (" + std::to_string(cinfo.num_components) + " components, " +
              std::to_string(cinfo.data_precision) + " bits)";
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  cinfo.out_color_space = JCS_GRAYSCALE;
  cinfo.scale_num = 1;
  cinfo.scale_denom = static_cast<unsigned int>(jpeg_choose_scale(cinfo.image_height, cinfo.image_width, min_size));
  cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&cinfo);
  out->height = cinfo.output_height;
  out->width = cinfo.output_width;
  out->scale_denom = static_cast<int>(cinfo.scale_denom);
  out->data.resize(static_cast<size_t>(out->height) * static_cast<size_t>(out->width));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->data.data() + static_cast<size_t>(cinfo.output_scanline) * static_cast<size_t>(out->width);
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

}  // namespace

bool jpeg_available() { return true; }

JpegImage jpeg_decode(const uint8_t* data, size_t size, int64_t min_size) {
  if (data == nullptr || size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
    throw_invalid("data", "not a JPEG stream (no SOI marker)");
  }
  JpegImage out;
  std::string reason;
  if (!decode_into(data, size, min_size, &out, &reason)) throw_invalid("data", "JPEG decode failed (" + reason + ")");
  return out;
}

#endif  // RADZ_HAVE_LIBJPEG

}  // namespace radz
