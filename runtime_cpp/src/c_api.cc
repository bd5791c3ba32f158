// The C API (hybrid/runtime.h) over hybrid::Program: exceptions become a status and a message.
#include "hybrid/runtime.h"

#include <exception>
#include <memory>
#include <string>

#include "hybrid/artifact.h"

struct hybrid_program {
  std::unique_ptr<hybrid::Program> program;
};

namespace {

thread_local std::string last_error;

const hybrid::TensorSig* sig(const hybrid_program* p, int is_output, int i) {
  if (p == nullptr || i < 0) return nullptr;
  const auto& list = is_output ? p->program->outputs() : p->program->inputs();
  return std::size_t(i) < list.size() ? &list[std::size_t(i)] : nullptr;
}

}  // namespace

extern "C" {

hybrid_program* hybrid_load(const char* path) {
  last_error.clear();
  if (path == nullptr) {
    last_error = "hybrid_load: path is NULL";
    return nullptr;
  }
  try {
    auto* p = new hybrid_program;
    try {
      p->program = std::make_unique<hybrid::Program>(path);
    } catch (...) {
      delete p;
      throw;
    }
    return p;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "hybrid_load: unknown error";
  }
  return nullptr;
}

void hybrid_free(hybrid_program* program) { delete program; }

const char* hybrid_last_error(void) { return last_error.c_str(); }

int hybrid_num_inputs(const hybrid_program* p) { return p ? int(p->program->inputs().size()) : -1; }
int hybrid_num_outputs(const hybrid_program* p) { return p ? int(p->program->outputs().size()) : -1; }

const char* hybrid_tensor_name(const hybrid_program* p, int is_output, int i) {
  const auto* s = sig(p, is_output, i);
  return s ? s->name.c_str() : nullptr;
}
const char* hybrid_tensor_dtype(const hybrid_program* p, int is_output, int i) {
  const auto* s = sig(p, is_output, i);
  return s ? s->dtype.c_str() : nullptr;
}
int hybrid_tensor_ndim(const hybrid_program* p, int is_output, int i) {
  const auto* s = sig(p, is_output, i);
  return s ? int(s->shape.size()) : -1;
}
const int64_t* hybrid_tensor_shape(const hybrid_program* p, int is_output, int i) {
  const auto* s = sig(p, is_output, i);
  return s ? s->shape.data() : nullptr;
}
int64_t hybrid_tensor_nbytes(const hybrid_program* p, int is_output, int i) {
  const auto* s = sig(p, is_output, i);
  return s ? int64_t(s->nbytes()) : -1;
}

int hybrid_run(hybrid_program* p, const void* const* inputs, void* const* outputs) {
  last_error.clear();
  if (p == nullptr || inputs == nullptr || outputs == nullptr) {
    last_error = "hybrid_run: NULL argument";
    return 1;
  }
  try {
    p->program->run(inputs, outputs);
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "hybrid_run: unknown error";
  }
  return 1;
}

}  // extern "C"
