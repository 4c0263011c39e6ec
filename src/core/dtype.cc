#include "core/dtype.h"

#include <cctype>

#include "core/check.h"

namespace reprise {
namespace {
struct Entry {
  uint32_t id;
  DTypeInfo info;
};
constexpr Entry kTypes[] = {
    {0, {"F32", 1, 4}},          {1, {"F16", 1, 2}},          {2, {"Q4_0", 32, 18}},
    {3, {"Q4_1", 32, 20}},       {6, {"Q5_0", 32, 22}},       {7, {"Q5_1", 32, 24}},
    {8, {"Q8_0", 32, 34}},       {9, {"Q8_1", 32, 36}},       {10, {"Q2_K", 256, 84}},
    {11, {"Q3_K", 256, 110}},    {12, {"Q4_K", 256, 144}},    {13, {"Q5_K", 256, 176}},
    {14, {"Q6_K", 256, 210}},    {15, {"Q8_K", 256, 292}},    {16, {"IQ2_XXS", 256, 66}},
    {17, {"IQ2_XS", 256, 74}},   {18, {"IQ3_XXS", 256, 98}},  {19, {"IQ1_S", 256, 50}},
    {20, {"IQ4_NL", 32, 18}},    {21, {"IQ3_S", 256, 110}},   {22, {"IQ2_S", 256, 82}},
    {23, {"IQ4_XS", 256, 136}},  {24, {"I8", 1, 1}},          {25, {"I16", 1, 2}},
    {26, {"I32", 1, 4}},         {27, {"I64", 1, 8}},         {28, {"F64", 1, 8}},
    {29, {"IQ1_M", 256, 56}},    {30, {"BF16", 1, 2}},        {34, {"TQ1_0", 256, 54}},
    {35, {"TQ2_0", 256, 66}},    {39, {"MXFP4", 32, 17}},
};
}  // namespace

const DTypeInfo* GetDTypeInfo(uint32_t raw) {
  for (const Entry& e : kTypes) {
    if (e.id == raw) return &e.info;
  }
  return nullptr;
}

const char* DTypeName(DType t) {
  const DTypeInfo* info = GetDTypeInfo(static_cast<uint32_t>(t));
  return info ? info->name : "unknown";
}

std::optional<DType> ParseDType(const std::string& name) {
  std::string up;
  for (char c : name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const Entry& e : kTypes) {
    if (up == e.info.name) return static_cast<DType>(e.id);
  }
  return std::nullopt;
}

int64_t RowBytes(DType t, int64_t n_elems) {
  const DTypeInfo* info = GetDTypeInfo(static_cast<uint32_t>(t));
  CHECK(info != nullptr);
  CHECK_MSG(n_elems % info->block_elems == 0, "%lld elements not a multiple of %s block %lld",
            static_cast<long long>(n_elems), info->name, static_cast<long long>(info->block_elems));
  return n_elems / info->block_elems * info->block_bytes;
}

}  // namespace reprise
