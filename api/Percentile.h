#pragma once
// Order statistics of latencies, as the load generators print them.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace warden::api {

// The p-quantile (p = 1: the largest) of latencies in microseconds, in milliseconds; 0 when
// empty. Reorders `micros` partially (nth_element).
inline double percentileMs(std::vector<std::uint32_t>& micros, double p) {
  if (micros.empty()) return 0;
  const std::size_t i = std::min(micros.size() - 1, static_cast<std::size_t>(p * static_cast<double>(micros.size())));
  std::nth_element(micros.begin(), micros.begin() + static_cast<std::ptrdiff_t>(i), micros.end());
  return micros[i] / 1000.0;
}

}  // namespace warden::api
