#include "radz/image.h"

#include <cstdlib>

#include "radz/errors.h"

namespace radz {

size_t pixel_size(PixelType type) {
  switch (type) {
    case PixelType::kUint8:
      return 1;
    case PixelType::kUint16:
      return 2;
    case PixelType::kInt16:
      return 2;
    case PixelType::kFloat32:
      return 4;
  }
  return 0;
}

void validate(const ImageView& image, const std::string& name) {
  if (image.height <= 0 || image.width <= 0) {
    throw_invalid(name, "empty image (" + std::to_string(image.height) + "x" + std::to_string(image.width) + ")");
  }
  if (image.data == nullptr) throw_invalid(name, "null data");
  const int64_t row_bytes = image.width * static_cast<int64_t>(pixel_size(image.type));
  if (image.height > 1 && std::llabs(image.row_stride_bytes) < row_bytes) {
    throw_invalid(name, "row stride " + std::to_string(image.row_stride_bytes) + " bytes is shorter than a row");
  }
}

}  // namespace radz
