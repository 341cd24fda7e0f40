#include "radz/j2k_decode.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "radz/errors.h"

#ifdef RADZ_HAVE_OPENJPEG
#include <openjpeg.h>
#endif

namespace radz {

int j2k_choose_reduce(int64_t height, int64_t width, int max_reduce, int64_t min_size) {
  if (min_size <= 0 || height <= 0 || width <= 0) return 0;
  int reduce = 0;
  while (reduce < max_reduce) {
    const int64_t next = int64_t{1} << (reduce + 1);
    const int64_t h = (height + next - 1) / next;  // OpenJPEG's ceil division per level
    const int64_t w = (width + next - 1) / next;
    if (h < min_size || w < min_size) break;
    ++reduce;
  }
  return reduce;
}

#ifndef RADZ_HAVE_OPENJPEG

bool j2k_available() { return false; }
std::string openjpeg_version() { return ""; }
J2kImage j2k_decode(const uint8_t*, size_t, int64_t) {
  throw std::runtime_error("j2k_decode: this build of the core has no OpenJPEG (install libopenjp2-7-dev and rebuild)");
}

#else

namespace {

struct MemoryReader {
  const uint8_t* data;
  size_t size;
  size_t offset;
};

OPJ_SIZE_T read_fn(void* buffer, OPJ_SIZE_T n, void* user) {
  auto* r = static_cast<MemoryReader*>(user);
  if (r->offset >= r->size) return static_cast<OPJ_SIZE_T>(-1);
  const size_t k = std::min<size_t>(n, r->size - r->offset);
  std::memcpy(buffer, r->data + r->offset, k);
  r->offset += k;
  return k;
}

OPJ_OFF_T skip_fn(OPJ_OFF_T n, void* user) {
  auto* r = static_cast<MemoryReader*>(user);
  if (n < 0) {
    const size_t back = std::min<size_t>(static_cast<size_t>(-n), r->offset);
    r->offset -= back;
    return -static_cast<OPJ_OFF_T>(back);
  }
  const size_t k = std::min<size_t>(static_cast<size_t>(n), r->size - std::min(r->offset, r->size));
  r->offset += k;
  return static_cast<OPJ_OFF_T>(k);
}

OPJ_BOOL seek_fn(OPJ_OFF_T n, void* user) {
  auto* r = static_cast<MemoryReader*>(user);
  if (n < 0 || static_cast<size_t>(n) > r->size) return OPJ_FALSE;
  r->offset = static_cast<size_t>(n);
  return OPJ_TRUE;
}

void error_fn(const char* message, void* user) {
  auto* text = static_cast<std::string*>(user);
  if (text->empty()) *text = message ? message : "unknown error";
  while (!text->empty() && (text->back() == '\n' || text->back() == ' ')) text->pop_back();
}
void quiet_fn(const char*, void*) {}

struct CodecDeleter {
  void operator()(opj_codec_t* c) const { opj_destroy_codec(c); }
};
struct StreamDeleter {
  void operator()(opj_stream_t* s) const { opj_stream_destroy(s); }
};
struct ImageDeleter {
  void operator()(opj_image_t* i) const { opj_image_destroy(i); }
};
struct InfoDeleter {
  void operator()(opj_codestream_info_v2_t* i) const { opj_destroy_cstr_info(&i); }
};

OPJ_CODEC_FORMAT format_of(const uint8_t* data, size_t size) {
  static const uint8_t kJ2c[4] = {0xFF, 0x4F, 0xFF, 0x51};
  static const uint8_t kJp2[12] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
  if (size >= 4 && std::memcmp(data, kJ2c, 4) == 0) return OPJ_CODEC_J2K;
  if (size >= 12 && std::memcmp(data, kJp2, 12) == 0) return OPJ_CODEC_JP2;
  throw_invalid("data", "not a JPEG 2000 codestream (no SOC/SIZ marker) nor a JP2 file");
}

}  // namespace

bool j2k_available() { return true; }
std::string openjpeg_version() { return opj_version(); }

J2kImage j2k_decode(const uint8_t* data, size_t size, int64_t min_size) {
  if (data == nullptr || size == 0) throw_invalid("data", "empty");
  const OPJ_CODEC_FORMAT format = format_of(data, size);
  std::string error;
  std::unique_ptr<opj_codec_t, CodecDeleter> codec(opj_create_decompress(format));
  if (!codec) throw std::runtime_error("j2k_decode: OpenJPEG could not create a decoder");
  opj_set_error_handler(codec.get(), error_fn, &error);
  opj_set_warning_handler(codec.get(), quiet_fn, nullptr);
  opj_set_info_handler(codec.get(), quiet_fn, nullptr);
  auto fail = [&](const char* step) -> void {
    throw std::invalid_argument(std::string("data: JPEG 2000 ") + step + " failed (" +
                                (error.empty() ? "OpenJPEG gave no reason" : error) + ")");
  };

  MemoryReader reader{data, size, 0};
  std::unique_ptr<opj_stream_t, StreamDeleter> stream(opj_stream_create(1 << 16, OPJ_TRUE));
  if (!stream) throw std::runtime_error("j2k_decode: OpenJPEG could not create a stream");
  opj_stream_set_user_data(stream.get(), &reader, nullptr);
  opj_stream_set_user_data_length(stream.get(), size);
  opj_stream_set_read_function(stream.get(), read_fn);
  opj_stream_set_skip_function(stream.get(), skip_fn);
  opj_stream_set_seek_function(stream.get(), seek_fn);

  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  if (!opj_setup_decoder(codec.get(), &parameters)) fail("decoder setup");

  opj_image_t* raw_image = nullptr;
  if (!opj_read_header(stream.get(), codec.get(), &raw_image)) fail("header");
  std::unique_ptr<opj_image_t, ImageDeleter> image(raw_image);
  if (image->numcomps != 1) {
    throw_invalid("data", "JPEG 2000 image has " + std::to_string(image->numcomps) + " components (need 1)");
  }
  const int precision = static_cast<int>(image->comps[0].prec);
  if (precision < 1 || precision > 16) {
    throw_invalid("data", "JPEG 2000 precision " + std::to_string(precision) + " bits (need 1..16)");
  }
  const int64_t full_h = static_cast<int64_t>(image->y1) - image->y0;
  const int64_t full_w = static_cast<int64_t>(image->x1) - image->x0;

  int max_reduce = 0;
  {
    std::unique_ptr<opj_codestream_info_v2_t, InfoDeleter> info(opj_get_cstr_info(codec.get()));
    if (info && info->m_default_tile_info.tccp_info) {
      max_reduce = static_cast<int>(info->m_default_tile_info.tccp_info[0].numresolutions) - 1;
    }
  }
  const int reduce = j2k_choose_reduce(full_h, full_w, std::max(0, max_reduce), min_size);
  if (reduce > 0 && !opj_set_decoded_resolution_factor(codec.get(), static_cast<OPJ_UINT32>(reduce))) {
    fail("resolution reduction");
  }
  if (!opj_decode(codec.get(), stream.get(), image.get())) fail("decode");
  if (!opj_end_decompress(codec.get(), stream.get())) fail("end of decode");

  const opj_image_comp_t& comp = image->comps[0];
  if (comp.data == nullptr || comp.w == 0 || comp.h == 0) fail("decode (no samples)");
  J2kImage out;
  out.height = comp.h;
  out.width = comp.w;
  out.precision = precision;
  out.is_signed = comp.sgnd != 0;
  out.reduce = reduce;
  out.full_height = static_cast<int>(full_h);
  out.full_width = static_cast<int>(full_w);
  const size_t n = static_cast<size_t>(out.height) * static_cast<size_t>(out.width);
  out.data.resize(n);
  const OPJ_INT32* src = comp.data;
  const int32_t low = out.is_signed ? -(1 << (precision - 1)) : 0;
  const int32_t high = out.is_signed ? (1 << (precision - 1)) - 1 : (1 << precision) - 1;
  for (size_t i = 0; i < n; ++i) {
    // Lossy reconstructions may overshoot the sample range by a little: clamp like pydicom's decoders.
    const int32_t v = std::clamp<int32_t>(src[i], low, high);
    out.data[i] = static_cast<uint16_t>(v);
  }
  return out;
}

#endif  // RADZ_HAVE_OPENJPEG

}  // namespace radz
