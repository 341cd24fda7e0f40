#pragma once
/// Zero-shot class scoring of image embeddings against per-class text vectors, on FAISS.
///
/// The numpy reference python/radz_engine/scoring.py (`class_scores`) defines the modes; this
/// index must equal it:
///
/// - softmax: softmax over classes of cos(x, prompt_c) / tau;
/// - posneg:  per class, sigmoid((cos(x, positive_c) - cos(x, negative_c)) / tau), i.e. the
///            positive half of a two-way softmax "{class}" vs "no {class}";
/// - anchor:  softmax over the class anchors plus an optional background ("no finding")
///            anchor / tau; the background column is dropped, so the class scores need not
///            sum to 1.
///
/// Each class then has a Calibration (calibration.h) that maps its raw score to a probability
/// and a positive call. Classes are added, replaced and removed at run time: every change
/// builds a new immutable snapshot and swaps it in, so score() and top_k() (any number of
/// threads) always see one consistent set of classes, never a half-updated one.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "radz/calibration.h"

namespace radz {

/// How cosines become class scores (see the top of this file).
enum class ScoringMode { kSoftmax, kPosNeg, kAnchor };

/// "softmax" | "posneg" | "anchor"; throws std::invalid_argument("mode: ...") otherwise.
ScoringMode parse_scoring_mode(const std::string& mode);
/// The name parse_scoring_mode accepts.
std::string to_string(ScoringMode mode);

/// One class's text-side vectors, each [dim] or empty (= not given). The index's mode decides
/// which are required: softmax needs `prompt`, posneg `positive` and `negative`, anchor
/// `anchor`. Given vectors the mode does not use are validated and stored all the same.
struct ClassVectors {
  /// "This is a chest X-ray showing {class}" embedding (softmax mode).
  std::vector<float> prompt;
  /// "{class}" embedding (posneg mode).
  std::vector<float> positive;
  /// "no {class}" embedding (posneg mode).
  std::vector<float> negative;
  /// DKAM knowledge anchor (anchor mode).
  std::vector<float> anchor;
};

/// score()'s result; every matrix is row-major [n, num_classes].
struct Scores {
  /// Number of query embeddings.
  size_t n = 0;
  /// Number of classes (columns), as in the snapshot that was scored.
  size_t num_classes = 0;
  /// The classes of the columns, in order (the snapshot's; classes may change afterwards).
  std::vector<std::string> class_names;
  /// Mode scores in [0, 1], equal to scoring.py's class_scores.
  std::vector<float> raw;
  /// Calibrated probabilities: each column's Calibration applied to `raw`.
  std::vector<float> probabilities;
  /// 1 where probabilities >= the class's threshold, else 0.
  std::vector<uint8_t> positive;
};

/// top_k()'s result; matrices are row-major [n, k].
struct TopK {
  /// Number of query embeddings.
  size_t n = 0;
  /// Columns per row: min(requested k, number of classes).
  size_t k = 0;
  /// The classes that `indices` refer to (the snapshot's).
  std::vector<std::string> class_names;
  /// Class indices, by calibrated probability descending (ties: lower index first).
  std::vector<int64_t> indices;
  /// The calibrated probabilities of those classes.
  std::vector<float> probabilities;
};

/// The current classes of a deployment and their calibration; scores embeddings against them.
class AnchorIndex {
 public:
  /// An empty index for embeddings of size `dim` (> 0), scoring `mode`, temperature `tau`
  /// (finite, > 0; double so that scores equal scoring.py's float64 ones). Errors name the
  /// argument.
  AnchorIndex(int dim, ScoringMode mode, double tau);
  /// Frees the index; no score() or top_k() call may still be running.
  ~AnchorIndex();
  AnchorIndex(const AnchorIndex&) = delete;
  AnchorIndex& operator=(const AnchorIndex&) = delete;

  /// Appends a class (last column). `name` must be non-empty and new. Vectors are checked
  /// (size dim, finite, non-zero) and L2-normalised on entry, so scores are cosines whatever
  /// the caller's scaling. Errors name the argument or the vector ("anchor: ..."). New classes get
  /// the default calibration (none, threshold 0.5).
  void add_class(const std::string& name, const ClassVectors& vectors);

  /// Replaces an existing class's vectors in place; its column and calibration are kept.
  void replace_class(const std::string& name, const ClassVectors& vectors);

  /// Removes a class; the columns after it move one to the left.
  void remove_class(const std::string& name);

  /// Sets (a vector of size dim, normalised like class vectors) or clears (nullopt) the
  /// background anchor. Only the anchor mode uses it; other modes keep it unused.
  void set_background(const std::optional<std::vector<float>>& background);

  /// Whether a background anchor is set.
  bool has_background() const;

  /// Sets a class's calibration (validated; see calibration.h).
  void set_calibration(const std::string& name, const Calibration& calibration);

  /// A class's current calibration.
  Calibration calibration(const std::string& name) const;

  /// Scores n L2-normalised embeddings x [n, dim] (row-major; not renormalised here, as in
  /// scoring.py) against the current classes. Throws std::invalid_argument("x: ...") on
  /// non-finite input. Thread-safe, also while classes change.
  Scores score(const float* x, size_t n) const;

  /// The k most probable classes per embedding (k >= 1; clipped to the number of classes).
  TopK top_k(const float* x, size_t n, size_t k) const;

  /// Class names in column order.
  std::vector<std::string> class_names() const;
  /// Number of classes.
  size_t size() const;
  /// Embedding size.
  int dim() const { return dim_; }
  /// Scoring mode.
  ScoringMode mode() const { return mode_; }
  /// Softmax temperature applied to cosines.
  double tau() const { return tau_; }

 private:
  struct Snapshot;

  std::shared_ptr<const Snapshot> snapshot() const;
  /// Builds a new snapshot from (a copy of) the current one edited by `edit`, and publishes it.
  template <typename Edit>
  void update(Edit&& edit);
  std::vector<float> checked_vector(const std::vector<float>& v, const std::string& argument) const;
  struct ClassEntry;
  ClassEntry checked_class(const std::string& name, const ClassVectors& vectors) const;

  int dim_;
  ScoringMode mode_;
  double tau_;  // double, not float: 0.05f differs from the bundle's 0.05 by 1.5e-8 relative
  /// Serialises writers, so each edit starts from the latest snapshot and none is lost.
  std::mutex write_mutex_;
  /// Guards only the snapshot pointer (held for a copy of it, never while scoring).
  mutable std::mutex snapshot_mutex_;
  std::shared_ptr<const Snapshot> snapshot_;
};

}  // namespace radz
