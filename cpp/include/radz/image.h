#pragma once
/// A borrowed view of stored pixel values: the core never owns or copies input images.

#include <cstddef>
#include <cstdint>
#include <string>

namespace radz {

/// Stored pixel types the core reads (DICOM: 8/16-bit unsigned, 16-bit signed; float for tests
/// and already-rescaled data).
enum class PixelType { kUint8, kUint16, kInt16, kFloat32 };

/// Size in bytes of one pixel of `type`.
size_t pixel_size(PixelType type);

/// Rows of `width` contiguous pixels, `row_stride_bytes` apart (may exceed the row size, as in
/// a numpy slice).
struct ImageView {
  const void* data = nullptr;
  PixelType type = PixelType::kUint16;
  int64_t height = 0;
  int64_t width = 0;
  int64_t row_stride_bytes = 0;

  /// Pointer to the first pixel of row y.
  const unsigned char* row(int64_t y) const { return static_cast<const unsigned char*>(data) + y * row_stride_bytes; }
};

/// Throws std::invalid_argument("<name>: ...") for a null, empty or inconsistent view.
void validate(const ImageView& image, const std::string& name);

}  // namespace radz
