// Human-readable byte sizes for flags such as --prompt-cache-bytes: parsing
// ("512M", "8G", "8GiB", "1.5G", plain bytes) and formatting for logs.
// Units are binary (K = KiB = 1024); a trailing "B" and an "i" are optional.
// Owns no state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace reprise::server {

// Errors: empty text, no digits, unknown unit, negative, overflow past int64.
Result<int64_t> ParseByteSize(std::string_view text);

// "512 B", "1.5 KiB", "8.0 GiB".
std::string FormatBytes(int64_t bytes);

}  // namespace reprise::server
