// The plan format: versioned JSON bytes, written by compiler/plan.py (`Plan.to_bytes`) and
// read here, the one parser (docs/architecture.md, "The plan format"). An exported artifact
// holds the same bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "hybrid/plan.h"

namespace hybrid {

// The version this runtime reads (compiler/plan.py's PLAN_VERSION must equal it).
constexpr int kPlanVersion = 2;  // 2: buffers have a memory space

// Address of a kernel symbol (0: unknown): the JIT's, or a loaded shared object's.
using SymbolResolver = std::function<std::uintptr_t(const std::string& symbol)>;

// Parses plan bytes; every kernel step's symbol is resolved through `resolve`.
// std::invalid_argument ("malformed plan: ...", naming the field, buffer or step) on bad JSON,
// a wrong version, unknown or missing fields, wrong types or unresolved symbols. The ids,
// bounds and dtypes are checked by validate_plan, which the Executor runs on every plan.
PlanDesc parse_plan(std::string_view bytes, const SymbolResolver& resolve);

}  // namespace hybrid
