#include "radz/anchor_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/utils/distances.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <utility>

#include "radz/errors.h"

namespace radz {

ScoringMode parse_scoring_mode(const std::string& mode) {
  if (mode == "softmax") return ScoringMode::kSoftmax;
  if (mode == "posneg") return ScoringMode::kPosNeg;
  if (mode == "anchor") return ScoringMode::kAnchor;
  throw_invalid("mode", "must be one of 'softmax', 'posneg', 'anchor', got '" + mode + "'");
}

std::string to_string(ScoringMode mode) {
  switch (mode) {
    case ScoringMode::kSoftmax:
      return "softmax";
    case ScoringMode::kPosNeg:
      return "posneg";
    case ScoringMode::kAnchor:
      break;
  }
  return "anchor";
}

struct AnchorIndex::ClassEntry {
  std::string name;
  ClassVectors vectors;  // normalised; empty members were not given
  Calibration calibration;
};

// Immutable once published: readers hold it through a shared_ptr, so a writer swapping in a
// new one never frees or edits what a reader is scoring with.
struct AnchorIndex::Snapshot {
  std::vector<ClassEntry> classes;
  std::optional<std::vector<float>> background;
  std::vector<std::string> names;
  // The vectors the mode scores against, as rows: softmax [prompts], posneg [positives,
  // negatives], anchor [anchors, background?]. For a few dozen classes an exact flat index
  // is no faster than a hand loop; FAISS earns its place with the similar-case index over
  // study embeddings (IVF/PQ factory strings, DESIGN.md section 3), which shares this path.
  faiss::IndexFlatIP index;

  explicit Snapshot(int dim) : index(dim) {}
};

AnchorIndex::AnchorIndex(int dim, ScoringMode mode, double tau) : dim_(dim), mode_(mode), tau_(tau) {
  if (dim <= 0) throw_invalid("dim", "must be > 0, got " + std::to_string(dim));
  if (!(std::isfinite(tau) && tau > 0.0)) {
    std::ostringstream s;
    s << "must be finite and > 0, got " << tau;
    throw_invalid("tau", s.str());
  }
  snapshot_ = std::make_shared<const Snapshot>(dim);
}

AnchorIndex::~AnchorIndex() = default;

std::shared_ptr<const AnchorIndex::Snapshot> AnchorIndex::snapshot() const {
  std::lock_guard<std::mutex> lock(snapshot_mutex_);
  return snapshot_;
}

template <typename Edit>
void AnchorIndex::update(Edit&& edit) {
  std::lock_guard<std::mutex> write_lock(write_mutex_);
  const std::shared_ptr<const Snapshot> old = snapshot();
  auto next = std::make_shared<Snapshot>(dim_);
  next->classes = old->classes;
  next->background = old->background;
  edit(*next);  // may throw: nothing is published then

  next->names.reserve(next->classes.size());
  for (const auto& c : next->classes) next->names.push_back(c.name);
  std::vector<const std::vector<float>*> rows;
  for (const auto& c : next->classes) {
    rows.push_back(mode_ == ScoringMode::kSoftmax  ? &c.vectors.prompt
                   : mode_ == ScoringMode::kPosNeg ? &c.vectors.positive
                                                   : &c.vectors.anchor);
  }
  if (mode_ == ScoringMode::kPosNeg) {
    for (const auto& c : next->classes) rows.push_back(&c.vectors.negative);
  }
  if (mode_ == ScoringMode::kAnchor && next->background) rows.push_back(&*next->background);
  std::vector<float> flat;
  flat.reserve(rows.size() * static_cast<size_t>(dim_));
  for (const auto* row : rows) flat.insert(flat.end(), row->begin(), row->end());
  if (!rows.empty()) next->index.add(static_cast<faiss::Index::idx_t>(rows.size()), flat.data());

  std::lock_guard<std::mutex> lock(snapshot_mutex_);
  snapshot_ = std::move(next);
}

std::vector<float> AnchorIndex::checked_vector(const std::vector<float>& v, const std::string& argument) const {
  if (v.size() != static_cast<size_t>(dim_)) {
    throw_invalid(argument, "must have size dim=" + std::to_string(dim_) + ", got " + std::to_string(v.size()));
  }
  double norm2 = 0.0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) throw_invalid(argument, "element " + std::to_string(i) + " is not finite");
    norm2 += static_cast<double>(v[i]) * v[i];
  }
  if (!(norm2 > 0.0)) throw_invalid(argument, "is all zeros (cannot be L2-normalised)");
  // Normalised on entry rather than merely checked: exported vectors are unit length up to
  // float rounding anyway, and a caller's unnormalised vector still gets a true cosine.
  const double inv = 1.0 / std::sqrt(norm2);
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(v[i] * inv);
  return out;
}

AnchorIndex::ClassEntry AnchorIndex::checked_class(const std::string& name, const ClassVectors& vectors) const {
  if (name.empty()) throw_invalid("name", "must not be empty");
  const bool need_prompt = mode_ == ScoringMode::kSoftmax;
  const bool need_posneg = mode_ == ScoringMode::kPosNeg;
  const bool need_anchor = mode_ == ScoringMode::kAnchor;
  const std::string mode = to_string(mode_);
  auto field = [&](const std::vector<float>& v, const char* field_name, bool required) {
    const std::string argument = field_name;  // the Python keyword, too
    if (v.empty()) {
      if (required) throw_invalid(argument, "is required in " + mode + " mode (class '" + name + "')");
      return std::vector<float>();
    }
    return checked_vector(v, argument);
  };
  ClassEntry entry;
  entry.name = name;
  entry.vectors.prompt = field(vectors.prompt, "prompt", need_prompt);
  entry.vectors.positive = field(vectors.positive, "positive", need_posneg);
  entry.vectors.negative = field(vectors.negative, "negative", need_posneg);
  entry.vectors.anchor = field(vectors.anchor, "anchor", need_anchor);
  return entry;
}

namespace {

template <typename Classes>
auto find_class(Classes& classes, const std::string& name) {
  return std::find_if(classes.begin(), classes.end(), [&](const auto& c) { return c.name == name; });
}

}  // namespace

void AnchorIndex::add_class(const std::string& name, const ClassVectors& vectors) {
  ClassEntry entry = checked_class(name, vectors);
  update([&](Snapshot& s) {
    if (find_class(s.classes, name) != s.classes.end()) {
      throw_invalid("name", "class '" + name + "' already exists (use replace_class)");
    }
    s.classes.push_back(std::move(entry));
  });
}

void AnchorIndex::replace_class(const std::string& name, const ClassVectors& vectors) {
  ClassEntry entry = checked_class(name, vectors);
  update([&](Snapshot& s) {
    auto it = find_class(s.classes, name);
    if (it == s.classes.end()) throw_invalid("name", "no class '" + name + "' (use add_class)");
    entry.calibration = it->calibration;
    *it = std::move(entry);
  });
}

void AnchorIndex::remove_class(const std::string& name) {
  update([&](Snapshot& s) {
    auto it = find_class(s.classes, name);
    if (it == s.classes.end()) throw_invalid("name", "no class '" + name + "'");
    s.classes.erase(it);
  });
}

void AnchorIndex::set_background(const std::optional<std::vector<float>>& background) {
  std::optional<std::vector<float>> checked;
  if (background) checked = checked_vector(*background, "background");
  update([&](Snapshot& s) { s.background = std::move(checked); });
}

bool AnchorIndex::has_background() const { return snapshot()->background.has_value(); }

void AnchorIndex::set_calibration(const std::string& name, const Calibration& calibration) {
  calibration.validate();
  update([&](Snapshot& s) {
    auto it = find_class(s.classes, name);
    if (it == s.classes.end()) throw_invalid("name", "no class '" + name + "'");
    it->calibration = calibration;
  });
}

Calibration AnchorIndex::calibration(const std::string& name) const {
  const auto snap = snapshot();
  auto it = find_class(snap->classes, name);
  if (it == snap->classes.end()) throw_invalid("name", "no class '" + name + "'");
  return it->calibration;
}

std::vector<std::string> AnchorIndex::class_names() const { return snapshot()->names; }

size_t AnchorIndex::size() const { return snapshot()->classes.size(); }

Scores AnchorIndex::score(const float* x, size_t n) const {
  if (n > 0 && x == nullptr) throw_invalid("x", "is null");
  const size_t d = static_cast<size_t>(dim_);
  for (size_t i = 0; i < n * d; ++i) {
    if (!std::isfinite(x[i])) {
      throw_invalid("x", "element [" + std::to_string(i / d) + ", " + std::to_string(i % d) + "] is not finite");
    }
  }
  const auto snap = snapshot();  // one consistent set of classes for the whole call
  Scores out;
  out.n = n;
  out.num_classes = snap->classes.size();
  out.class_names = snap->names;
  const size_t num_classes = out.num_classes;
  out.raw.assign(n * num_classes, 0.0f);
  out.probabilities.assign(n * num_classes, 0.0f);
  out.positive.assign(n * num_classes, 0);
  if (n == 0 || num_classes == 0) return out;

  // Every inner product, by FAISS's SIMD kernel over the index's rows. Not index.search():
  // that parallelises each call with OpenMP and heap-sorts all rows, which for a few dozen
  // rows costs more than the dot products, oversubscribes the cores when several runner
  // threads score at once, and hides its synchronisation from ThreadSanitizer.
  const size_t rows = static_cast<size_t>(snap->index.ntotal);
  const float* vectors = snap->index.get_xb();
  std::vector<float> ip_row(rows);
  std::vector<double> ip(n * rows);
  for (size_t i = 0; i < n; ++i) {
    faiss::fvec_inner_products_ny(ip_row.data(), x + i * d, vectors, d, rows);
    std::copy(ip_row.begin(), ip_row.end(), ip.begin() + static_cast<std::ptrdiff_t>(i * rows));
  }

  // Double precision from here on, like scoring.py (which works in float64).
  const double tau = tau_;
  std::vector<double> logits(rows);
  std::vector<double> class_score(num_classes);
  for (size_t i = 0; i < n; ++i) {
    const double* row = &ip[i * rows];
    float* raw = &out.raw[i * num_classes];
    if (mode_ == ScoringMode::kPosNeg) {
      for (size_t c = 0; c < num_classes; ++c) class_score[c] = stable_sigmoid((row[c] - row[num_classes + c]) / tau);
    } else {
      // Softmax over all rows (anchor mode: background included), then keep the classes.
      double max_logit = -INFINITY;
      for (size_t j = 0; j < rows; ++j) {
        logits[j] = row[j] / tau;
        max_logit = std::max(max_logit, logits[j]);
      }
      double sum = 0.0;
      for (size_t j = 0; j < rows; ++j) {
        logits[j] = std::exp(logits[j] - max_logit);
        sum += logits[j];
      }
      for (size_t c = 0; c < num_classes; ++c) class_score[c] = logits[c] / sum;
    }
    for (size_t c = 0; c < num_classes; ++c) {
      const Calibration& cal = snap->classes[c].calibration;
      raw[c] = static_cast<float>(class_score[c]);
      const double p = cal.apply(class_score[c]);  // from the double score, as Python would
      out.probabilities[i * num_classes + c] = static_cast<float>(p);
      out.positive[i * num_classes + c] = p >= cal.threshold ? 1 : 0;
    }
  }
  return out;
}

TopK AnchorIndex::top_k(const float* x, size_t n, size_t k) const {
  if (k == 0) throw_invalid("k", "must be >= 1");
  Scores scores = score(x, n);
  TopK out;
  out.n = n;
  out.k = std::min(k, scores.num_classes);
  out.class_names = std::move(scores.class_names);
  out.indices.resize(n * out.k);
  out.probabilities.resize(n * out.k);
  std::vector<int64_t> order(scores.num_classes);
  for (size_t i = 0; i < n; ++i) {
    const float* p = &scores.probabilities[i * scores.num_classes];
    std::iota(order.begin(), order.end(), int64_t{0});
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(out.k), order.end(),
                      [p](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    for (size_t j = 0; j < out.k; ++j) {
      out.indices[i * out.k + j] = order[j];
      out.probabilities[i * out.k + j] = p[order[j]];
    }
  }
  return out;
}

}  // namespace radz
