#include "radz/vector_index.h"

#include <faiss/AutoTune.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPQFastScan.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/utils/distances.h>
#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "radz/errors.h"

namespace radz {

namespace {

/// A FAISS error without its "Error in <function> at <file>:<line>: " prefix.
std::string reason(const std::exception& e) {
  std::string msg = e.what();
  if (msg.rfind("Error in ", 0) == 0) {
    const size_t at = msg.find(" at ");
    const size_t colon = at == std::string::npos ? std::string::npos : msg.find(": ", at);
    if (colon != std::string::npos) msg = msg.substr(colon + 2);
  }
  return msg;
}

/// Counts the bytes write_index would produce, without keeping them.
struct CountingWriter : faiss::IOWriter {
  size_t bytes = 0;
  size_t operator()(const void* /*ptr*/, size_t size, size_t nitems) override {
    bytes += size * nitems;
    return nitems;
  }
};

/// Runs FAISS on the calling thread only while alive (OpenMP's thread count is per thread, so
/// other threads are unaffected); restores the previous count.
class SingleThreaded {
 public:
  explicit SingleThreaded(bool active) : active_(active), previous_(active ? omp_get_max_threads() : 0) {
    if (active_) omp_set_num_threads(1);
  }
  ~SingleThreaded() {
    if (active_) omp_set_num_threads(previous_);
  }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  bool active_;
  int previous_;
};

}  // namespace

/// Readers pass through the gate before taking the shared lock; a writer holds the gate while it
/// waits for the exclusive one, so new searches queue behind it. (glibc's rwlock, under
/// std::shared_mutex, prefers readers: a steady stream of searches would starve add() forever.)
class VectorIndex::ReadLock {
 public:
  explicit ReadLock(const VectorIndex& index) {
    std::lock_guard<std::mutex> gate(index.gate_);
    lock_ = std::shared_lock<std::shared_mutex>(index.mutex_);
  }

 private:
  std::shared_lock<std::shared_mutex> lock_;
};

class VectorIndex::WriteLock {
 public:
  explicit WriteLock(VectorIndex& index) : gate_(index.gate_), lock_(index.mutex_) {}

 private:
  std::lock_guard<std::mutex> gate_;
  std::unique_lock<std::shared_mutex> lock_;
};

namespace {

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

/// The search parameters in effect, outermost wrapper last ("nprobe=..,k_factor_rf=..").
void collect_parameters(const faiss::Index* index, std::vector<std::string>& out) {
  if (const auto* refine = dynamic_cast<const faiss::IndexRefine*>(index)) {
    collect_parameters(refine->base_index, out);
    out.push_back("k_factor_rf=" + number(refine->k_factor));
  } else if (const auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
    collect_parameters(pre->index, out);
  } else if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    out.push_back("nprobe=" + std::to_string(ivf->nprobe));
  } else if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index)) {
    out.push_back("efSearch=" + std::to_string(hnsw->hnsw.efSearch));
  }
}

std::string parameters_of(const faiss::Index* index) {
  std::vector<std::string> parts;
  collect_parameters(index, parts);
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : ",") + p;
  return s;
}

/// 39 training vectors per k-means centroid: below that FAISS warns that clustering is unstable.
constexpr size_t kTrainPerCentroid = 39;

size_t train_hint(const faiss::Index* index) {
  if (index->is_trained) return 0;
  if (const auto* refine = dynamic_cast<const faiss::IndexRefine*>(index)) {
    return std::max(train_hint(refine->base_index), train_hint(refine->refine_index));
  }
  if (const auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(index)) return train_hint(pre->index);
  size_t hint = 1;
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) hint = kTrainPerCentroid * ivf->nlist;
  const faiss::ProductQuantizer* pq = nullptr;
  if (const auto* i = dynamic_cast<const faiss::IndexIVFPQ*>(index)) pq = &i->pq;
  if (const auto* i = dynamic_cast<const faiss::IndexIVFPQFastScan*>(index)) pq = &i->pq;
  if (const auto* i = dynamic_cast<const faiss::IndexPQ*>(index)) pq = &i->pq;
  if (const auto* i = dynamic_cast<const faiss::IndexPQFastScan*>(index)) pq = &i->pq;
  if (pq != nullptr) hint = std::max(hint, kTrainPerCentroid * (size_t{1} << pq->nbits));
  return hint;
}

/// The factory string of a loaded index, for the kinds default_factory chooses; else "".
std::string describe(const faiss::Index* index) {
  if (const auto* refine = dynamic_cast<const faiss::IndexRefine*>(index)) {
    const std::string base = describe(refine->base_index);
    if (base.empty()) return "";
    if (dynamic_cast<const faiss::IndexRefineFlat*>(index) != nullptr) return base + ",RFlat";
    const auto* sq = dynamic_cast<const faiss::IndexScalarQuantizer*>(refine->refine_index);
    if (sq != nullptr && sq->sq.qtype == faiss::ScalarQuantizer::QT_fp16) return base + ",Refine(SQfp16)";
    if (dynamic_cast<const faiss::IndexFlat*>(refine->refine_index) != nullptr) return base + ",Refine(Flat)";
    return "";
  }
  if (dynamic_cast<const faiss::IndexFlat*>(index) != nullptr) return "Flat";
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSWFlat*>(index)) {
    return "HNSW" + std::to_string(hnsw->hnsw.nb_neighbors(1)) + ",Flat";
  }
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    if (dynamic_cast<const faiss::IndexFlat*>(ivf->quantizer) == nullptr) return "";
    const std::string lists = "IVF" + std::to_string(ivf->nlist);
    if (dynamic_cast<const faiss::IndexIVFFlat*>(index) != nullptr) return lists + ",Flat";
    if (const auto* i = dynamic_cast<const faiss::IndexIVFPQFastScan*>(index)) {
      return lists + ",PQ" + std::to_string(i->pq.M) + "x" + std::to_string(i->pq.nbits) + "fs";
    }
    if (const auto* i = dynamic_cast<const faiss::IndexIVFPQ*>(index)) {
      return lists + ",PQ" + std::to_string(i->pq.M) + "x" + std::to_string(i->pq.nbits);
    }
  }
  return "";
}

}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw_invalid("n", "must be >= 1, got " + std::to_string(n));
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

namespace {

// FAISS scans an exact (Flat) index with its own SIMD loop below 20 queries and with BLAS from
// there. Debian's FAISS is a generic build (no AVX2 kernels): its loop ran a single query over
// 20,000 x 128 vectors in ~2 ms where BLAS (OpenBLAS) takes ~0.3 ms, as numpy does
// (benchmarks/exact_search_bench.py). Set once, before any index of this process can search;
// AnchorIndex does not read it (it calls fvec_inner_products_ny directly).
void use_blas_for_every_query() {
  static std::once_flag once;
  std::call_once(once, [] { faiss::distance_compute_blas_threshold = 1; });
}

}  // namespace

VectorIndex::VectorIndex(int dim, const std::string& factory) : dim_(dim), factory_(factory) {
  use_blas_for_every_query();
  if (dim <= 0) throw_invalid("dim", "must be > 0, got " + std::to_string(dim));
  try {
    index_.reset(faiss::index_factory(dim, factory.c_str(), faiss::METRIC_INNER_PRODUCT));
  } catch (const std::exception& e) {
    throw_invalid("factory", "FAISS cannot build '" + factory + "': " + reason(e));
  }
}

VectorIndex::VectorIndex(int dim, std::string factory, std::unique_ptr<faiss::Index> index)
    : dim_(dim), factory_(std::move(factory)), index_(std::move(index)) {
  use_blas_for_every_query();
}

VectorIndex::~VectorIndex() = default;

std::string VectorIndex::default_factory(size_t n, int dim) {
  if (dim <= 0) throw_invalid("dim", "must be > 0, got " + std::to_string(dim));
  if (n < 100000) return "Flat";
  // Chosen by benchmarks/retrieval_scale_bench.py (docs/RETRIEVAL.md, "Scale"). IVF with flat
  // lists keeps the full vectors, so what it returns is scored by the exact cosine (no separate
  // refinement step needed). At 1M x 128 screening embeddings, IVF4096,Flat with nprobe=16
  // measured recall@10 0.991, p50 1.0 ms, p99 2.2 ms on one thread, 522 bytes per vector and a
  // 105 s build; HNSW32,Flat (efSearch=256) 0.975, 0.9 ms, 1.9 ms, 784 bytes, 324 s.
  // nlist: the power of two nearest 4 * sqrt(n) (1024 at 100k, 2048 at 300k, 4096 at 1M); its
  // training needs 39 * nlist <= n vectors for every n >= 100,000.
  const double lists = 4.0 * std::sqrt(static_cast<double>(n));
  const int log2_lists = static_cast<int>(std::lround(std::log2(lists)));
  return "IVF" + std::to_string(size_t{1} << log2_lists) + ",Flat";
}

std::string VectorIndex::default_search_parameters(const std::string& factory, size_t n) {
  // Measured (docs/RETRIEVAL.md): recall@10 with nprobe=16 was 0.991 at 100k (IVF1024) and at 1M
  // (IVF4096); HNSW32 with efSearch=128 0.998 at 300k but 0.938 at 1M, 0.975 with 256.
  if (factory.rfind("HNSW", 0) == 0) return n < 500000 ? "efSearch=128" : "efSearch=256";
  if (factory.rfind("IVF", 0) == 0) {
    const bool refined = factory.find(",RFlat") != std::string::npos || factory.find(",Refine(") != std::string::npos;
    return refined ? "nprobe=32,k_factor_rf=4" : "nprobe=16";
  }
  return "";
}

std::unique_ptr<VectorIndex> VectorIndex::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw_invalid("path", "no index file at '" + path + "'");
  }
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::read_index(path.c_str()));
  } catch (const std::exception& e) {
    throw_invalid("path", "'" + path + "' is not a readable FAISS index: " + reason(e));
  }
  if (index->metric_type != faiss::METRIC_INNER_PRODUCT) {
    throw_invalid("path", "'" + path + "' is a FAISS index with metric " + std::to_string(index->metric_type) +
                              ", not inner product (" + std::to_string(faiss::METRIC_INNER_PRODUCT) + ")");
  }
  if (index->d <= 0) throw_invalid("path", "'" + path + "' has dim " + std::to_string(index->d));
  const int dim = static_cast<int>(index->d);
  std::string factory = describe(index.get());
  return std::unique_ptr<VectorIndex>(new VectorIndex(dim, std::move(factory), std::move(index)));
}

void VectorIndex::check_finite(const float* x, size_t n, const char* argument) const {
  if (n > 0 && x == nullptr) throw_invalid(argument, "is null");
  const size_t d = static_cast<size_t>(dim_);
  for (size_t i = 0; i < n * d; ++i) {
    if (!std::isfinite(x[i])) {
      throw_invalid(argument, "element [" + std::to_string(i / d) + ", " + std::to_string(i % d) + "] is not finite");
    }
  }
}

bool VectorIndex::is_trained() const {
  ReadLock lock(*this);
  return index_->is_trained;
}

size_t VectorIndex::train_size_hint() const {
  ReadLock lock(*this);
  return train_hint(index_.get());
}

void VectorIndex::train(const float* x, size_t n) {
  check_finite(x, n, "x");
  WriteLock lock(*this);
  if (index_->is_trained) throw std::runtime_error("the index is already trained ('" + factory_ + "')");
  const size_t needed = train_hint(index_.get());
  if (n < needed) {
    throw_invalid("x", "'" + factory_ + "' needs at least " + std::to_string(needed) + " training vectors, got " +
                           std::to_string(n));
  }
  try {
    index_->train(static_cast<faiss::Index::idx_t>(n), x);
  } catch (const std::exception& e) {
    throw std::runtime_error("training '" + factory_ + "' failed: " + reason(e));
  }
}

void VectorIndex::add(const float* x, size_t n) {
  check_finite(x, n, "x");
  WriteLock lock(*this);
  if (!index_->is_trained) {
    throw std::runtime_error("the index is not trained: call train() with at least " +
                             std::to_string(train_hint(index_.get())) + " vectors before add()");
  }
  if (n == 0) return;
  try {
    index_->add(static_cast<faiss::Index::idx_t>(n), x);
  } catch (const std::exception& e) {
    throw std::runtime_error("adding to '" + factory_ + "' failed: " + reason(e));
  }
}

Neighbours VectorIndex::search(const float* q, size_t n, size_t k) const {
  if (k == 0) throw_invalid("k", "must be >= 1");
  check_finite(q, n, "q");
  ReadLock lock(*this);
  const size_t total = static_cast<size_t>(index_->ntotal);
  if (total == 0) throw std::runtime_error("the index is empty: add() vectors before searching");
  Neighbours out;
  out.n = n;
  out.k = k;
  out.ids.assign(n * k, -1);
  out.similarities.assign(n * k, -std::numeric_limits<float>::infinity());
  if (n == 0) return out;
  // FAISS is asked for at most `total` neighbours (its buffers are n * k); rows are padded here.
  const size_t kk = std::min(k, total);
  std::vector<faiss::Index::idx_t> ids(n * kk);
  std::vector<float> sims(n * kk);
  {
    SingleThreaded single(n == 1);
    try {
      index_->search(static_cast<faiss::Index::idx_t>(n), q, static_cast<faiss::Index::idx_t>(kk), sims.data(),
                     ids.data());
    } catch (const std::exception& e) {
      throw std::runtime_error("searching '" + factory_ + "' failed: " + reason(e));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < kk; ++j) {
      const faiss::Index::idx_t id = ids[i * kk + j];
      if (id < 0) continue;  // FAISS pads with -1 when it found fewer (e.g. small IVF lists probed)
      out.ids[i * k + j] = static_cast<int64_t>(id);
      out.similarities[i * k + j] = sims[i * kk + j];
    }
  }
  return out;
}

void VectorIndex::set_search_parameters(const std::string& params) {
  WriteLock lock(*this);
  const std::string previous = parameters_of(index_.get());
  faiss::ParameterSpace space;
  try {
    space.set_index_parameters(index_.get(), params.c_str());
  } catch (const std::exception& e) {
    // set_index_parameters applies the names in order: undo the ones it set before failing.
    try {
      space.set_index_parameters(index_.get(), previous.c_str());
    } catch (const std::exception&) {
    }
    const std::string allowed = previous.empty() ? "none" : previous;
    throw_invalid("params", "cannot set '" + params + "' on '" + factory_ + "': " + reason(e) +
                                " (this index's parameters: " + allowed + ")");
  }
}

std::string VectorIndex::search_parameters() const {
  ReadLock lock(*this);
  return parameters_of(index_.get());
}

void VectorIndex::save(const std::string& path) const {
  // A temporary name of its own (two processes saving to one path never share a file), synced
  // before the rename so that a crash leaves the old file or the whole new one.
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  ReadLock lock(*this);
  try {
    faiss::write_index(index_.get(), tmp.c_str());
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    throw std::runtime_error("path: cannot save the index to '" + path + "': " + reason(e));
  }
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  const bool synced = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!synced) {
    std::remove(tmp.c_str());
    throw std::runtime_error("path: cannot save the index to '" + path + "': fsync of '" + tmp + "' failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw std::runtime_error("path: cannot save the index to '" + path + "': rename from '" + tmp +
                             "' failed: " + ec.message());
  }
}

size_t VectorIndex::size() const {
  ReadLock lock(*this);
  return static_cast<size_t>(index_->ntotal);
}

size_t VectorIndex::memory_bytes() const {
  ReadLock lock(*this);
  CountingWriter writer;
  faiss::write_index(index_.get(), &writer);
  return writer.bytes;
}

}  // namespace radz
