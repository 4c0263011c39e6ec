// Metadata values and the File's typed getters. Owns: Value constructors,
// type names, and the conversions getters allow (integers that fit, integers
// read as floats). Does not own parsing or writing (reader.cc, writer.cc).
#include <cmath>
#include <limits>

#include "gguf/gguf.h"

namespace reprise::gguf {

const char* ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
      return "uint8";
    case ValueType::kInt8:
      return "int8";
    case ValueType::kUint16:
      return "uint16";
    case ValueType::kInt16:
      return "int16";
    case ValueType::kUint32:
      return "uint32";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kFloat32:
      return "float32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kUint64:
      return "uint64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

namespace {

bool IsSigned(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 ||
         t == ValueType::kInt64;
}
bool IsUnsigned(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
         t == ValueType::kUint64;
}
bool IsFloatType(ValueType t) { return t == ValueType::kFloat32 || t == ValueType::kFloat64; }

Value Unsigned(ValueType t, uint64_t v) {
  Value out;
  out.type = t;
  out.u = v;
  return out;
}
Value Signed(ValueType t, int64_t v) {
  Value out;
  out.type = t;
  out.i = v;
  return out;
}
Value Floating(ValueType t, double v) {
  Value out;
  out.type = t;
  out.f = v;
  return out;
}

// The value of an integer Value as int64, or an error when it does not fit.
Result<int64_t> AsInt(const Value& v, std::string_view key) {
  if (IsSigned(v.type)) return v.i;
  if (IsUnsigned(v.type)) {
    if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Errorf("metadata key '%.*s': value %llu does not fit in int64",
                    static_cast<int>(key.size()), key.data(), static_cast<unsigned long long>(v.u));
    }
    return static_cast<int64_t>(v.u);
  }
  return Errorf("metadata key '%.*s' is %s, expected an integer", static_cast<int>(key.size()),
                key.data(), ValueTypeName(v.type));
}

double AsDouble(const Value& v) {
  if (IsFloatType(v.type)) return v.f;
  if (IsSigned(v.type)) return static_cast<double>(v.i);
  return static_cast<double>(v.u);
}

Status WrongType(std::string_view key, const Value& v, const char* expected) {
  std::string got = ValueTypeName(v.type);
  if (v.type == ValueType::kArray) got += StrFormat(" of %s", ValueTypeName(v.elem_type));
  return Errorf("metadata key '%.*s' is %s, expected %s", static_cast<int>(key.size()), key.data(),
                got.c_str(), expected);
}

Status Missing(std::string_view key) {
  return Errorf("metadata key '%.*s' is missing", static_cast<int>(key.size()), key.data());
}

}  // namespace

bool Value::is_integer() const { return IsSigned(type) || IsUnsigned(type); }
bool Value::is_float() const { return IsFloatType(type); }

Value Value::Uint8(uint8_t v) { return Unsigned(ValueType::kUint8, v); }
Value Value::Int8(int8_t v) { return Signed(ValueType::kInt8, v); }
Value Value::Uint16(uint16_t v) { return Unsigned(ValueType::kUint16, v); }
Value Value::Int16(int16_t v) { return Signed(ValueType::kInt16, v); }
Value Value::Uint32(uint32_t v) { return Unsigned(ValueType::kUint32, v); }
Value Value::Int32(int32_t v) { return Signed(ValueType::kInt32, v); }
Value Value::Uint64(uint64_t v) { return Unsigned(ValueType::kUint64, v); }
Value Value::Int64(int64_t v) { return Signed(ValueType::kInt64, v); }
Value Value::Float32(float v) { return Floating(ValueType::kFloat32, v); }
Value Value::Float64(double v) { return Floating(ValueType::kFloat64, v); }
Value Value::Bool(bool v) { return Unsigned(ValueType::kBool, v ? 1 : 0); }

Value Value::String(std::string v) {
  Value out;
  out.type = ValueType::kString;
  out.s = std::move(v);
  return out;
}

Value Value::Array(ValueType elem_type, std::vector<Value> items) {
  Value out;
  out.type = ValueType::kArray;
  out.elem_type = elem_type;
  out.items = std::move(items);
  return out;
}

Value Value::StringArray(const std::vector<std::string>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (const std::string& s : v) items.push_back(String(s));
  return Array(ValueType::kString, std::move(items));
}

Value Value::Float32Array(std::span<const float> v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(Float32(x));
  return Array(ValueType::kFloat32, std::move(items));
}

Value Value::Int32Array(std::span<const int32_t> v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(Int32(x));
  return Array(ValueType::kInt32, std::move(items));
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // validated by the reader not to overflow
  return n;
}

// ---- File getters ----

const Value* File::Find(std::string_view key) const {
  for (const auto& [k, v] : metadata_) {
    if (k == key) return &v;
  }
  return nullptr;
}

const TensorInfo* File::FindTensor(std::string_view name) const {
  for (const TensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Result<std::string> File::GetString(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kString) return WrongType(key, *v, "string");
  return v->s;
}

Result<int64_t> File::GetInt(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  return AsInt(*v, key);
}

Result<double> File::GetFloat(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (!v->is_float() && !v->is_integer()) return WrongType(key, *v, "a number");
  return AsDouble(*v);
}

Result<bool> File::GetBool(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kBool) return WrongType(key, *v, "bool");
  return v->u != 0;
}

Result<std::vector<std::string>> File::GetStringArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kArray || v->elem_type != ValueType::kString) {
    return WrongType(key, *v, "array of string");
  }
  std::vector<std::string> out;
  out.reserve(v->items.size());
  for (const Value& item : v->items) out.push_back(item.s);
  return out;
}

Result<std::vector<float>> File::GetFloatArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kArray ||
      !(IsFloatType(v->elem_type) || IsSigned(v->elem_type) || IsUnsigned(v->elem_type))) {
    return WrongType(key, *v, "array of numbers");
  }
  std::vector<float> out;
  out.reserve(v->items.size());
  for (const Value& item : v->items) out.push_back(static_cast<float>(AsDouble(item)));
  return out;
}

Result<std::vector<int64_t>> File::GetIntArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kArray || !(IsSigned(v->elem_type) || IsUnsigned(v->elem_type))) {
    return WrongType(key, *v, "array of integers");
  }
  std::vector<int64_t> out;
  out.reserve(v->items.size());
  for (const Value& item : v->items) {
    ASSIGN_OR_RETURN(int64_t x, AsInt(item, key));
    out.push_back(x);
  }
  return out;
}

Result<int64_t> File::GetIntOr(std::string_view key, int64_t def) const {
  if (!Has(key)) return def;
  return GetInt(key);
}

Result<double> File::GetFloatOr(std::string_view key, double def) const {
  if (!Has(key)) return def;
  return GetFloat(key);
}

Result<bool> File::GetBoolOr(std::string_view key, bool def) const {
  if (!Has(key)) return def;
  return GetBool(key);
}

Result<std::string> File::GetStringOr(std::string_view key, std::string def) const {
  if (!Has(key)) return def;
  return GetString(key);
}

}  // namespace reprise::gguf
