// The Python extension radz_engine._core: type conversion only, no logic.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_pixel_spec(py::module_& m);
void register_thread_pool(py::module_& m);
void register_preprocess(py::module_& m);
void register_batcher(py::module_& m);
void register_j2k_decode(py::module_& m);
#ifdef RADZ_HAVE_FAISS
void register_anchor_index(py::module_& m);
void register_vector_index(py::module_& m);
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "radz_engine C++ core: preprocessing, dynamic batching, anchor scoring and similar-case retrieval.";
  register_pixel_spec(m);
  register_thread_pool(m);
  register_preprocess(m);
  register_batcher(m);
  register_j2k_decode(m);
#ifdef RADZ_HAVE_FAISS
  register_anchor_index(m);
  register_vector_index(m);
  m.attr("HAVE_FAISS") = true;
#else
  m.attr("HAVE_FAISS") = false;
#endif
}
