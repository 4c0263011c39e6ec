// GGUF v3 (also reads v2) reader and writer. Knows nothing of models.
//
// Reader: the file is mmapped read-only; metadata is parsed into Values, the
// tensor table into TensorInfo whose `data` points into the mapping. Every
// count, length, offset and size is validated against the file size before it
// is used, so a truncated, corrupt or hostile file yields a Status naming the
// problem — never a crash, hang, huge allocation or out-of-bounds read.
// Writer: writes any file the reader reads (tests and tools use it).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace reprise::gguf {

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* ValueTypeName(ValueType t);

// One metadata value. Scalars are stored widened (integers in `i`/`u`, floats
// in `f`); arrays carry their element type and items (nested arrays allowed).
struct Value {
  ValueType type = ValueType::kUint8;
  ValueType elem_type = ValueType::kUint8;  // arrays only
  uint64_t u = 0;                           // unsigned integer types and bool
  int64_t i = 0;                            // signed integer types
  double f = 0;                             // float types
  std::string s;                            // strings
  std::vector<Value> items;                 // arrays

  bool is_integer() const;
  bool is_float() const;

  static Value Uint8(uint8_t v);
  static Value Int8(int8_t v);
  static Value Uint16(uint16_t v);
  static Value Int16(int16_t v);
  static Value Uint32(uint32_t v);
  static Value Int32(int32_t v);
  static Value Uint64(uint64_t v);
  static Value Int64(int64_t v);
  static Value Float32(float v);
  static Value Float64(double v);
  static Value Bool(bool v);
  static Value String(std::string v);
  static Value Array(ValueType elem_type, std::vector<Value> items);
  static Value StringArray(const std::vector<std::string>& v);
  static Value Float32Array(std::span<const float> v);
  static Value Int32Array(std::span<const int32_t> v);
};

struct TensorInfo {
  std::string name;
  DType type = DType::kF32;
  // Dimensions in GGUF order: ne[0] varies fastest (the row length). An HF
  // Linear weight [out, in] is stored with ne = {in, out}.
  std::vector<int64_t> ne;
  uint64_t offset = 0;            // relative to the start of the data section
  uint64_t n_bytes = 0;           // validated against the file size
  const uint8_t* data = nullptr;  // into the mapping; valid while the File lives

  int64_t n_elements() const;
};

class File {
 public:
  // Opens and validates `path`. Errors name the file and the problem.
  static Result<std::unique_ptr<File>> Open(const std::string& path);
  // Parses an in-memory image (tests, fuzzing). The File keeps its own copy.
  static Result<std::unique_ptr<File>> FromBuffer(std::vector<uint8_t> bytes);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  const Value* Find(std::string_view key) const;  // nullptr if absent
  bool Has(std::string_view key) const { return Find(key) != nullptr; }

  // Typed getters: an error names the key when it is missing or of the wrong
  // type. Integer getters accept any integer type whose value fits; float
  // getters accept float and integer types.
  Result<std::string> GetString(std::string_view key) const;
  Result<int64_t> GetInt(std::string_view key) const;
  Result<double> GetFloat(std::string_view key) const;
  Result<bool> GetBool(std::string_view key) const;
  Result<std::vector<std::string>> GetStringArray(std::string_view key) const;
  Result<std::vector<float>> GetFloatArray(std::string_view key) const;
  Result<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  // With defaults when absent (still an error when present with a wrong type).
  Result<int64_t> GetIntOr(std::string_view key, int64_t def) const;
  Result<double> GetFloatOr(std::string_view key, double def) const;
  Result<bool> GetBoolOr(std::string_view key, bool def) const;
  Result<std::string> GetStringOr(std::string_view key, std::string def) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(std::string_view name) const;  // nullptr if absent

 private:
  File() = default;
  friend class Parser;

  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* mapping_ = nullptr;        // mmap'd region (or nullptr)
  std::vector<uint8_t> buffer_;    // owned image for FromBuffer
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<TensorInfo> tensors_;
};

class Writer {
 public:
  // Sets (or replaces, keeping its position) a metadata key.
  void Set(const std::string& key, Value value);
  // Copies every metadata key of `file` whose name starts with `prefix`,
  // except general.alignment (the output's alignment is SetAlignment's).
  void CopyMetadata(const File& file, std::string_view prefix = "");
  void SetAlignment(uint64_t alignment);  // default 32; written as general.alignment if != 32
  // Adds a tensor. `data` must hold exactly the bytes the type and shape imply
  // (CHECKed: this is a programmer error).
  void AddTensor(const std::string& name, DType type, std::vector<int64_t> ne,
                 std::vector<uint8_t> data);

  Status WriteFile(const std::string& path) const;
  std::vector<uint8_t> WriteToBuffer() const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace reprise::gguf
