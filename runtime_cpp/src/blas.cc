#include "hybrid/blas.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace hybrid {

namespace {

[[noreturn]] void fail(const std::string& provider, const std::string& path,
                       const std::string& what) {
  throw std::runtime_error("BLAS '" + provider + "' from " + path + ": " + what);
}

// The first of `names` the library exports (0: none).
std::uintptr_t symbol(void* handle, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (void* address = dlsym(handle, name)) return reinterpret_cast<std::uintptr_t>(address);
  }
  return 0;
}

bool asks_for_ilp64() {
  const char* layer = std::getenv("MKL_INTERFACE_LAYER");
  if (layer == nullptr) return false;
  std::string text(layer);
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return text.find("ILP64") != std::string::npos;
}

std::string first_words(const std::string& text, int count) {
  std::string out;
  std::size_t pos = 0;
  for (int i = 0; i < count; ++i) {
    const std::size_t start = text.find_first_not_of(' ', pos);
    if (start == std::string::npos) break;
    const std::size_t end = std::min(text.find(' ', start), text.size());
    out += (out.empty() ? "" : " ") + text.substr(start, end - start);
    pos = end;
  }
  return out;
}

void describe_openblas(void* handle, BlasLibrary& lib, bool private_copy) {
  using GetConfig = const char* (*)();
  auto config = reinterpret_cast<GetConfig>(symbol(handle, {"scipy_openblas_get_config"}));
  const char* text = config ? config() : nullptr;
  const std::string words = text ? first_words(text, 2) : std::string("OpenBLAS");
  lib.name = words + (private_copy ? " (scipy-openblas32, 1 thread per call)"
                                   : " (SciPy's BLAS, its own threads)");
}

void describe_mkl(void* handle, BlasLibrary& lib) {
  using GetVersion = void (*)(char*, int);
  auto version = reinterpret_cast<GetVersion>(symbol(handle, {"MKL_Get_Version_String"}));
  std::string text = "oneMKL";
  if (version) {
    char buffer[256] = {};
    version(buffer, static_cast<int>(sizeof buffer - 1));  // the last byte stays NUL
    text = std::string(buffer);
    text = text.substr(0, text.find(" for "));
    for (std::size_t at; (at = text.find("(R)")) != std::string::npos;) text.erase(at, 3);
    text = first_words(text, 64);
  }
  lib.name = text + " (1 thread per call)";
}

}  // namespace

BlasLibrary load_blas(const std::string& provider, const std::string& path) {
  if (provider != "openblas" && provider != "mkl" && provider != "scipy") {
    throw std::invalid_argument("unknown BLAS provider '" + provider +
                                "'; known: openblas, mkl, scipy");
  }
  // NOTE: dlopen("") would return the main program, not a library.
  if (path.empty()) fail(provider, path, "no library path given");
  if (provider == "mkl" && asks_for_ilp64()) {
    fail(provider, path, "MKL_INTERFACE_LAYER asks for ILP64; hybrid calls MKL with LP64");
  }
  // NOTE: never dlclose'd: executors keep the addresses for the life of the process.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    fail(provider, path, std::string("cannot be opened: ") + (err ? err : "unknown error"));
  }
  BlasLibrary lib;
  lib.provider = provider;
  lib.path = path;
  if (provider == "mkl") {
    lib.sgemm = symbol(handle, {"sgemm_"});
    lib.dgemm = symbol(handle, {"dgemm_"});
    lib.threads_local = symbol(handle, {"MKL_Set_Num_Threads_Local"});
    lib.serial = true;
    if (lib.threads_local == 0) fail(provider, path, "no MKL_Set_Num_Threads_Local");
    describe_mkl(handle, lib);
  } else {
    lib.sgemm = symbol(handle, {"scipy_sgemm_", "sgemm_"});
    lib.dgemm = symbol(handle, {"scipy_dgemm_", "dgemm_"});
    if (provider == "openblas") {
      using SetThreads = void (*)(int);
      auto set = reinterpret_cast<SetThreads>(symbol(handle, {"scipy_openblas_set_num_threads"}));
      if (set == nullptr) fail(provider, path, "no scipy_openblas_set_num_threads");
      set(1);
      lib.serial = true;
    }
    describe_openblas(handle, lib, provider == "openblas");
  }
  if (!lib.loaded()) fail(provider, path, "exports no sgemm_/dgemm_");
  return lib;
}

}  // namespace hybrid
