#include "hybrid/plan_format.h"

#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hybrid {

namespace {

using nlohmann::json;

// NOTE: messages may quote the input (nlohmann's parse errors do): bytes outside printable
// ASCII are written as \xNN, so that every message is valid text.
std::string printable(const std::string& text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::invalid_argument(printable("malformed plan: " + where + ": " + what));
}

const json& member(const json& obj, const char* key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) fail(where, std::string("missing '") + key + "'");
  return *it;
}

// An integer member and where it goes.
struct IntField {
  const char* name;
  int64_t* out;
};

// Rejects members not in `known` or `ints`: a field this runtime does not know could change
// meaning. Then reads every one of `ints`.
void only(const json& obj, std::initializer_list<const char*> known,
          std::initializer_list<IntField> ints, const std::string& where);

int64_t as_integer(const json& v, const std::string& where, const std::string& what) {
  if (!v.is_number_integer()) fail(where, what + " must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    fail(where, what + " overflows int64");
  }
  return v.get<int64_t>();
}

int64_t integer(const json& obj, const char* key, const std::string& where) {
  return as_integer(member(obj, key, where), where, std::string("'") + key + "'");
}

bool boolean(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_boolean()) fail(where, std::string("'") + key + "' must be true or false");
  return v.get<bool>();
}

double number(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_number()) fail(where, std::string("'") + key + "' must be a number");
  return v.get<double>();
}

std::string text(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_string()) fail(where, std::string("'") + key + "' must be a string");
  return v.get<std::string>();
}

std::vector<int64_t> integers(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_array()) fail(where, std::string("'") + key + "' must be a list of integers");
  std::vector<int64_t> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    out.push_back(as_integer(v[i], where, std::string("'") + key + "'[" + std::to_string(i) + "]"));
  }
  return out;
}

void only(const json& obj, std::initializer_list<const char*> known,
          std::initializer_list<IntField> ints, const std::string& where) {
  if (!obj.is_object()) fail(where, std::string("must be an object, got ") + obj.type_name());
  for (const auto& item : obj.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || item.key() == k;
    for (const IntField& f : ints) ok = ok || item.key() == f.name;
    if (!ok) fail(where, "unknown field '" + item.key() + "'");
  }
  for (const IntField& f : ints) *f.out = integer(obj, f.name, where);
}

template <typename T>
T named(T (*parse)(const std::string&), const std::string& name, const std::string& where) {
  try {
    return parse(name);
  } catch (const std::invalid_argument& err) {
    fail(where, err.what());
  }
}

const json& list(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_array()) fail(where, std::string("'") + key + "' must be a list");
  return v;
}

BufferDesc parse_buffer(const json& d, const std::string& where) {
  BufferDesc buf;
  only(d, {"kind", "dtype", "shape", "space"},
       {{"index", &buf.index}, {"offset", &buf.offset}, {"nbytes", &buf.nbytes}}, where);
  const std::string space = text(d, "space", where);
  if (space != "host") {
    fail(where, "memory space '" + space + "' is not one this runtime has (host)");
  }
  buf.kind = named(parse_buffer_kind, text(d, "kind", where), where);
  buf.dtype = named(parse_dtype, text(d, "dtype", where), where);
  buf.shape = integers(d, "shape", where);
  return buf;
}

Step parse_kernel(const json& d, const std::string& where, const SymbolResolver& resolve) {
  KernelStep s;
  only(d, {"op", "symbol", "args", "parallel", "touches"}, {{"n", &s.n}, {"grain", &s.grain}},
       where);
  s.symbol = text(d, "symbol", where);
  s.args = integers(d, "args", where);
  s.parallel = boolean(d, "parallel", where);
  if (d.contains("touches")) s.touches = integers(d, "touches", where);
  s.fn = resolve ? resolve(s.symbol) : 0;
  if (s.fn == 0) fail(where, "no address for kernel symbol '" + s.symbol + "'");
  return s;
}

Step parse_gemm(const json& d, const std::string& where) {
  GemmStep s;
  only(d, {"op", "dtype", "trans_a", "trans_b", "alpha", "beta"},
       {{"m", &s.m}, {"n", &s.n}, {"k", &s.k}, {"a", &s.a}, {"b", &s.b}, {"c", &s.c},
        {"a_offset", &s.a_offset}, {"b_offset", &s.b_offset}, {"c_offset", &s.c_offset},
        {"lda", &s.lda}, {"ldb", &s.ldb}, {"ldc", &s.ldc}, {"batch", &s.batch},
        {"stride_a", &s.stride_a}, {"stride_b", &s.stride_b}, {"stride_c", &s.stride_c}},
       where);
  s.dtype = named(parse_dtype, text(d, "dtype", where), where);
  s.trans_a = boolean(d, "trans_a", where);
  s.trans_b = boolean(d, "trans_b", where);
  s.alpha = number(d, "alpha", where);
  s.beta = number(d, "beta", where);
  return s;
}

Step parse_copy(const json& d, const std::string& where) {
  CopyStep s;
  only(d, {"op"},
       {{"src", &s.src}, {"dst", &s.dst}, {"src_offset", &s.src_offset},
        {"dst_offset", &s.dst_offset}, {"nbytes", &s.nbytes}},
       where);
  return s;
}

Step parse_step(const json& d, const std::string& where, const SymbolResolver& resolve) {
  if (!d.is_object()) fail(where, std::string("must be an object, got ") + d.type_name());
  const std::string op = text(d, "op", where);
  if (op == "kernel") return parse_kernel(d, where, resolve);
  if (op == "gemm") return parse_gemm(d, where);
  if (op == "copy") return parse_copy(d, where);
  fail(where, "unknown op '" + op + "'; known: kernel, gemm, copy");
}

ConstantSig parse_constant(const json& d, const std::string& where) {
  only(d, {"dtype", "shape"}, {}, where);
  return {named(parse_dtype, text(d, "dtype", where), where), integers(d, "shape", where)};
}

}  // namespace

PlanDesc parse_plan(std::string_view bytes, const SymbolResolver& resolve) {
  // NOTE: the parser stops at a NUL byte; bytes after one would never be checked.
  if (bytes.find('\0') != std::string_view::npos) fail("plan", "not valid JSON: a NUL byte");
  json doc;
  try {
    doc = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& err) {  // parse_error, and out_of_range for 1e400
    fail("plan", std::string("not valid JSON: ") + err.what());
  }
  only(doc, {"version", "arena_bytes", "buffers", "steps", "inputs", "outputs", "error_flag",
             "constants"},
       {}, "plan");
  const int64_t version = integer(doc, "version", "plan");
  if (version != kPlanVersion) {
    fail("plan", "version " + std::to_string(version) + " is not supported: this runtime reads "
                 "plan version " + std::to_string(kPlanVersion) + "; re-compile or re-export");
  }
  PlanDesc plan;
  plan.arena_bytes = integer(doc, "arena_bytes", "plan");
  const json& buffers = list(doc, "buffers", "plan");
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    plan.buffers.push_back(parse_buffer(buffers[i], "buffer b" + std::to_string(i)));
  }
  const json& steps = list(doc, "steps", "plan");
  for (std::size_t i = 0; i < steps.size(); ++i) {
    plan.steps.push_back(parse_step(steps[i], "step " + std::to_string(i), resolve));
  }
  plan.inputs = integers(doc, "inputs", "plan");
  plan.outputs = integers(doc, "outputs", "plan");
  if (doc.contains("error_flag")) plan.error_flag = integer(doc, "error_flag", "plan");
  if (doc.contains("constants")) {
    const json& constants = list(doc, "constants", "plan");
    for (std::size_t i = 0; i < constants.size(); ++i) {
      plan.constants.push_back(parse_constant(constants[i], "constant " + std::to_string(i)));
    }
  }
  return plan;
}

}  // namespace hybrid
