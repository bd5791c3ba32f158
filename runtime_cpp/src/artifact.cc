// Loading an exported program without Python. The checks mirror hybrid/export_format.py (the
// writer and the Python loader): nothing is mapped or run before every hash has been checked.
#include "hybrid/artifact.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <variant>

#include "hybrid/blas.h"
#include "hybrid/plan_format.h"
#include "hybrid/sha256.h"

namespace hybrid {
namespace {

using json = nlohmann::json;
constexpr std::size_t kHead = 8 + 4 + 4 + 8 + 32;
constexpr std::uint64_t kMaxBytes = std::uint64_t(1) << 36;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw std::invalid_argument(where + ": " + what);
}

template <typename T>
T read_le(const std::string& s, std::size_t at) {
  T v;
  std::memcpy(&v, s.data() + at, sizeof(T));  // NOTE: little-endian hosts only (x86, arm64)
  return v;
}

std::string read_regular_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) bad(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    bad(path, "not a regular file (a directory, FIFO or device)");
  }
  if (std::uint64_t(st.st_size) > kMaxBytes) {
    ::close(fd);
    bad(path, "too large for an exported program");
  }
  std::string data(std::size_t(st.st_size), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n <= 0) break;
    got += std::size_t(n);
  }
  ::close(fd);
  data.resize(got);
  return data;
}

std::size_t itemsize(const std::string& numpy_dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"bool", 1}, {"int32", 4}, {"int64", 8}, {"float16", 2}, {"float32", 4}, {"float64", 8}};
  auto it = sizes.find(numpy_dtype);
  if (it == sizes.end()) throw std::invalid_argument("unknown dtype '" + numpy_dtype + "'");
  return it->second;
}

const std::map<std::string, std::string>& safetensors_names() {  // safetensors -> numpy
  static const std::map<std::string, std::string> names = {
      {"BOOL", "bool"}, {"I32", "int32"}, {"I64", "int64"}, {"F16", "float16"},
      {"F32", "float32"}, {"F64", "float64"}};
  return names;
}

const json& need(const json& j, const char* key, json::value_t type, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) bad(where, std::string("malformed manifest: '") + key + "' is missing");
  const json& v = j.at(key);
  const bool ok = type == json::value_t::number_unsigned ? v.is_number_unsigned() : v.type() == type;
  if (!ok) bad(where, std::string("malformed manifest: '") + key + "' has the wrong type");
  if (type == json::value_t::number_unsigned && v.get<std::uint64_t>() > kMaxBytes) {
    bad(where, std::string("malformed manifest: '") + key + "' is out of range");
  }
  return v;
}

std::vector<TensorSig> signatures(const json& list, const std::string& where) {
  std::vector<TensorSig> out;
  for (const json& t : list) {
    TensorSig s;
    s.name = need(t, "name", json::value_t::string, where).get<std::string>();
    s.dtype = need(t, "dtype", json::value_t::string, where).get<std::string>();
    itemsize(s.dtype);
    for (const json& d : need(t, "shape", json::value_t::array, where)) {
      if (!d.is_number_unsigned() || d.get<std::uint64_t>() > kMaxBytes) bad(where, "malformed manifest: shape");
      s.shape.push_back(d.get<int64_t>());
    }
    out.push_back(std::move(s));
  }
  return out;
}

// LLVM feature -> /proc/cpuinfo flag (compiler/export_native.py: CPUINFO_FLAGS, the same table).
std::set<std::string> cpu_features() {
  static const std::map<std::string, std::string> table = {
      {"sse3", "pni"}, {"ssse3", "ssse3"}, {"sse4.1", "sse4_1"}, {"sse4.2", "sse4_2"},
      {"popcnt", "popcnt"}, {"avx", "avx"}, {"avx2", "avx2"}, {"fma", "fma"}, {"f16c", "f16c"},
      {"bmi", "bmi1"}, {"bmi2", "bmi2"}, {"lzcnt", "abm"}, {"movbe", "movbe"},
      {"avx512f", "avx512f"}, {"avx512bw", "avx512bw"}, {"avx512dq", "avx512dq"},
      {"avx512vl", "avx512vl"}, {"avx512cd", "avx512cd"}, {"avx512vnni", "avx512_vnni"},
      {"avx512bf16", "avx512_bf16"}, {"avx512fp16", "avx512_fp16"},
      // AArch64 (its /proc/cpuinfo line is "Features")
      {"neon", "asimd"}, {"fullfp16", "asimdhp"}, {"fp16fml", "asimdfhm"}, {"dotprod", "asimddp"},
      {"rdm", "asimdrdm"}, {"lse", "atomics"}, {"crc", "crc32"}, {"aes", "aes"}, {"sha2", "sha2"},
      {"sve", "sve"}, {"sve2", "sve2"}, {"bf16", "bf16"}, {"i8mm", "i8mm"}};
  std::set<std::string> flags;
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if ((line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0) &&
        line.find(':') != std::string::npos) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::string w;
      while (words >> w) flags.insert(w);
      break;
    }
  }
  std::set<std::string> have;
  for (const auto& [llvm_name, flag] : table) {
    if (flags.count(flag)) have.insert(llvm_name);
  }
  return have;
}

// scipy-openblas32's library in `site` (a site-packages folder), or "".
std::string openblas_in(const std::string& site) {
  const std::string folder = site + "/scipy_openblas32/lib";
  std::string found;
  if (DIR* l = ::opendir(folder.c_str())) {
    while (dirent* f = ::readdir(l)) {
      if (std::strncmp(f->d_name, "libscipy_openblas", 17) == 0) found = folder + "/" + f->d_name;
    }
    ::closedir(l);
  }
  return found;
}

std::string parent(const std::string& path, int levels) {
  std::string p = path;
  for (int i = 0; i < levels && p.find('/') != std::string::npos; ++i) p = p.substr(0, p.rfind('/'));
  return p;
}

// The BLAS for GEMM steps: $HYBRID_BLAS_LIBRARY (provider $HYBRID_BLAS_PROVIDER, default
// openblas), else scipy-openblas32's library (a dependency of hybrid) in the environment this
// library was installed into (site-packages/hybrid/_runtime/lib) or hybrid-run into (bin/).
BlasLibrary find_blas(const std::string& where) {
  const char* env = std::getenv("HYBRID_BLAS_LIBRARY");
  const char* provider = std::getenv("HYBRID_BLAS_PROVIDER");
  if (env != nullptr && *env) return load_blas(provider ? provider : "openblas", env);
  Dl_info info{};
  std::vector<std::string> sites;
  if (::dladdr(reinterpret_cast<void*>(&find_blas), &info) != 0 && info.dli_fname != nullptr) {
    sites.push_back(parent(info.dli_fname, 4));  // <site>/hybrid/_runtime/lib/libhybrid_rt.so
  }
  char exe[4096] = {};
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  const std::string lib_dir = parent(n > 0 ? std::string(exe, std::size_t(n)) : "", 2) + "/lib";
  if (DIR* d = ::opendir(lib_dir.c_str())) {  // <prefix>/bin/hybrid-run
    while (dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, "python3", 7) == 0) sites.push_back(lib_dir + "/" + e->d_name + "/site-packages");
    }
    ::closedir(d);
  }
  for (const std::string& site : sites) {
    const std::string path = openblas_in(site);
    if (!path.empty()) return load_blas("openblas", path);
  }
  throw std::runtime_error(where + ": the program multiplies matrices and no BLAS was found: set "
                           "HYBRID_BLAS_LIBRARY to an OpenBLAS library (scipy-openblas32's, or "
                           "HYBRID_BLAS_PROVIDER=mkl with libmkl_rt)");
}

void* open_kernels(const std::string& blob, const std::string& where) {
  if (blob.size() < 4 || blob.compare(0, 4, "\x7f" "ELF") != 0) bad(where, "the kernels section is not a shared object");
  const int fd = ::memfd_create("hybrid-kernels", MFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error(where + ": memfd_create failed");
  std::size_t put = 0;
  while (put < blob.size()) {
    const ssize_t n = ::write(fd, blob.data() + put, blob.size() - put);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error(where + ": could not stage the kernels");
    }
    put += std::size_t(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ::close(fd);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    bad(where, std::string("the kernels could not be loaded: ") + (why ? why : "?"));
  }
  return handle;
}

}  // namespace

std::size_t TensorSig::nbytes() const {
  std::size_t n = itemsize(dtype);
  for (int64_t d : shape) n *= std::size_t(d);
  return n;
}

std::map<std::string, Tensor> parse_safetensors(const std::string& bytes) {
  if (bytes.size() < 8) throw std::invalid_argument("safetensors: too short");
  const std::uint64_t n = read_le<std::uint64_t>(bytes, 0);
  if (n > bytes.size() - 8) throw std::invalid_argument("safetensors: header past the end");
  const json header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + long(n), nullptr, false);
  if (!header.is_object()) throw std::invalid_argument("safetensors: the header is not a JSON object");
  const std::size_t base = 8 + std::size_t(n);
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = "safetensors: tensor '" + name + "'";
    const auto& names = safetensors_names();
    const json& dt = need(t, "dtype", json::value_t::string, where);
    auto it = names.find(dt.get<std::string>());
    if (it == names.end()) throw std::invalid_argument(where + ": unsupported dtype " + dt.dump());
    Tensor tensor;
    tensor.dtype = it->second;
    std::size_t count = 1;
    for (const json& d : need(t, "shape", json::value_t::array, where)) {
      if (!d.is_number_unsigned() || d.get<std::uint64_t>() > kMaxBytes) throw std::invalid_argument(where + ": shape");
      tensor.shape.push_back(d.get<int64_t>());
      count *= std::size_t(d.get<std::uint64_t>());
      if (count > kMaxBytes) throw std::invalid_argument(where + ": too large");
    }
    const json& offs = need(t, "data_offsets", json::value_t::array, where);
    if (offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) throw std::invalid_argument(where + ": data_offsets");
    const std::uint64_t lo = offs[0].get<std::uint64_t>(), hi = offs[1].get<std::uint64_t>();
    if (lo > hi || hi > bytes.size() - base || hi - lo != count * itemsize(tensor.dtype)) {
      throw std::invalid_argument(where + ": data_offsets do not match the shape and the file");
    }
    tensor.data = bytes.substr(base + lo, hi - lo);
    out.emplace(name, std::move(tensor));
  }
  return out;
}

std::string write_safetensors(const std::map<std::string, Tensor>& tensors) {
  json header = json::object();
  std::string body;
  for (const auto& [name, t] : tensors) {
    std::string code;
    for (const auto& [st, np] : safetensors_names()) {
      if (np == t.dtype) code = st;
    }
    header[name] = {{"dtype", code}, {"shape", t.shape},
                    {"data_offsets", {body.size(), body.size() + t.data.size()}}};
    body += t.data;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const std::uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  return out + text + body;
}

Program::Program(const std::string& path) {
  const std::string where = path;
  const std::string data = read_regular_file(path);
  if (data.size() < kHead) bad(where, "too short for an exported program (truncated?)");
  if (data.compare(0, 8, "HYBRIDEX") != 0) bad(where, "not an exported hybrid program (bad magic)");
  const auto version = read_le<std::uint32_t>(data, 8);
  if (version != kArtifactVersion) {
    bad(where, "format version " + std::to_string(version) + "; this runtime reads version " +
                   std::to_string(kArtifactVersion) + ": export the model again");
  }
  const auto n = read_le<std::uint64_t>(data, 16);
  if (read_le<std::uint32_t>(data, 12) != 0 || n > data.size() - kHead) bad(where, "the header is damaged");
  const std::string text = data.substr(kHead, n);
  const auto digest = sha256(text);
  if (std::memcmp(digest.data(), data.data() + 24, 32) != 0) bad(where, "the manifest does not match its hash");
  const json m = json::parse(text, nullptr, false);
  if (!m.is_object()) bad(where, "the manifest is not a JSON object");
  const json& secs = need(m, "sections", json::value_t::object, where);
  std::map<std::string, std::string> section;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
  for (const char* name : {"plan", "kernels", "weights"}) {
    const json& s = need(secs, name, json::value_t::object, where);
    const auto off = need(s, "offset", json::value_t::number_unsigned, where).get<std::uint64_t>();
    const auto size = need(s, "size", json::value_t::number_unsigned, where).get<std::uint64_t>();
    if (off < kHead + n || size > data.size() || off > data.size() - size) bad(where, std::string("section '") + name + "' lies outside the file");
    section[name] = data.substr(off, size);
    if (sha256_hex(section[name]) != need(s, "sha256", json::value_t::string, where).get<std::string>()) {
      bad(where, std::string("section '") + name + "' does not match its hash");
    }
    spans.emplace_back(off, off + size);
  }
  if (secs.size() != 3) bad(where, "malformed manifest: sections");
  std::sort(spans.begin(), spans.end());
  std::uint64_t at = kHead + n;
  for (const auto& [lo, hi] : spans) {
    if (lo < at || std::any_of(data.begin() + long(at), data.begin() + long(lo), [](char c) { return c != 0; })) {
      bad(where, "bytes outside the hashed sections were modified or sections overlap");
    }
    at = hi;
  }
  if (at != data.size()) bad(where, "bytes follow the last section");
  // the machine
  const json& target = need(m, "target", json::value_t::object, where);
  utsname un{};
  ::uname(&un);
  const std::string machine = need(target, "machine", json::value_t::string, where).get<std::string>();
  if (machine != un.machine || need(target, "platform", json::value_t::string, where) != "linux") {
    throw std::runtime_error(where + ": compiled for " + target["platform"].get<std::string>() + "/" +
                             machine + ", this is linux/" + un.machine);
  }
  const std::set<std::string> have = cpu_features();
  std::string missing;
  for (const json& f : need(target, "features", json::value_t::array, where)) {
    if (!f.is_string()) bad(where, "malformed manifest: features");
    if (!have.count(f.get<std::string>())) missing += (missing.empty() ? "" : ", ") + f.get<std::string>();
  }
  if (!missing.empty()) {
    throw std::runtime_error(where + ": compiled for a CPU with " + missing +
                             ", which this CPU lacks: export it again on this machine");
  }
  inputs_ = signatures(need(m, "inputs", json::value_t::array, where), where);
  outputs_ = signatures(need(m, "outputs", json::value_t::array, where), where);
  try {
    weights_ = parse_safetensors(section["weights"]);
  } catch (const std::invalid_argument& e) {
    bad(where, std::string("the weights section: ") + e.what());
  }
  auto weight = [&](const json& name) -> const Tensor& {
    if (!name.is_string() || !weights_.count(name.get<std::string>())) bad(where, "the weights section lacks " + name.dump());
    return weights_.at(name.get<std::string>());
  };
  for (const json& o : outputs_.empty() ? json::array() : m.at("outputs")) {
    Source s{need(o, "kind", json::value_t::string, where).get<std::string>(),
             need(o, "index", json::value_t::number_unsigned, where).get<int64_t>(), ""};
    if (s.kind == "const") s.weight = need(o, "weight", json::value_t::string, where).get<std::string>(), weight(s.weight);
    else if (s.kind != "run" && s.kind != "input" && s.kind != "copy") bad(where, "malformed manifest: output kind");
    sources_.push_back(s);
  }
  for (const json& b : need(m, "bound", json::value_t::array, where)) bound_.push_back(weight(b).data.data());
  std::vector<ConstantData> constants;
  for (const json& c : need(m, "constants", json::value_t::array, where)) {
    constants.push_back({weight(c).data.data(), weight(c).data.size()});
  }
  for (const auto& [code, message] : need(m, "errors", json::value_t::object, where).items()) {
    if (message.is_string()) errors_[code] = message.get<std::string>();
  }
  // everything checked: map the kernels, resolve them, validate the plan
  library_ = open_kernels(section["kernels"], where);
  PlanDesc plan;
  try {
    plan = parse_plan(section["plan"], [this](const std::string& symbol) {
      return reinterpret_cast<std::uintptr_t>(::dlsym(library_, symbol.c_str()));
    });
  } catch (const std::invalid_argument& e) {
    bad(where, std::string("the plan: ") + e.what());
  }
  flag_ = plan.error_flag >= 0;
  const bool gemm = std::any_of(plan.steps.begin(), plan.steps.end(),
                                [](const Step& s) { return std::holds_alternative<GemmStep>(s); });
  if (plan.inputs.size() != inputs_.size() + bound_.size() + flag_) bad(where, "the plan's inputs do not match the manifest");
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    const Source& s = sources_[i];
    const std::size_t limit = s.kind == "run" ? plan.outputs.size() : s.kind == "input" ? inputs_.size() : s.kind == "copy" ? i : 1;
    if (std::size_t(s.index) >= limit) bad(where, "malformed manifest: output " + std::to_string(i));
    if (s.kind == "run" && plan.buffers.at(std::size_t(plan.outputs[std::size_t(s.index)])).nbytes != int64_t(outputs_[i].nbytes())) {
      bad(where, "output " + std::to_string(i) + " does not match the plan");
    }
    if (s.kind == "const" && weights_.at(s.weight).data.size() != outputs_[i].nbytes()) bad(where, "constant output size");
  }
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    if (plan.buffers.at(std::size_t(plan.inputs[i])).nbytes != int64_t(inputs_[i].nbytes())) bad(where, "input sizes do not match the plan");
  }
  try {
    exec_ = std::make_unique<Executor>(std::move(plan), constants, gemm ? find_blas(where) : BlasLibrary{});
  } catch (const std::invalid_argument& e) {
    bad(where, std::string("the runtime refused the plan: ") + e.what());
  }
}

Program::~Program() {
  exec_.reset();
  if (library_ != nullptr) ::dlclose(library_);
}

void Program::run(const void* const* inputs, void* const* outputs) {
  const PlanDesc& plan = exec_->plan();
  std::vector<void*> in;
  for (std::size_t i = 0; i < inputs_.size(); ++i) in.push_back(const_cast<void*>(inputs[i]));
  for (const void* b : bound_) in.push_back(const_cast<void*>(b));
  int64_t flag[2] = {0, 0};
  if (flag_) in.push_back(flag);
  std::vector<std::string> computed(plan.outputs.size());
  std::vector<void*> out(plan.outputs.size());
  for (std::size_t j = 0; j < plan.outputs.size(); ++j) {
    computed[j].resize(std::size_t(plan.buffers.at(std::size_t(plan.outputs[j])).nbytes));
    out[j] = computed[j].data();
  }
  exec_->run(in.data(), out.data());
  if (flag[0] != 0) {
    auto it = errors_.find(std::to_string(flag[0]));
    throw std::runtime_error(it != errors_.end() ? it->second : "an index is out of bounds");
  }
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    const Source& s = sources_[i];
    const std::size_t nbytes = outputs_[i].nbytes();
    const void* from = s.kind == "run" ? computed[std::size_t(s.index)].data()
                       : s.kind == "input" ? inputs[s.index]
                       : s.kind == "copy" ? outputs[s.index]
                                          : static_cast<const void*>(weights_.at(s.weight).data.data());
    std::memcpy(outputs[i], from, nbytes);
  }
}

}  // namespace hybrid
