// An exported program (hybrid/export_format.py writes it) loaded without Python: the file's
// header, manifest and sections checked (hashes, bounds, CPU, version) before the kernels'
// shared object is opened, then run through an Executor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hybrid/executor.h"

namespace hybrid {

constexpr std::uint32_t kArtifactVersion = 1;

struct TensorSig {
  std::string name;
  std::string dtype;  // numpy name: "float32"
  std::vector<int64_t> shape;
  std::size_t nbytes() const;
};

struct Tensor {  // one array of a safetensors file
  std::string dtype;
  std::vector<int64_t> shape;
  std::string data;
};

// {name: tensor} of safetensors bytes; std::invalid_argument when malformed.
std::map<std::string, Tensor> parse_safetensors(const std::string& bytes);
std::string write_safetensors(const std::map<std::string, Tensor>& tensors);

class Program {
 public:
  // std::invalid_argument (a bad file) or std::runtime_error (cannot run here) with a message
  // naming what was expected.
  explicit Program(const std::string& path);
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  const std::vector<TensorSig>& inputs() const { return inputs_; }
  const std::vector<TensorSig>& outputs() const { return outputs_; }
  // inputs[i]: the data of input i (its signature's bytes); outputs[j] receives output j.
  // std::runtime_error on a run-time error (an index out of bounds).
  void run(const void* const* inputs, void* const* outputs);

 private:
  struct Source {
    std::string kind;  // run | input | copy | const
    int64_t index = 0;
    std::string weight;
  };
  std::vector<TensorSig> inputs_, outputs_;
  std::vector<Source> sources_;
  std::map<std::string, Tensor> weights_;
  std::vector<const void*> bound_;
  std::map<std::string, std::string> errors_;
  std::unique_ptr<Executor> exec_;
  void* library_ = nullptr;
  bool flag_ = false;
};

}  // namespace hybrid
