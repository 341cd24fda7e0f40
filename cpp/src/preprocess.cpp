#include "radz/preprocess.h"

#include <cmath>
#include <string>

#include "half.h"
#include "intensity.h"
#include "radz/errors.h"
#include "resample.h"

namespace radz {
namespace {

/// Writes one normalised value into every channel plane at pixel offset `at`.
class ChannelWriter {
 public:
  ChannelWriter(const OutputSpec& output, void* out)
      : out_(out), plane_(output.height * output.width), half_(output.dtype == OutputType::kFloat16) {
    for (int64_t c = 0; c < output.channels(); ++c) {
      mean_.push_back(output.mean[c]);
      std_.push_back(output.std[c]);
    }
  }

  void write(int64_t at, double intensity) const {
    for (size_t c = 0; c < mean_.size(); ++c) {
      const float value = static_cast<float>((intensity - mean_[c]) / std_[c]);
      const int64_t index = static_cast<int64_t>(c) * plane_ + at;
      if (half_) {
        static_cast<uint16_t*>(out_)[index] = float_to_half(value);
      } else {
        static_cast<float*>(out_)[index] = value;
      }
    }
  }

 private:
  void* out_;
  int64_t plane_;
  bool half_;
  std::vector<double> mean_;
  std::vector<double> std_;
};

/// Keeps the last two mapped source rows: neighbouring output rows share taps.
class RowCache {
 public:
  RowCache(const IntensityMapper& mapper, int64_t width) : mapper_(mapper) {
    for (auto& slot : slots_) slot.values.resize(static_cast<size_t>(width));
  }

  const float* get(int64_t y) {
    for (auto& slot : slots_) {
      if (slot.row == y) return slot.values.data();
    }
    Slot& victim = slots_[next_];
    next_ ^= 1;
    mapper_.map_row(y, victim.values.data());
    victim.row = y;
    return victim.values.data();
  }

 private:
  struct Slot {
    int64_t row = -1;
    std::vector<float> values;
  };
  const IntensityMapper& mapper_;
  Slot slots_[2];
  int next_ = 0;
};

}  // namespace

size_t OutputSpec::bytes() const {
  const size_t element = dtype == OutputType::kFloat16 ? 2 : 4;
  return static_cast<size_t>(channels() * height * width) * element;
}

void validate(const OutputSpec& output) {
  if (output.height <= 0) throw_invalid("output.height", "must be > 0, got " + std::to_string(output.height));
  if (output.width <= 0) throw_invalid("output.width", "must be > 0, got " + std::to_string(output.width));
  if (output.height > 65536 || output.width > 65536) throw_invalid("output size", "must be <= 65536 per side");
  if (output.mean.empty()) throw_invalid("mean", "needs one value per channel");
  if (output.mean.size() != output.std.size()) {
    throw_invalid("std", "needs as many values as mean (" + std::to_string(output.mean.size()) + ")");
  }
  for (size_t c = 0; c < output.mean.size(); ++c) {
    if (!std::isfinite(output.mean[c])) throw_invalid("mean", "must be finite");
    if (!std::isfinite(output.std[c]) || !(output.std[c] > 0.0)) throw_invalid("std", "must be finite and > 0");
  }
  if (!std::isfinite(output.pad_value)) throw_invalid("pad_value", "must be finite");
}

namespace {

void preprocess_validated(const ImageView& image, const PixelSpec& spec, const OutputSpec& output, void* out,
                          const std::string& name) {
  const IntensityMapper mapper(image, spec, name);
  const Placement place = place_image(image.height, image.width, output.height, output.width, output.letterbox);
  const AxisTaps rows = make_axis_taps(image.height, place.height);
  const AxisTaps cols = make_axis_taps(image.width, place.width);
  const ChannelWriter writer(output, out);

  if (place.height != output.height || place.width != output.width) {
    for (int64_t at = 0; at < output.height * output.width; ++at) writer.write(at, output.pad_value);
  }
  RowCache cache(mapper, image.width);
  const bool shrinking_rows = place.height < image.height;
  std::vector<double> column_sums(static_cast<size_t>(image.width));
  for (int64_t r = 0; r < place.height; ++r) {
    // Vertical pass first: each source row is read once per output row it feeds (<= 2 when
    // shrinking), with contiguous, vectorisable accumulation.
    std::fill(column_sums.begin(), column_sums.end(), 0.0);
    const double* row_weights = rows.weights.data() + rows.offset[r];
    for (int32_t k = 0; k < rows.count[r]; ++k) {
      const double weight = row_weights[k];
      if (weight == 0.0) continue;
      const int64_t y = rows.first[r] + k;
      if (shrinking_rows) {
        mapper.accumulate_row(y, weight, column_sums.data());  // each row feeds <= 2 outputs
      } else {
        const float* values = cache.get(y);  // growing: neighbouring outputs share rows
        for (int64_t x = 0; x < image.width; ++x) column_sums[x] += weight * static_cast<double>(values[x]);
      }
    }
    const int64_t out_row = (place.top + r) * output.width + place.left;
    for (int64_t c = 0; c < place.width; ++c) {
      const double* col_weights = cols.weights.data() + cols.offset[c];
      const double* sums = column_sums.data() + cols.first[c];
      double value = 0.0;
      for (int32_t k = 0; k < cols.count[c]; ++k) value += col_weights[k] * sums[k];
      writer.write(out_row + c, value);
    }
  }
}

}  // namespace

void preprocess(const ImageView& image, const PixelSpec& spec, const OutputSpec& output, void* out) {
  validate(image, "pixels");
  validate(spec);
  validate(output);
  if (out == nullptr) throw_invalid("out", "null buffer");
  preprocess_validated(image, spec, output, out, "pixels");
}

void preprocess_batch(const std::vector<ImageView>& images, const std::vector<PixelSpec>& specs,
                      const OutputSpec& output, void* out, ThreadPool& pool) {
  if (images.size() != specs.size()) {
    throw_invalid("specs", "need one per image (" + std::to_string(images.size()) + " images, " +
                               std::to_string(specs.size()) + " specs)");
  }
  validate(output);
  if (out == nullptr && !images.empty()) throw_invalid("out", "null buffer");
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string name = "images[" + std::to_string(i) + "]";
    validate(images[i], name);
    try {
      validate(specs[i]);
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument("specs[" + std::to_string(i) + "]: " + error.what());
    }
  }
  unsigned char* base = static_cast<unsigned char*>(out);
  const size_t stride = output.bytes();
  pool.parallel_for(images.size(), [&](size_t i) {
    preprocess_validated(images[i], specs[i], output, base + i * stride, "images[" + std::to_string(i) + "]");
  });
}

}  // namespace radz
