// GGUF v3 writer. Owns serialization of metadata, the tensor table and the
// aligned data section; the same byte stream goes to a buffer or to a file
// (written as path + ".tmp", then renamed, so readers never see a partial
// file). Does not validate values against the reader's limits: callers build
// sane files. Invariants: general.alignment in the output always equals the
// alignment used for the layout; tensor data is padded to the alignment.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "gguf/gguf.h"

namespace reprise::gguf {
namespace {

constexpr uint32_t kDefaultAlignment = 32;
constexpr char kAlignmentKey[] = "general.alignment";

// Appends bytes to a vector or writes them to a FILE; remembers the first error.
class Sink {
 public:
  explicit Sink(std::vector<uint8_t>* out) : out_(out) {}
  explicit Sink(std::FILE* f) : file_(f) {}

  void Bytes(const void* p, size_t n) {
    written_ += n;
    if (out_ != nullptr) {
      const uint8_t* b = static_cast<const uint8_t*>(p);
      out_->insert(out_->end(), b, b + n);
    } else if (ok_ && n > 0 && std::fwrite(p, 1, n, file_) != n) {
      ok_ = false;
      errno_ = errno;
    }
  }
  template <class T>
  void Pod(T v) {
    Bytes(&v, sizeof(T));
  }
  void Str(const std::string& s) {
    Pod<uint64_t>(s.size());
    Bytes(s.data(), s.size());
  }
  void PadTo(uint64_t alignment) {
    static constexpr uint8_t kZeros[64] = {};
    uint64_t pad = (alignment - written_ % alignment) % alignment;
    while (pad > 0) {
      const uint64_t n = pad < sizeof(kZeros) ? pad : sizeof(kZeros);
      Bytes(kZeros, n);
      pad -= n;
    }
  }
  uint64_t written() const { return written_; }
  bool ok() const { return ok_; }
  int error() const { return errno_; }

 private:
  std::vector<uint8_t>* out_ = nullptr;
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
  bool ok_ = true;
  int errno_ = 0;
};

void WriteValueBody(Sink& sink, const Value& v);

void WriteArrayBody(Sink& sink, const Value& v) {
  sink.Pod<uint32_t>(static_cast<uint32_t>(v.elem_type));
  sink.Pod<uint64_t>(v.items.size());
  for (const Value& item : v.items) {
    CHECK_MSG(item.type == v.elem_type, "array of %s holds a %s item", ValueTypeName(v.elem_type),
              ValueTypeName(item.type));
    WriteValueBody(sink, item);
  }
}

void WriteValueBody(Sink& sink, const Value& v) {
  switch (v.type) {
    case ValueType::kUint8:
      sink.Pod<uint8_t>(static_cast<uint8_t>(v.u));
      return;
    case ValueType::kInt8:
      sink.Pod<int8_t>(static_cast<int8_t>(v.i));
      return;
    case ValueType::kUint16:
      sink.Pod<uint16_t>(static_cast<uint16_t>(v.u));
      return;
    case ValueType::kInt16:
      sink.Pod<int16_t>(static_cast<int16_t>(v.i));
      return;
    case ValueType::kUint32:
      sink.Pod<uint32_t>(static_cast<uint32_t>(v.u));
      return;
    case ValueType::kInt32:
      sink.Pod<int32_t>(static_cast<int32_t>(v.i));
      return;
    case ValueType::kUint64:
      sink.Pod<uint64_t>(v.u);
      return;
    case ValueType::kInt64:
      sink.Pod<int64_t>(v.i);
      return;
    case ValueType::kFloat32:
      sink.Pod<float>(static_cast<float>(v.f));
      return;
    case ValueType::kFloat64:
      sink.Pod<double>(v.f);
      return;
    case ValueType::kBool:
      sink.Pod<uint8_t>(v.u != 0 ? 1 : 0);
      return;
    case ValueType::kString:
      sink.Str(v.s);
      return;
    case ValueType::kArray:
      WriteArrayBody(sink, v);
      return;
  }
  CHECK_MSG(false, "unknown value type %u", static_cast<uint32_t>(v.type));
}

}  // namespace

void Writer::Set(const std::string& key, Value value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void Writer::CopyMetadata(const File& file, std::string_view prefix) {
  for (const auto& [key, value] : file.metadata()) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    if (key == kAlignmentKey) continue;  // layout is this writer's alignment
    Set(key, value);
  }
}

void Writer::SetAlignment(uint64_t alignment) {
  CHECK_MSG(alignment != 0 && (alignment & (alignment - 1)) == 0 && alignment <= UINT32_MAX,
            "alignment %llu is not a power of two that fits uint32",
            static_cast<unsigned long long>(alignment));
  alignment_ = alignment;
}

void Writer::AddTensor(const std::string& name, DType type, std::vector<int64_t> ne,
                       std::vector<uint8_t> data) {
  CHECK_MSG(!ne.empty() && ne.size() <= 4, "tensor '%s' has %zu dims", name.c_str(), ne.size());
  for (const PendingTensor& t : tensors_) {
    CHECK_MSG(t.name != name, "duplicate tensor '%s'", name.c_str());
  }
  int64_t rows = 1;
  for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
  for (int64_t d : ne) CHECK_MSG(d > 0, "tensor '%s' has a dimension <= 0", name.c_str());
  const int64_t expected = RowBytes(type, ne[0]) * rows;
  CHECK_MSG(static_cast<int64_t>(data.size()) == expected,
            "tensor '%s': %zu data bytes, shape and type imply %lld", name.c_str(), data.size(),
            static_cast<long long>(expected));
  tensors_.push_back(PendingTensor{name, type, std::move(ne), std::move(data)});
}

namespace {

// What gets written: the metadata with general.alignment made consistent,
// and views of the pending tensors.
struct TensorRef {
  const std::string* name;
  DType type;
  const std::vector<int64_t>* ne;
  const std::vector<uint8_t>* data;
};
struct Layout {
  uint64_t alignment = kDefaultAlignment;
  std::vector<std::pair<std::string, Value>> metadata;
  std::vector<TensorRef> tensors;
};

// `pending` is Writer's private tensor list (deduced, since its type is private).
Layout MakeLayout(uint64_t alignment, const std::vector<std::pair<std::string, Value>>& metadata,
                  const auto& pending) {
  Layout layout;
  layout.alignment = alignment;
  bool has_alignment = false;
  for (const auto& [key, value] : metadata) {
    if (key == kAlignmentKey) {
      has_alignment = true;
      layout.metadata.emplace_back(key, Value::Uint32(static_cast<uint32_t>(alignment)));
    } else {
      layout.metadata.emplace_back(key, value);
    }
  }
  if (!has_alignment && alignment != kDefaultAlignment) {
    layout.metadata.emplace_back(kAlignmentKey, Value::Uint32(static_cast<uint32_t>(alignment)));
  }
  for (const auto& t : pending) layout.tensors.push_back({&t.name, t.type, &t.ne, &t.data});
  return layout;
}

void Serialize(const Layout& layout, Sink& sink) {
  const uint64_t alignment = layout.alignment;
  sink.Pod<uint32_t>(0x46554747);  // "GGUF" as a little-endian u32
  sink.Pod<uint32_t>(3);
  sink.Pod<uint64_t>(layout.tensors.size());
  sink.Pod<uint64_t>(layout.metadata.size());
  for (const auto& [key, value] : layout.metadata) {
    sink.Str(key);
    sink.Pod<uint32_t>(static_cast<uint32_t>(value.type));
    WriteValueBody(sink, value);
  }
  uint64_t offset = 0;
  for (const TensorRef& t : layout.tensors) {
    sink.Str(*t.name);
    sink.Pod<uint32_t>(static_cast<uint32_t>(t.ne->size()));
    for (int64_t d : *t.ne) sink.Pod<uint64_t>(static_cast<uint64_t>(d));
    sink.Pod<uint32_t>(static_cast<uint32_t>(t.type));
    sink.Pod<uint64_t>(offset);
    offset += (t.data->size() + alignment - 1) / alignment * alignment;
  }
  sink.PadTo(alignment);
  for (const TensorRef& t : layout.tensors) {
    sink.Bytes(t.data->data(), t.data->size());
    sink.PadTo(alignment);
  }
}

}  // namespace

std::vector<uint8_t> Writer::WriteToBuffer() const {
  Layout layout = MakeLayout(alignment_, metadata_, tensors_);
  std::vector<uint8_t> out;
  Sink sink(&out);
  Serialize(layout, sink);
  return out;
}

Status Writer::WriteFile(const std::string& path) const {
  Layout layout = MakeLayout(alignment_, metadata_, tensors_);
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Errorf("%s: cannot create: %s", tmp.c_str(), std::strerror(errno));
  Sink sink(f);
  Serialize(layout, sink);
  const bool write_ok = sink.ok();
  const int write_err = sink.error();
  const bool close_ok = std::fclose(f) == 0;
  if (!write_ok || !close_ok) {
    std::remove(tmp.c_str());
    return Errorf("%s: write failed: %s", tmp.c_str(), std::strerror(write_ok ? errno : write_err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return Errorf("%s: cannot rename from %s: %s", path.c_str(), tmp.c_str(), std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace reprise::gguf
