#include "hybrid/arena.h"

#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace hybrid {

namespace {

// std::aligned_alloc requires the size to be a non-zero multiple of the alignment.
std::size_t padded_size(std::size_t nbytes) {
  if (nbytes > SIZE_MAX - kArenaAlignment) throw std::bad_alloc();
  const std::size_t rounded = (nbytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
  return rounded == 0 ? kArenaAlignment : rounded;
}

}  // namespace

Arena::Arena(std::size_t nbytes) : nbytes_(nbytes) {
  const std::size_t size = padded_size(nbytes);
  auto* raw = static_cast<std::byte*>(std::aligned_alloc(kArenaAlignment, size));
  if (raw == nullptr) throw std::bad_alloc();
  data_.reset(raw);
  std::memset(raw, 0, size);
}

std::byte* Arena::at(std::size_t offset, std::size_t nbytes) const {
  // NOTE: written as two comparisons so that offset + nbytes cannot overflow.
  if (offset > nbytes_ || nbytes > nbytes_ - offset) {
    throw std::out_of_range("Arena view (offset=" + std::to_string(offset) +
                            ", size=" + std::to_string(nbytes) + ") does not fit in arena of " +
                            std::to_string(nbytes_) + " bytes");
  }
  return data_.get() + offset;
}

}  // namespace hybrid
