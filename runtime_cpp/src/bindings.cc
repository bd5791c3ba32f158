// pybind11 glue only: exposes the runtime as the top-level module `hybrid_runtime`.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "hybrid/arena.h"
#include "hybrid/thread_pool.h"

namespace py = pybind11;

namespace {

// Minimum iterations per chunk of parallel_add_f32: below this, threading costs more.
constexpr int64_t kAddGrain = 1 << 14;

std::string shape_str(const py::array& a) {
  std::ostringstream out;
  out << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out << (i ? ", " : "") << a.shape(i);
  out << (a.ndim() == 1 ? ",)" : ")");
  return out.str();
}

bool same_shape(const py::array& a, const py::array& b) {
  if (a.ndim() != b.ndim()) return false;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (a.shape(i) != b.shape(i)) return false;
  }
  return true;
}

using F32In = py::array_t<float, py::array::c_style | py::array::forcecast>;

py::array parallel_add_f32(const F32In& a, const F32In& b, py::array out) {
  if (!same_shape(a, b) || !same_shape(a, out)) {
    throw std::invalid_argument("parallel_add_f32: shapes of a " + shape_str(a) + ", b " +
                                shape_str(b) + " and out " + shape_str(out) + " must match");
  }
  // NOTE: `out` is not converted: a converted copy would silently swallow the result.
  if (!out.dtype().is(py::dtype::of<float>()) || !(out.flags() & py::array::c_style) ||
      !out.writeable()) {
    throw std::invalid_argument(
        "parallel_add_f32: out must be a writeable C-contiguous float32 array");
  }
  const float* pa = a.data();
  const float* pb = b.data();
  float* po = static_cast<float*>(out.mutable_data());
  {
    py::gil_scoped_release release;
    hybrid::parallel_for(0, a.size(), kAddGrain, [&](int64_t start, int64_t end) {
      for (int64_t i = start; i < end; ++i) po[i] = pa[i] + pb[i];
    });
  }
  return out;
}

void run_kernel(std::uintptr_t fn_address, int64_t n, const std::vector<std::uintptr_t>& args,
                int64_t grain) {
  if (fn_address == 0) throw std::invalid_argument("run_kernel: fn_address is null");
  if (n < 0) throw std::invalid_argument("run_kernel: n must be >= 0, got " + std::to_string(n));
  auto fn = reinterpret_cast<hybrid::KernelFn>(fn_address);
  std::vector<void*> table;
  table.reserve(args.size());
  for (std::uintptr_t address : args) table.push_back(reinterpret_cast<void*>(address));
  void** table_ptr = table.data();

  py::gil_scoped_release release;
  hybrid::parallel_for(0, n, grain,
                       [fn, table_ptr](int64_t start, int64_t end) { fn(start, end, table_ptr); });
}

// Test hook: the chunk containing index k throws, to exercise exception propagation.
void parallel_for_raise_at(int64_t n, int64_t k) {
  py::gil_scoped_release release;
  hybrid::parallel_for(0, n, 1, [k](int64_t start, int64_t end) {
    if (start <= k && k < end) {
      throw std::runtime_error("chunk [" + std::to_string(start) + ", " + std::to_string(end) +
                               ") failed at index " + std::to_string(k));
    }
  });
}

}  // namespace

PYBIND11_MODULE(hybrid_runtime, m) {
  m.doc() = "hybrid native runtime: arena memory, thread pool and kernel launch.";

  py::class_<hybrid::Arena>(m, "Arena", py::buffer_protocol(),
                            "One 64-byte-aligned, zero-initialized block of memory.")
      .def(py::init<std::size_t>(), py::arg("nbytes"))
      .def_property_readonly("nbytes", &hybrid::Arena::nbytes)
      .def_property_readonly(
          "address",
          [](const hybrid::Arena& self) { return reinterpret_cast<std::uintptr_t>(self.data()); })
      .def_buffer([](hybrid::Arena& self) {
        return py::buffer_info(self.data(), 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(self.nbytes())}, {1}, false);
      })
      .def(
          "view",
          [](const py::object& self, std::size_t offset, std::size_t nbytes) -> py::object {
            self.cast<const hybrid::Arena&>().at(offset, nbytes);  // bounds check
            // Slicing a memoryview of the arena keeps the arena alive via the view's base.
            py::memoryview whole(self);
            auto start = static_cast<py::ssize_t>(offset);
            auto stop = static_cast<py::ssize_t>(offset + nbytes);
            return whole[py::slice(start, stop, 1)];  // NOLINT: accessor -> object
          },
          py::arg("offset"), py::arg("nbytes"),
          "Writable memoryview of bytes [offset, offset + nbytes); IndexError if out of range.")
      .def("__repr__", [](const hybrid::Arena& self) {
        return "Arena(nbytes=" + std::to_string(self.nbytes()) + ")";
      });

  m.def("get_num_threads", &hybrid::get_num_threads,
        "Threads used by parallel loops (default: HYBRID_NUM_THREADS or the core count).");
  m.def("set_num_threads", &hybrid::set_num_threads, py::arg("n"),
        "Sets the threads used by parallel loops (n >= 1, else ValueError).");
  m.def("run_kernel", &run_kernel, py::arg("fn_address"), py::arg("n"), py::arg("args"),
        py::arg("grain") = 0,
        "Calls the C function fn(start, end, void** args) over chunks of [0, n) on the pool, "
        "without the GIL.");
  m.def("parallel_add_f32", &parallel_add_f32, py::arg("a"), py::arg("b"), py::arg("out"),
        "out[...] = a + b for float32 arrays, split over the pool; returns out.");
  m.def("_parallel_for_raise_at", &parallel_for_raise_at, py::arg("n"), py::arg("k"),
        "Test hook: runs parallel_for over [0, n) where the chunk holding k throws.");
}
