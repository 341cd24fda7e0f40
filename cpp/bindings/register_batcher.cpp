// Python types for the DynamicBatcher: argument checks and conversions only. Every call that can
// block (submit under backpressure, next_batch) releases the GIL while it waits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "radz/batcher.h"
#include "radz/errors.h"

namespace py = pybind11;

namespace {

using Shape = std::vector<py::ssize_t>;

// Long waits are cut into slices so Ctrl-C (KeyboardInterrupt) is seen between them.
constexpr std::chrono::milliseconds kSignalCheckInterval{100};

/// The C++ batcher plus the input shape that Python callers speak in (the core only knows sizes).
struct PyBatcher {
  Shape input_shape;
  std::unique_ptr<radz::DynamicBatcher> batcher;
};

/// A batch plus the shape to view its inputs as [B, *input_shape].
struct PyBatch {
  radz::Batch batch;
  Shape input_shape;
};

std::string shape_text(const py::ssize_t* dims, py::ssize_t ndim) {
  std::string text = "(";
  for (py::ssize_t i = 0; i < ndim; ++i) {
    text += std::to_string(dims[i]);
    if (ndim == 1 || i + 1 < ndim) text += ndim == 1 ? "," : ", ";
  }
  return text + ")";
}

std::string shape_text(const Shape& shape) { return shape_text(shape.data(), static_cast<py::ssize_t>(shape.size())); }

std::chrono::microseconds microseconds_from_ms(double ms, const char* name) {
  if (!std::isfinite(ms) || ms < 0)
    radz::throw_invalid(name, "must be a finite number >= 0, got " + std::to_string(ms));
  return std::chrono::microseconds(static_cast<int64_t>(std::llround(ms * 1000.0)));
}

radz::Priority parse_priority(const std::string& priority) {
  if (priority == "stat") return radz::Priority::kStat;
  if (priority == "routine") return radz::Priority::kRoutine;
  radz::throw_invalid("priority", "must be 'stat' or 'routine', got '" + priority + "'");
}

radz::Backpressure parse_backpressure(const std::string& backpressure) {
  if (backpressure == "block") return radz::Backpressure::kBlock;
  if (backpressure == "reject") return radz::Backpressure::kReject;
  radz::throw_invalid("backpressure", "must be 'block' or 'reject', got '" + backpressure + "'");
}

/// A C-contiguous float32 array of exactly `shape`; ValueError naming `name` otherwise. No dtype
/// conversion: a silent float64 -> float32 cast would hide a caller's mistake.
py::array_t<float, py::array::c_style> checked_float32(const py::array& array, const Shape& shape, const char* name) {
  if (!py::isinstance<py::array_t<float>>(array)) {
    radz::throw_invalid(name, "dtype must be float32, got " + std::string(py::str(array.dtype())));
  }
  const Shape got(array.shape(), array.shape() + array.ndim());
  if (got != shape) {
    radz::throw_invalid(name, "shape must be " + shape_text(shape) + ", got " + shape_text(got));
  }
  return py::array_t<float, py::array::c_style>::ensure(array);  // copies only if strided
}

PyBatcher make_batcher(const Shape& input_shape, size_t output_size, size_t max_batch_size, double max_delay_ms,
                       size_t max_queue, const std::string& backpressure, double block_timeout_ms,
                       bool adaptive_delay) {
  if (input_shape.empty()) radz::throw_invalid("input_shape", "must have at least one dimension");
  size_t input_size = 1;
  for (const py::ssize_t dim : input_shape) {
    if (dim <= 0) radz::throw_invalid("input_shape", "every dimension must be > 0, got " + shape_text(input_shape));
    input_size *= static_cast<size_t>(dim);
  }
  radz::BatcherOptions options;
  options.input_size = input_size;
  options.output_size = output_size;
  options.max_batch_size = max_batch_size;
  options.max_delay = microseconds_from_ms(max_delay_ms, "max_delay_ms");
  options.max_queue = max_queue;
  options.adaptive_delay = adaptive_delay;
  options.backpressure = parse_backpressure(backpressure);
  options.block_timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(microseconds_from_ms(block_timeout_ms, "block_timeout_ms"));
  return PyBatcher{input_shape, std::make_unique<radz::DynamicBatcher>(options)};
}

void submit(PyBatcher& self, uint64_t id, const py::array& x, const std::string& priority,
            std::optional<double> deadline_ms) {
  const auto input = checked_float32(x, self.input_shape, "x");
  const radz::Priority parsed = parse_priority(priority);
  std::optional<radz::DynamicBatcher::Clock::time_point> deadline;
  if (deadline_ms) {
    if (std::isnan(*deadline_ms)) radz::throw_invalid("deadline_ms", "must be a number or None, got nan");
    deadline = radz::DynamicBatcher::Clock::now() + microseconds_from_ms(std::max(*deadline_ms, 0.0), "deadline_ms");
  }
  const float* data = input.data();
  py::gil_scoped_release release;  // backpressure may block; `input` stays alive meanwhile
  self.batcher->submit(id, data, parsed, deadline);
}

std::optional<PyBatch> next_batch(PyBatcher& self, double timeout_ms) {
  auto remaining = microseconds_from_ms(timeout_ms, "timeout_ms");
  for (;;) {
    const auto slice = std::min<std::chrono::microseconds>(remaining, kSignalCheckInterval);
    std::optional<radz::Batch> batch;
    {
      py::gil_scoped_release release;
      batch = self.batcher->next_batch(slice);
    }
    if (batch) return PyBatch{std::move(*batch), self.input_shape};
    remaining -= slice;
    if (remaining.count() <= 0 || self.batcher->is_shut_down()) return std::nullopt;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

py::dict metrics_dict(const radz::BatcherMetrics& m) {
  const auto ms = [](std::chrono::microseconds us) { return static_cast<double>(us.count()) / 1000.0; };
  py::dict d;
  d["queue_depth"] = m.queue_depth();
  d["queue_depth_stat"] = m.queued_stat;
  d["queue_depth_routine"] = m.queued_routine;
  d["in_flight_batches"] = m.in_flight_batches;
  d["in_flight_requests"] = m.in_flight_requests;
  d["submitted"] = m.submitted;
  d["completed"] = m.completed;
  d["failed"] = m.failed;
  d["expired"] = m.expired;
  d["cancelled"] = m.cancelled;
  d["dropped"] = m.dropped;
  d["rejected"] = m.rejected;
  d["batches"] = m.batches;
  d["early_dispatches"] = m.early_dispatches;
  d["batch_size_histogram"] = m.batch_size_histogram;
  d["latency_p50_ms"] = ms(m.latency_p50);
  d["latency_p90_ms"] = ms(m.latency_p90);
  d["latency_p99_ms"] = ms(m.latency_p99);
  d["latency_samples"] = m.latency_samples;
  return d;
}

}  // namespace

/// radz::QueueFull -> radz_engine.errors.QueueFull (a RadzError), the one Python definition.
void register_queue_full(py::module_& m) {
  // Fetched once; the module attribute keeps the class alive for the translator.
  static PyObject* queue_full = nullptr;
  const py::object cls = py::module_::import("radz_engine.errors").attr("QueueFull");
  m.attr("QueueFull") = cls;
  queue_full = cls.ptr();
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const radz::QueueFull& e) {
      PyErr_SetString(queue_full, e.what());
    }
  });
}

void register_batcher(py::module_& m) {
  register_queue_full(m);

  py::class_<PyBatch>(m, "Batch",
                      "What one next_batch() returns: requests to run (.ids, .inputs; then complete() or fail()) "
                      "and ids that ended without running (.expired, .cancelled, .dropped).")
      .def_property_readonly(
          "id", [](const PyBatch& b) { return b.batch.id; },
          "Batch id; 0 when there is nothing to run (only ended ids).")
      .def_property_readonly(
          "ids", [](const PyBatch& b) { return b.batch.request_ids; },
          "Request ids to run, in row order (stat requests first).")
      .def_property_readonly(
          "expired", [](const PyBatch& b) { return b.batch.expired; },
          "Ids whose deadline passed before a runner took them; they never run.")
      .def_property_readonly(
          "cancelled", [](const PyBatch& b) { return b.batch.cancelled; }, "Ids removed by cancel(); they never run.")
      .def_property_readonly(
          "dropped", [](const PyBatch& b) { return b.batch.dropped; },
          "Ids removed by shutdown(drain=False); they never run.")
      .def_property_readonly(
          "inputs",
          [](py::object self) {
            auto& b = self.cast<PyBatch&>();
            Shape shape{static_cast<py::ssize_t>(b.batch.size())};
            shape.insert(shape.end(), b.input_shape.begin(), b.input_shape.end());
            // A view that keeps this Batch (the owner of the floats) alive.
            return py::array_t<float>(shape, b.batch.inputs.data(), self);
          },
          "[len(batch), *input_shape] float32, a zero-copy view of the batch's own buffer.")
      .def(
          "__len__", [](const PyBatch& b) { return b.batch.size(); }, "Number of requests to run.")
      .def("__repr__", [](const PyBatch& b) {
        return "<Batch id=" + std::to_string(b.batch.id) + " size=" + std::to_string(b.batch.size()) +
               " expired=" + std::to_string(b.batch.expired.size()) +
               " cancelled=" + std::to_string(b.batch.cancelled.size()) +
               " dropped=" + std::to_string(b.batch.dropped.size()) + ">";
      });

  py::class_<PyBatcher>(m, "DynamicBatcher",
                        "Groups single requests into batches for runner threads (C++, thread-safe). The caller owns "
                        "each request's future, keyed by the id it passes to submit().")
      .def(py::init(&make_batcher), py::arg("input_shape"), py::arg("output_size"), py::arg("max_batch_size") = 32,
           py::arg("max_delay_ms") = 2.0, py::arg("max_queue") = 1024, py::arg("backpressure") = "block",
           py::arg("block_timeout_ms") = 1000.0, py::arg("adaptive_delay") = true)
      .def("submit", &submit, py::arg("id"), py::arg("x"), py::arg("priority") = "routine",
           py::arg("deadline_ms") = py::none(),
           "Queue one float32 input of input_shape as request `id` (register its future first: a runner may take "
           "it before this returns). deadline_ms: ms from now after which it is reported in a batch's .expired "
           "instead of run. Raises ValueError for an id still queued, in flight or not yet reported, "
           "radz_engine.errors.QueueFull under backpressure, RuntimeError after shutdown.")
      .def(
          "cancel", [](PyBatcher& self, uint64_t id) { return self.batcher->cancel(id); }, py::arg("id"),
          py::call_guard<py::gil_scoped_release>(),
          "Remove request `id` if no runner took it yet: True, and a later batch reports it in .cancelled. "
          "False when it runs, has ended or is unknown.")
      .def("next_batch", &next_batch, py::arg("timeout_ms"),
           "Wait up to timeout_ms (GIL released) for a batch: requests to run and/or ended ids (a batch of "
           "len 0 carries only .expired/.cancelled/.dropped and needs no complete()). None on timeout, or when "
           "shut down with nothing left to run or report.")
      .def(
          "complete", [](PyBatcher& self, const PyBatch& batch) { self.batcher->complete(batch.batch.id); },
          py::arg("batch"), py::call_guard<py::gil_scoped_release>(),
          "The batch ran (its outputs stay with the caller): counts its requests as completed and records their "
          "latency. ValueError when the batch is not in flight.")
      .def(
          "fail",
          [](PyBatcher& self, const PyBatch& batch, const std::string& message) {
            self.batcher->fail(batch.batch.id, message);
          },
          py::arg("batch"), py::arg("message"), py::call_guard<py::gil_scoped_release>(),
          "The batch failed: counts its requests as failed. ValueError when the batch is not in flight.")
      .def(
          "shutdown", [](PyBatcher& self, bool drain) { self.batcher->shutdown(drain); }, py::arg("drain") = true,
          py::call_guard<py::gil_scoped_release>(),
          "Stop accepting requests; drain=True lets runners finish the queue, False removes queued requests "
          "(reported in a batch's .dropped).")
      .def(
          "metrics", [](const PyBatcher& self) { return metrics_dict(self.batcher->metrics()); },
          "Counters, queue depth, batch-size histogram and latency percentiles (ms) as a dict.")
      .def_property_readonly("input_shape", [](const PyBatcher& self) { return py::tuple(py::cast(self.input_shape)); })
      .def_property_readonly("output_size", [](const PyBatcher& self) { return self.batcher->options().output_size; })
      .def_property_readonly("max_batch_size",
                             [](const PyBatcher& self) { return self.batcher->options().max_batch_size; })
      .def_property_readonly("is_shut_down", [](const PyBatcher& self) { return self.batcher->is_shut_down(); });
}
