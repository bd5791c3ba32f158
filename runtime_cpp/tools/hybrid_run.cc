// hybrid-run: runs an exported program from the command line, with no Python.
//   hybrid-run model.hyb --input in.safetensors --output out.safetensors [--bench N]
// Inputs and outputs are safetensors files whose tensors are named as the program's signature
// (`hybrid-run model.hyb` alone prints it). Exit status 0 on success, 1 with a message on error.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "hybrid/artifact.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::invalid_argument("cannot open " + path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int usage() {
  std::fprintf(stderr,
               "usage: hybrid-run MODEL.hyb [--input IN.safetensors] [--output OUT.safetensors] "
               "[--bench N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string model = argv[1], in_path, out_path;
  long bench = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    if (a == "--input") in_path = argv[++i];
    else if (a == "--output") out_path = argv[++i];
    else if (a == "--bench") bench = std::strtol(argv[++i], nullptr, 10);
    else return usage();
  }
  try {
    const auto t0 = Clock::now();
    hybrid::Program program(model);
    const double load_ms = ms_since(t0);
    if (in_path.empty()) {
      for (const auto& s : program.inputs()) std::printf("input  %s: %s %s\n", s.name.c_str(), s.dtype.c_str(), shape_str(s.shape).c_str());
      for (const auto& s : program.outputs()) std::printf("output %s: %s %s\n", s.name.c_str(), s.dtype.c_str(), shape_str(s.shape).c_str());
      return 0;
    }
    const auto tensors = hybrid::parse_safetensors(read_all(in_path));
    std::vector<const void*> inputs;
    for (const auto& s : program.inputs()) {
      auto it = tensors.find(s.name);
      if (it == tensors.end()) {
        throw std::invalid_argument(in_path + ": no tensor named '" + s.name + "' (the program takes " + s.name + ": " + s.dtype + " " + shape_str(s.shape) + ")");
      }
      if (it->second.dtype != s.dtype || it->second.shape != s.shape) {
        throw std::invalid_argument(in_path + ": tensor '" + s.name + "' is " + it->second.dtype + " " + shape_str(it->second.shape) + ", the program expects " + s.dtype + " " + shape_str(s.shape));
      }
      inputs.push_back(it->second.data.data());
    }
    std::map<std::string, hybrid::Tensor> results;
    std::vector<void*> outputs;
    for (const auto& s : program.outputs()) {
      auto& t = results[s.name];
      t.dtype = s.dtype;
      t.shape = s.shape;
      t.data.resize(s.nbytes());
    }
    for (const auto& s : program.outputs()) outputs.push_back(results[s.name].data.data());
    const auto t1 = Clock::now();
    program.run(inputs.data(), outputs.data());
    const double first_ms = ms_since(t1);
    if (bench > 0) {
      std::vector<double> times;
      for (long r = 0; r < bench; ++r) {
        const auto t = Clock::now();
        program.run(inputs.data(), outputs.data());
        times.push_back(ms_since(t));
      }
      std::sort(times.begin(), times.end());
      std::printf("load %.3f ms, first run %.3f ms, median of %ld runs %.4f ms (min %.4f)\n",
                  load_ms, first_ms, bench, times[times.size() / 2], times[0]);
    }
    if (!out_path.empty()) {
      std::ofstream f(out_path, std::ios::binary);
      const std::string bytes = hybrid::write_safetensors(results);
      f.write(bytes.data(), std::streamsize(bytes.size()));
      if (!f) throw std::runtime_error("cannot write " + out_path);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hybrid-run: %s\n", e.what());
    return 1;
  }
  return 0;
}
