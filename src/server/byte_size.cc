// Byte-size parsing and formatting (see byte_size.h).
#include "server/byte_size.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace reprise::server {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<int64_t> ParseByteSize(std::string_view text) {
  const std::string original(text);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.empty()) return Errorf("empty size");
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  const std::string number(text.substr(0, i));
  if (number.empty() || number == "." || number.find('.') != number.rfind('.')) {
    return Errorf("invalid size '%s' (use e.g. 512M, 8G, 8GiB or plain bytes)", original.c_str());
  }
  std::string_view unit_view = text.substr(i);
  while (!unit_view.empty() && unit_view.front() == ' ') unit_view.remove_prefix(1);
  const std::string unit = Lower(unit_view);
  int shift = -1;
  if (unit.empty() || unit == "b") {
    shift = 0;
  } else {
    static constexpr const char kPrefixes[] = "kmgtp";
    for (int p = 0; kPrefixes[p] != '\0'; ++p) {
      const std::string k(1, kPrefixes[p]);
      if (unit == k || unit == k + "b" || unit == k + "i" || unit == k + "ib") shift = 10 * (p + 1);
    }
  }
  if (shift < 0) {
    return Errorf("invalid size unit in '%s' (use K, M, G, T, optionally with iB or B)",
                  original.c_str());
  }
  const long double value = std::strtold(number.c_str(), nullptr) * std::ldexp(1.0L, shift);
  if (!std::isfinite(value) ||
      value > static_cast<long double>(std::numeric_limits<int64_t>::max())) {
    return Errorf("size '%s' is too large", original.c_str());
  }
  if (shift == 0 && number.find('.') != std::string::npos) {
    return Errorf("invalid size '%s': plain bytes must be a whole number", original.c_str());
  }
  return static_cast<int64_t>(value);
}

std::string FormatBytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (std::fabs(v) >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0) return StrFormat("%lld B", static_cast<long long>(bytes));
  return StrFormat("%.1f %s", v, kUnits[u]);
}

}  // namespace reprise::server
