// Python types for the DynamicBatcher: argument checks and conversions only. Every call that can
// block (submit under backpressure, next_batch, Ticket.result) releases the GIL while it waits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
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
  if (!std::isfinite(ms) || ms < 0) radz::throw_invalid(name, "must be a finite number >= 0, got " + std::to_string(ms));
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

void raise_timeout(const std::string& message) {
  PyErr_SetString(PyExc_TimeoutError, message.c_str());
  throw py::error_already_set();
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
  options.block_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      microseconds_from_ms(block_timeout_ms, "block_timeout_ms"));
  return PyBatcher{input_shape, std::make_unique<radz::DynamicBatcher>(options)};
}

radz::Ticket submit(PyBatcher& self, const py::array& x, const std::string& priority, std::optional<double> deadline_ms) {
  const auto input = checked_float32(x, self.input_shape, "x");
  const radz::Priority parsed = parse_priority(priority);
  std::optional<radz::DynamicBatcher::Clock::time_point> deadline;
  if (deadline_ms) {
    if (std::isnan(*deadline_ms)) radz::throw_invalid("deadline_ms", "must be a number or None, got nan");
    deadline = radz::DynamicBatcher::Clock::now() + microseconds_from_ms(std::max(*deadline_ms, 0.0), "deadline_ms");
  }
  const float* data = input.data();
  py::gil_scoped_release release;  // backpressure may block; `input` stays alive meanwhile
  return self.batcher->submit(data, parsed, deadline);
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

void complete(PyBatcher& self, const PyBatch& batch, const py::array& outputs) {
  const Shape shape{static_cast<py::ssize_t>(batch.batch.size()),
                    static_cast<py::ssize_t>(self.batcher->options().output_size)};
  const auto checked = checked_float32(outputs, shape, "outputs");
  const float* data = checked.data();
  py::gil_scoped_release release;
  self.batcher->complete(batch.batch.id, data);
}

py::array_t<float> ticket_result(const radz::Ticket& ticket, std::optional<double> timeout) {
  if (timeout && (std::isnan(*timeout) || *timeout < 0)) {
    radz::throw_invalid("timeout", "must be >= 0 seconds or None, got " + std::to_string(*timeout));
  }
  std::chrono::nanoseconds remaining = std::chrono::nanoseconds::max();
  if (timeout) remaining = std::chrono::nanoseconds(static_cast<int64_t>(std::min(*timeout, 1e9) * 1e9));
  for (;;) {
    const auto slice = std::min<std::chrono::nanoseconds>(remaining, kSignalCheckInterval);
    bool ready;
    {
      py::gil_scoped_release release;
      ready = ticket.wait(slice);
    }
    if (ready) break;
    if (timeout) remaining -= slice;
    if (remaining.count() <= 0) {
      raise_timeout("request " + std::to_string(ticket.id()) + " has no result after " + std::to_string(*timeout) + " s");
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
  const std::vector<float>& output = ticket.get();  // ready: returns or rethrows at once
  py::array_t<float> result(static_cast<py::ssize_t>(output.size()));
  std::copy(output.begin(), output.end(), result.mutable_data());
  return result;
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

void register_batcher(py::module_& m) {
  // Registered after pybind11's defaults, so these win over the std::runtime_error mapping.
  py::register_exception<radz::QueueFull>(m, "QueueFull", PyExc_RuntimeError);
  py::register_exception<radz::DeadlineExceeded>(m, "DeadlineExceeded", PyExc_TimeoutError);
  py::register_exception<radz::RequestCancelled>(m, "RequestCancelled", PyExc_RuntimeError);

  py::class_<radz::Ticket>(m, "Ticket", "The future result of one DynamicBatcher.submit() call.")
      .def_property_readonly("id", &radz::Ticket::id, "Request id; Batch.ids holds the same ids.")
      .def("done", &radz::Ticket::ready, "True once the request has a result or an error.")
      .def("cancel", &radz::Ticket::cancel, py::call_guard<py::gil_scoped_release>(),
           "Remove the request if no runner took it yet (it then raises RequestCancelled); "
           "False when it already runs or finished.")
      .def("result", &ticket_result, py::arg("timeout") = py::none(),
           "The output [output_size] float32; waits up to `timeout` seconds (None: forever) and raises "
           "TimeoutError, or the request's own error (DeadlineExceeded, RequestCancelled, RuntimeError).")
      .def_property_readonly(
          "latency_ms",
          [](const radz::Ticket& t) -> std::optional<double> {
            const auto latency = t.latency();
            if (!latency) return std::nullopt;
            return static_cast<double>(latency->count()) / 1000.0;
          },
          "Submit -> result time in ms, None while not done.")
      .def("__repr__", [](const radz::Ticket& t) {
        return "<Ticket id=" + std::to_string(t.id()) + (t.ready() ? " done>" : " pending>");
      });

  py::class_<PyBatch>(m, "Batch", "Requests taken by one runner: run the model on .inputs, then complete().")
      .def_property_readonly("id", [](const PyBatch& b) { return b.batch.id; })
      .def_property_readonly("ids", [](const PyBatch& b) { return b.batch.request_ids; },
                             "Request ids in row order (stat requests first).")
      .def_property_readonly(
          "inputs",
          [](py::object self) {
            auto& b = self.cast<PyBatch&>();
            Shape shape{static_cast<py::ssize_t>(b.batch.size())};
            shape.insert(shape.end(), b.input_shape.begin(), b.input_shape.end());
            // A view that keeps this Batch (the owner of the floats) alive.
            return py::array_t<float>(shape, b.batch.inputs.data(), self);
          },
          "[B, *input_shape] float32, a zero-copy view of the batch's own buffer.")
      .def("__len__", [](const PyBatch& b) { return b.batch.size(); })
      .def("__repr__", [](const PyBatch& b) {
        return "<Batch id=" + std::to_string(b.batch.id) + " size=" + std::to_string(b.batch.size()) + ">";
      });

  py::class_<PyBatcher>(m, "DynamicBatcher",
                        "Groups single requests into batches for runner threads (C++, thread-safe).")
      .def(py::init(&make_batcher), py::arg("input_shape"), py::arg("output_size"), py::arg("max_batch_size") = 32,
           py::arg("max_delay_ms") = 2.0, py::arg("max_queue") = 1024, py::arg("backpressure") = "block",
           py::arg("block_timeout_ms") = 1000.0, py::arg("adaptive_delay") = true)
      .def("submit", &submit, py::arg("x"), py::arg("priority") = "routine", py::arg("deadline_ms") = py::none(),
           "Queue one float32 input of input_shape; returns a Ticket. deadline_ms: ms from now after which it "
           "is dropped with DeadlineExceeded. Raises QueueFull under backpressure.")
      .def("next_batch", &next_batch, py::arg("timeout_ms"),
           "Wait up to timeout_ms for a batch (GIL released); None on timeout or when shut down and empty.")
      .def("complete", &complete, py::arg("batch"), py::arg("outputs"),
           "Hand back outputs [len(batch), output_size] float32, rows in batch order.")
      .def(
          "fail",
          [](PyBatcher& self, const PyBatch& batch, const std::string& message) {
            self.batcher->fail(batch.batch.id, message);
          },
          py::arg("batch"), py::arg("message"), py::call_guard<py::gil_scoped_release>(),
          "Fail every request of the batch with RuntimeError(message).")
      .def(
          "shutdown", [](PyBatcher& self, bool drain) { self.batcher->shutdown(drain); }, py::arg("drain") = true,
          py::call_guard<py::gil_scoped_release>(),
          "Stop accepting requests; drain=True lets runners finish the queue, False fails queued requests.")
      .def("metrics", [](const PyBatcher& self) { return metrics_dict(self.batcher->metrics()); },
           "Counters, queue depth, batch-size histogram and latency percentiles (ms) as a dict.")
      .def_property_readonly("input_shape", [](const PyBatcher& self) { return py::tuple(py::cast(self.input_shape)); })
      .def_property_readonly("output_size", [](const PyBatcher& self) { return self.batcher->options().output_size; })
      .def_property_readonly("max_batch_size",
                             [](const PyBatcher& self) { return self.batcher->options().max_batch_size; })
      .def_property_readonly("is_shut_down", [](const PyBatcher& self) { return self.batcher->is_shut_down(); });
}
