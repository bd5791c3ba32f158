// One aligned, zero-initialized block of memory: the backing store of a Plan.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace hybrid {

// Alignment of every Arena, in bytes: a cache line and a full AVX-512 vector.
inline constexpr std::size_t kArenaAlignment = 64;

// Owns one 64-byte-aligned allocation of `nbytes` zeroed bytes, freed on destruction.
// Move-only. A zero-byte arena still owns a (minimal) valid, aligned allocation.
class Arena {
 public:
  explicit Arena(std::size_t nbytes);

  Arena(Arena&&) noexcept = default;
  Arena& operator=(Arena&&) noexcept = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  std::byte* data() const { return data_.get(); }
  std::size_t nbytes() const { return nbytes_; }

  // Pointer to [offset, offset + nbytes) inside the arena; throws std::out_of_range
  // (message names offset, size and arena size) if the range does not fit.
  std::byte* at(std::size_t offset, std::size_t nbytes) const;

 private:
  struct FreeDeleter {
    void operator()(std::byte* p) const noexcept { std::free(p); }
  };

  std::unique_ptr<std::byte, FreeDeleter> data_;
  std::size_t nbytes_ = 0;
};

}  // namespace hybrid
