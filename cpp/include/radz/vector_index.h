#pragma once
/// Similar-case retrieval: a FAISS index over L2-normalised image embeddings, searched by inner
/// product (= cosine on normalised vectors).
///
/// The index is built from a faiss::index_factory string ("Flat" = exact; "IVF4096,Flat",
/// "HNSW32,Flat", "IVF4096,PQ32x4fs,RFlat", ... = approximate). Vectors get ids 0, 1, 2, ... in the order they
/// are added; the caller keeps what an id stands for (study, image, findings). Vectors are not
/// renormalised here: the caller passes unit vectors, as screening stores them.
///
/// Thread-safety: any number of threads may search() at once; train(), add() and
/// set_search_parameters() take the index exclusively (searches wait for them, and they for
/// running searches; a waiting writer goes before searches that arrive after it). FAISS parallelises batch searches and
/// adds with OpenMP; a single query (n == 1) runs on the calling thread only, so concurrent single-query callers do not
/// oversubscribe the cores.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace faiss {
struct Index;
}

namespace radz {

/// search()'s result; matrices are row-major [n, k].
struct Neighbours {
  /// Number of queries.
  size_t n = 0;
  /// Columns per row: the requested k (rows are padded when fewer neighbours were found).
  size_t k = 0;
  /// Ids of the neighbours, most similar first; -1 pads a row with fewer than k neighbours.
  std::vector<int64_t> ids;
  /// Their inner products with the query (cosines for unit vectors); -inf where the id is -1.
  std::vector<float> similarities;
};

/// Sets how many OpenMP threads FAISS uses for batch operations started from the calling
/// thread (omp_set_num_threads: OpenMP keeps this per thread). n >= 1, else
/// std::invalid_argument("n: ...").
void set_num_threads(int n);

/// The OpenMP threads FAISS would use from the calling thread (omp_get_max_threads).
int num_threads();

/// A FAISS inner-product index over embeddings of size dim.
class VectorIndex {
 public:
  /// An empty index for vectors of size `dim` (> 0) built by faiss::index_factory(dim, factory,
  /// METRIC_INNER_PRODUCT). Throws std::invalid_argument naming "dim" or "factory"
  /// ("factory: FAISS cannot build '...': <reason>").
  VectorIndex(int dim, const std::string& factory);
  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  /// The factory string for n vectors of size dim: "Flat" (exact) below 100,000 vectors, else
  /// "IVF<nlist>,Flat" with nlist the power of two nearest 4 * sqrt(n) (chosen by
  /// benchmarks/retrieval_scale_bench.py, see docs/RETRIEVAL.md). Throws naming "dim" if dim <= 0.
  static std::string default_factory(size_t n, int dim);

  /// The search parameters (a faiss::ParameterSpace string) for an index of n vectors built from
  /// `factory`: IVF "nprobe=16" ("nprobe=32,k_factor_rf=4" when refined); HNSW "efSearch=128"
  /// below 500,000 vectors, "efSearch=256" from there; "" otherwise (Flat).
  static std::string default_search_parameters(const std::string& factory, size_t n);

  /// Loads an index written by save(). Throws std::invalid_argument("path: ...") naming the path
  /// when it is missing, not a FAISS index, or not an inner-product index.
  static std::unique_ptr<VectorIndex> load(const std::string& path);

  /// Whether add() may be called (train() has run, or the index needs no training).
  bool is_trained() const;
  /// How many vectors train() needs (39 per IVF list / PQ centroid, FAISS's own minimum for a
  /// stable k-means); 0 when the index needs no training.
  size_t train_size_hint() const;
  /// Trains on x [n, dim] (row-major, finite). Throws std::invalid_argument("x: ...") when n is
  /// below train_size_hint() or x is not finite, std::runtime_error when already trained.
  void train(const float* x, size_t n);
  /// Appends x [n, dim] (finite); they get ids size() .. size() + n - 1. Requires is_trained().
  void add(const float* x, size_t n);
  /// The k (>= 1) most similar vectors to each of the n queries q [n, dim] (finite). Throws
  /// std::invalid_argument naming "k" or "q", std::runtime_error when the index is empty.
  Neighbours search(const float* q, size_t n, size_t k) const;

  /// Sets search-time parameters, a faiss::ParameterSpace string such as "nprobe=32,k_factor_rf=4"
  /// or "efSearch=128" ("" sets nothing). A name the index does not have throws
  /// std::invalid_argument("params: ...") and changes nothing.
  void set_search_parameters(const std::string& params);
  /// The search parameters in effect, in the form default_search_parameters uses
  /// ("nprobe=..", "k_factor_rf=..", "efSearch=.."; "" for Flat). Survives save()/load().
  std::string search_parameters() const;

  /// Writes the index to path (via path + ".tmp", then renamed over path, so a reader never sees
  /// half a file). Throws std::runtime_error("path: ...") naming the path on failure.
  void save(const std::string& path) const;

  /// Number of vectors added.
  size_t size() const;
  /// Vector size.
  int dim() const { return dim_; }
  /// The factory string the index was built from. After load() it is rebuilt from the index's
  /// structure (Flat, HNSW<M>,Flat, IVF<n>,Flat, IVF<n>,PQ<m>x<b>[fs], each optionally with
  /// ,RFlat or ,Refine(SQfp16)); "" for other kinds.
  const std::string& factory() const { return factory_; }
  /// Approximate memory of the index: the size of its serialised form, in bytes.
  size_t memory_bytes() const;

 private:
  VectorIndex(int dim, std::string factory, std::unique_ptr<faiss::Index> index);
  void check_finite(const float* x, size_t n, const char* argument) const;

  int dim_;
  std::string factory_;
  std::unique_ptr<faiss::Index> index_;
  class ReadLock;
  class WriteLock;
  /// Shared by search() and the const readers; exclusive for train/add/set_search_parameters.
  mutable std::shared_mutex mutex_;
  /// Makes writers win over a steady stream of readers (see ReadLock in vector_index.cpp).
  mutable std::mutex gate_;
};

}  // namespace radz
