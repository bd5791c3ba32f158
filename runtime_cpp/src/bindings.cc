// pybind11 glue only: exposes the runtime as the top-level module `hybrid_runtime`. Plans
// arrive as bytes and are parsed in plan_format.cc; nothing is parsed here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hybrid/arena.h"
#include "hybrid/blas.h"
#include "hybrid/executor.h"
#include "hybrid/output_pool.h"
#include "hybrid/plan.h"
#include "hybrid/plan_format.h"
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


// ---- Executor: plan bytes (parsed by plan_format.cc) + numpy in/out around run() ----------

[[noreturn]] void bad_plan(const std::string& where, const std::string& what) {
  throw py::value_error("Executor: " + where + ": " + what);
}

// symbol -> address, for parse_plan; 0 when the dict lacks the symbol or its value is bad.
hybrid::SymbolResolver resolver(const py::dict& symbols) {
  return [&symbols](const std::string& symbol) -> std::uintptr_t {
    py::str key(symbol);
    if (!symbols.contains(key)) return 0;
    try {
      return symbols[key].cast<std::uintptr_t>();
    } catch (const py::cast_error&) {
      return 0;
    }
  };
}

// Expected dtype and shape of one input or output array.
struct ArraySig {
  py::dtype dtype;
  std::vector<Py_intptr_t> shape;

  std::string str() const {
    std::string text = std::string(py::str(dtype)) + "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
      text += (i ? "," : "") + std::to_string(shape[i]);
    }
    return text + "]";
  }
};

ArraySig signature_of(hybrid::DType dtype, const std::vector<int64_t>& shape) {
  return {py::dtype(hybrid::dtype_numpy_name(dtype)),
          std::vector<Py_intptr_t>(shape.begin(), shape.end())};
}

ArraySig signature_of(const hybrid::BufferDesc& buf) { return signature_of(buf.dtype, buf.shape); }

std::string describe_array(const py::array& a) {
  std::string text = std::string(py::str(a.dtype())) + "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) text += (i ? "," : "") + std::to_string(a.shape(i));
  return text + "]";
}

// Where output slot j comes from: a fresh array, an earlier slot, or an input.
struct OutputSource {
  enum Kind { kFresh, kRepeat, kInput } kind;
  std::size_t index;  // kRepeat: earlier slot; kInput: input number
};

// The Python-facing executor: a hybrid::Executor plus the numpy glue.
class PyExecutor {
 public:
  PyExecutor(const py::bytes& plan_bytes, const py::dict& symbols, const py::list& constants,
             const py::object& blas, py::object keepalive)
      : keepalive_(std::move(keepalive)) {
    hybrid::PlanDesc plan;
    try {
      plan = hybrid::parse_plan(std::string_view(plan_bytes), resolver(symbols));
    } catch (const std::invalid_argument& err) {
      throw py::value_error(std::string("Executor: ") + err.what());
    }
    std::vector<hybrid::ConstantData> data;
    std::vector<py::array> arrays;  // kept alive until the Executor has copied them
    // NOTE: the count (and each block's size) is the core Executor's check; here only what
    // needs numpy: an array of the declared dtype and shape.
    for (std::size_t i = 0; i < constants.size(); ++i) {
      const std::string where = "constant " + std::to_string(i);
      if (!py::isinstance<py::array>(constants[i])) bad_plan(where, "not a numpy array");
      auto array = py::array::ensure(constants[i], py::array::c_style);
      if (!array) bad_plan(where, "not convertible to a C-contiguous array");
      if (i < plan.constants.size()) {
        const ArraySig sig = signature_of(plan.constants[i].dtype, plan.constants[i].shape);
        if (!array.dtype().equal(sig.dtype) ||
            static_cast<std::size_t>(array.ndim()) != sig.shape.size() ||
            !std::equal(sig.shape.begin(), sig.shape.end(), array.shape())) {
          bad_plan(where, "expected " + sig.str() + ", got " + describe_array(array));
        }
      }
      data.push_back({array.data(), static_cast<std::size_t>(array.nbytes())});
      arrays.push_back(std::move(array));
    }
    hybrid::BlasLibrary library;
    if (!blas.is_none()) {
      if (!py::isinstance<hybrid::BlasLibrary>(blas)) {
        throw py::type_error("Executor: blas must be a hybrid_runtime.BlasLibrary (load_blas) "
                             "or None, got " +
                             std::string(py::str(py::type::of(blas).attr("__name__"))));
      }
      library = blas.cast<hybrid::BlasLibrary>();
    }
    try {
      core_ = std::make_unique<hybrid::Executor>(std::move(plan), data, std::move(library));
    } catch (const std::invalid_argument& err) {
      throw py::value_error(std::string("Executor: ") + err.what());
    }
    const hybrid::PlanDesc& p = core_->plan();
    for (int64_t id : p.inputs) {
      input_sigs_.push_back(signature_of(p.buffers[id]));
      input_bytes_.push_back(static_cast<std::size_t>(p.buffers[id].nbytes));
    }
    for (std::size_t j = 0; j < p.outputs.size(); ++j) {
      const hybrid::BufferDesc& buf = p.buffers[p.outputs[j]];
      const auto index = static_cast<std::size_t>(buf.index);
      if (buf.kind == hybrid::BufferKind::kInput) {
        sources_.push_back({OutputSource::kInput, index});
        donated_.push_back(index);
      } else if (index != j) {
        sources_.push_back({OutputSource::kRepeat, index});
      } else {
        sources_.push_back({OutputSource::kFresh, j});
      }
      output_sigs_.push_back(signature_of(buf));
    }
  }

  py::list run(const py::sequence& inputs) {
    py::list result = bind(inputs);
    {
      py::gil_scoped_release release;
      core_->run(in_ptrs().data(), out_ptrs().data());
    }
    return result;
  }

  // Median wall time in seconds of every step over `repeats` runs on `inputs`.
  std::vector<double> profile(const py::sequence& inputs, int repeats) {
    if (repeats < 1) throw py::value_error("Executor.profile: repeats must be >= 1");
    std::vector<std::vector<double>> runs(static_cast<std::size_t>(repeats));
    for (auto& seconds : runs) {
      py::list keep = bind(inputs);  // the outputs stay alive while the steps write them
      py::gil_scoped_release release;
      core_->run_timed(in_ptrs().data(), out_ptrs().data(), seconds);
    }
    std::vector<double> medians(core_->plan().steps.size());
    std::vector<double> column(runs.size());
    for (std::size_t i = 0; i < medians.size(); ++i) {
      for (std::size_t r = 0; r < runs.size(); ++r) column[r] = runs[r][i];
      std::nth_element(column.begin(), column.begin() + column.size() / 2, column.end());
      medians[i] = column[column.size() / 2];
    }
    return medians;
  }

  const hybrid::PlanDesc& plan() const { return core_->plan(); }
  std::vector<std::size_t> donated_inputs() const { return donated_; }

 private:
  // NOTE: per-thread scratch, so that concurrent calls (the GIL is released while steps
  // run) never share it and steady-state calls allocate nothing but the outputs.
  static std::vector<void*>& in_ptrs() {
    thread_local std::vector<void*> ptrs;
    return ptrs;
  }
  static std::vector<void*>& out_ptrs() {
    thread_local std::vector<void*> ptrs;
    return ptrs;
  }

  // Checks the inputs and fills in_ptrs(); allocates the outputs, fills out_ptrs() and
  // returns the list of output arrays (fresh, repeated or aliasing an input).
  py::list bind(const py::sequence& inputs) {
    const std::size_t num_inputs = input_sigs_.size();
    const std::size_t num_outputs = output_sigs_.size();
    if (inputs.size() != num_inputs) {
      throw py::value_error("Executor.run: expected " + std::to_string(num_inputs) +
                            " inputs, got " + std::to_string(inputs.size()));
    }
    std::vector<void*>& ins = in_ptrs();
    std::vector<void*>& outs = out_ptrs();
    ins.resize(num_inputs);
    outs.resize(num_outputs);
    for (std::size_t i = 0; i < num_inputs; ++i) ins[i] = checked_input(inputs, i);
    check_no_overlap(ins);
    py::list result(num_outputs);
    for (std::size_t j = 0; j < num_outputs; ++j) {
      const OutputSource& src = sources_[j];
      py::object out;
      if (src.kind == OutputSource::kFresh) {
        out = new_array(output_sigs_[j]);
        outs[j] = py::detail::array_proxy(out.ptr())->data;
      } else if (src.kind == OutputSource::kRepeat) {
        out = result[src.index];
      } else {
        out = inputs[src.index];
      }
      PyList_SET_ITEM(result.ptr(), static_cast<py::ssize_t>(j), out.release().ptr());
    }
    return result;
  }

  // The data pointer of inputs[i] after checking it; ValueError naming i otherwise.
  void* checked_input(const py::sequence& inputs, std::size_t i) const {
    const ArraySig& sig = input_sigs_[i];
    py::object item = inputs[i];
    auto fail = [&](const std::string& got) {
      throw py::value_error("Executor.run: input " + std::to_string(i) + ": expected a " +
                            sig.str() + " C-contiguous numpy array, got " + got);
    };
    if (!py::isinstance<py::array>(item)) {
      fail(std::string(py::str(py::type::of(item).attr("__name__"))));
    }
    auto array = py::reinterpret_borrow<py::array>(item);
    auto* proxy = py::detail::array_proxy(array.ptr());
    const auto& api = py::detail::npy_api::get();
    const bool same_shape =
        proxy->nd == static_cast<int>(sig.shape.size()) &&
        std::equal(sig.shape.begin(), sig.shape.end(), proxy->dimensions);
    if (!api.PyArray_EquivTypes_(proxy->descr, sig.dtype.ptr()) || !same_shape) {
      fail(describe_array(array));
    }
    if (!(proxy->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_)) {
      fail("a non-C-contiguous " + describe_array(array));
    }
    if (!(proxy->flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) {
      fail("a misaligned " + describe_array(array));
    }
    const bool written = std::find(donated_.begin(), donated_.end(), i) != donated_.end();
    if (written && !(proxy->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_)) {
      fail("a read-only " + describe_array(array) + " (it is updated in place)");
    }
    return proxy->data;
  }

  // An input the plan updates in place must not share memory with another input (a tensor
  // and its .detach(), say): the update would change what the other one reads mid-run.
  void check_no_overlap(const std::vector<void*>& ins) const {
    for (std::size_t i : donated_) {
      const auto* lo = static_cast<const std::byte*>(ins[i]);
      const std::byte* hi = lo + input_bytes_[i];
      for (std::size_t j = 0; j < ins.size(); ++j) {
        const auto* lo2 = static_cast<const std::byte*>(ins[j]);
        if (j != i && lo < lo2 + input_bytes_[j] && lo2 < hi) {
          throw py::value_error("Executor.run: input " + std::to_string(j) +
                                " shares memory with input " + std::to_string(i) +
                                ", which the plan updates in place (pass a copy)");
        }
      }
    }
  }

  // An uninitialized C-contiguous array: numpy's own allocation when small, else a block of
  // the OutputPool that the array gives back when it is freed.
  static py::object new_array(const ArraySig& sig) {
    const auto& api = py::detail::npy_api::get();
    std::size_t nbytes = static_cast<std::size_t>(sig.dtype.itemsize());
    for (Py_intptr_t d : sig.shape) nbytes *= static_cast<std::size_t>(d);
    void* block = nullptr;
    py::object owner;
    if (nbytes >= hybrid::OutputPool::kMinBytes) {
      block = hybrid::OutputPool::global().take(nbytes);
      owner = pooled_owner(block, nbytes);
    }
    PyObject* raw = api.PyArray_NewFromDescr_(
        api.PyArray_Type_, sig.dtype.inc_ref().ptr(), static_cast<int>(sig.shape.size()),
        sig.shape.data(), nullptr, block,
        block ? py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                    py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                    py::detail::npy_api::NPY_ARRAY_WRITEABLE_
              : 0,
        nullptr);
    if (raw == nullptr) throw py::error_already_set();
    auto array = py::reinterpret_steal<py::object>(raw);
    if (block && api.PyArray_SetBaseObject_(array.ptr(), owner.release().ptr()) != 0) {
      throw py::error_already_set();
    }
    return array;
  }

  // A capsule that gives `block` back to the pool when the last array using it is freed.
  static py::object pooled_owner(void* block, std::size_t nbytes) {
    PyObject* capsule = PyCapsule_New(block, "hybrid.output", [](PyObject* self) {
      void* ptr = PyCapsule_GetPointer(self, "hybrid.output");
      auto size = reinterpret_cast<std::size_t>(PyCapsule_GetContext(self));
      hybrid::OutputPool::global().give(ptr, size);
    });
    if (capsule == nullptr) {
      hybrid::OutputPool::global().give(block, nbytes);
      throw py::error_already_set();
    }
    PyCapsule_SetContext(capsule, reinterpret_cast<void*>(nbytes));
    return py::reinterpret_steal<py::object>(capsule);
  }

  std::unique_ptr<hybrid::Executor> core_;
  std::vector<ArraySig> input_sigs_;
  std::vector<ArraySig> output_sigs_;
  std::vector<OutputSource> sources_;
  std::vector<std::size_t> donated_;  // inputs that are also outputs (written in place)
  std::vector<std::size_t> input_bytes_;
  py::object keepalive_;
};

std::string describe_plan(const hybrid::PlanDesc& p) {
  return "Executor(" + std::to_string(p.inputs.size()) + " inputs, " +
         std::to_string(p.outputs.size()) + " outputs, " + std::to_string(p.steps.size()) +
         " steps, arena " + std::to_string(p.arena_bytes) + " B)";
}

}  // namespace

PYBIND11_MODULE(hybrid_runtime, m) {
  m.doc() = "hybrid native runtime: arena memory, thread pool, kernel launch, plan executor.";

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
  m.attr("PLAN_VERSION") = hybrid::kPlanVersion;
  py::class_<hybrid::BlasLibrary>(m, "BlasLibrary",
                                  "A BLAS opened by the runtime (load_blas): its entry points.")
      .def_readonly("provider", &hybrid::BlasLibrary::provider)
      .def_readonly("path", &hybrid::BlasLibrary::path)
      .def_readonly("name", &hybrid::BlasLibrary::name)
      .def_readonly("serial", &hybrid::BlasLibrary::serial,
                    "The library runs on its calling thread: GEMMs are split over the pool.")
      .def_readonly("sgemm", &hybrid::BlasLibrary::sgemm)
      .def_readonly("dgemm", &hybrid::BlasLibrary::dgemm)
      .def_readonly("threads_local", &hybrid::BlasLibrary::threads_local,
                    "Address of an int f(int) setting the calling thread's BLAS threads (0: none).")
      .def("__repr__", [](const hybrid::BlasLibrary& self) {
        return "BlasLibrary(" + self.provider + ": " + self.name + ")";
      });
  m.def("load_blas", &hybrid::load_blas, py::arg("provider"), py::arg("path"),
        "Opens the BLAS shared library at `path` for `provider` (openblas, mkl, scipy) and "
        "resolves its sgemm/dgemm; RuntimeError naming what is missing otherwise.");
  m.def(
      "check_plan",
      [](const py::bytes& plan_bytes, const py::dict& symbols) {
        try {
          hybrid::validate_plan(hybrid::parse_plan(std::string_view(plan_bytes), resolver(symbols)));
        } catch (const std::invalid_argument& err) {
          throw py::value_error(err.what());
        }
      },
      py::arg("plan"), py::arg("symbols"),
      "Parses and validates plan bytes as Executor does; ValueError if malformed.");
  py::class_<PyExecutor>(m, "Executor",
                         "Runs a compiled Plan: build once from the plan's bytes, then "
                         "run(inputs) many times.")
      .def(py::init<const py::bytes&, const py::dict&, const py::list&, const py::object&,
                    py::object>(),
           py::arg("plan"), py::arg("symbols"), py::arg("constants"),
           py::arg("blas") = py::none(), py::arg("keepalive") = py::none(),
           "plan: compiler.plan.Plan.to_bytes() (versioned JSON, parsed and validated here); "
           "symbols: kernel symbol -> address; constants: the arrays the plan declares; blas: a "
           "BlasLibrary (needed when the plan has GEMMs); keepalive: kept alive with the "
           "executor (the JIT engine owning the kernels). ValueError if malformed.")
      .def("run", &PyExecutor::run, py::arg("inputs"),
           "Checks the inputs (count, dtype, shape, C-contiguity), allocates the outputs, runs "
           "every step without the GIL and returns the list of outputs.")
      .def("profile", &PyExecutor::profile, py::arg("inputs"), py::arg("repeats") = 10,
           "Runs the plan `repeats` times on `inputs` (updating in-place outputs as run() does) "
           "and returns every step's median wall time in seconds.")
      .def_property_readonly("num_inputs",
                             [](const PyExecutor& self) { return self.plan().inputs.size(); })
      .def_property_readonly("num_outputs",
                             [](const PyExecutor& self) { return self.plan().outputs.size(); })
      .def_property_readonly("donated_inputs",
                             [](const PyExecutor& self) { return self.donated_inputs(); },
                             "Indices of the inputs the plan updates in place.")
      .def_property_readonly("num_steps",
                             [](const PyExecutor& self) { return self.plan().steps.size(); })
      .def_property_readonly("arena_bytes",
                             [](const PyExecutor& self) { return self.plan().arena_bytes; })
      .def("__repr__", [](const PyExecutor& self) { return describe_plan(self.plan()); });
  m.def(
      "release_output_memory", [] { return hybrid::OutputPool::global().release(); },
      "Frees the idle blocks kept for large outputs of compiled calls; returns the bytes freed.");
  m.def(
      "idle_output_memory", [] { return hybrid::OutputPool::global().idle_bytes(); },
      "Bytes kept for reuse by large outputs of compiled calls (freed arrays' blocks).");
  m.def(
      "memory_stats",
      [] {
        const hybrid::OutputPool::Stats p = hybrid::OutputPool::global().stats();
        const hybrid::Executor::LiveTotals e = hybrid::Executor::live_totals();
        py::dict d;
        d["pool_idle_bytes"] = p.idle_bytes;
        d["pool_idle_blocks"] = p.idle_blocks;
        d["pool_in_use_bytes"] = p.in_use_bytes;
        d["pool_in_use_blocks"] = p.in_use_blocks;
        d["pool_peak_in_use_bytes"] = p.peak_in_use_bytes;
        d["pool_peak_bytes"] = p.peak_total_bytes;
        d["pool_allocations"] = p.allocations;
        d["pool_reuses"] = p.reuses;
        d["pool_trimmed_bytes"] = p.trimmed_bytes;
        d["pool_released_bytes"] = p.released_bytes;
        d["pool_idle_seconds"] = p.idle_seconds;
        d["pool_max_idle_bytes"] = p.max_idle_bytes;
        d["executors"] = e.count;
        d["executor_bytes"] = e.bytes;
        return d;
      },
      "Native memory counters: the output pool (idle / in use / peak bytes and blocks, "
      "allocations, reuses, bytes trimmed and released) and live executors (count, bytes of "
      "their arenas and constants).");
  m.def(
      "reset_peak_memory_stats", [] { hybrid::OutputPool::global().reset_peak(); },
      "Restarts the output pool's peak counters from the current usage.");
  m.def(
      "set_output_pool_limits",
      [](double idle_seconds, std::size_t max_idle_bytes) {
        hybrid::OutputPool::global().set_limits(idle_seconds, max_idle_bytes);
      },
      py::arg("idle_seconds"), py::arg("max_idle_bytes"),
      "Idle blocks are unmapped after idle_seconds (> 0) unused; at most max_idle_bytes are "
      "kept idle (0: none).");
  m.def("_parallel_for_raise_at", &parallel_for_raise_at, py::arg("n"), py::arg("k"),
        "Test hook: runs parallel_for over [0, n) where the chunk holding k throws.");
}
