#pragma once
/// Radiograph preprocessing: stored pixels -> model-ready normalised CHW tensor.
///
/// The numpy reference python/radz_engine/preprocess_reference.py defines the exact semantics;
/// this is its fast implementation (integer pixels go through a per-image lookup table, the
/// resize is a separable streaming pass that never materialises the full-size float image).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "radz/image.h"
#include "radz/pixel_spec.h"
#include "radz/thread_pool.h"

namespace radz {

enum class OutputType { kFloat32, kFloat16 };

/// What the model wants: size, normalisation, aspect handling, element type.
struct OutputSpec {
  int64_t height = 224;
  int64_t width = 224;
  /// One entry per output channel; the grey image is replicated into every channel.
  std::vector<double> mean = {0.48145466, 0.4578275, 0.40821073};
  std::vector<double> std = {0.26862954, 0.26130258, 0.27577711};
  /// true: keep the aspect ratio and pad; false: stretch to the output size.
  bool letterbox = true;
  /// Intensity (0..1, before normalisation) of the letterbox border.
  double pad_value = 0.0;
  OutputType dtype = OutputType::kFloat32;

  int64_t channels() const { return static_cast<int64_t>(mean.size()); }
  /// Bytes of one [C, H, W] output.
  size_t bytes() const;
};

/// Throws std::invalid_argument naming the offending field ("output.height: ...").
void validate(const OutputSpec& output);

/// Preprocesses one image into `out`, which must hold output.bytes() bytes.
void preprocess(const ImageView& image, const PixelSpec& spec, const OutputSpec& output, void* out);

/// Preprocesses images[i] with specs[i] into out + i * output.bytes(), in parallel on `pool`.
/// Everything is validated before any work starts; errors name the index ("images[3]: ...").
void preprocess_batch(const std::vector<ImageView>& images, const std::vector<PixelSpec>& specs,
                      const OutputSpec& output, void* out, ThreadPool& pool);

}  // namespace radz
