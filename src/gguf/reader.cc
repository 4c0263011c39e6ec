// GGUF reader: maps the file read-only and parses header, metadata and the
// tensor table. Owns the validation of every count, length, offset and size
// against the bytes that remain, before anything is allocated or read.
// Does not own value helpers/getters (value.cc) or writing (writer.cc).
// Invariants after a successful parse: every TensorInfo's [data, data+n_bytes)
// lies inside the image, is aligned, and does not overlap another tensor;
// metadata keys and tensor names are unique.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "gguf/gguf.h"

namespace reprise::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;
// Bound on metadata array items over the whole file: a parsed Value is ~100
// bytes, so this caps the memory hostile metadata can make us allocate
// (~1 GB) while leaving room for the largest real vocabularies (~260k tokens
// in three arrays plus merges).
constexpr uint64_t kMaxTotalArrayItems = uint64_t{1} << 23;

// Minimum encoded size of one value of type `t` (arrays: type + count).
uint64_t MinValueBytes(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
    case ValueType::kString:
      return 8;
    case ValueType::kArray:
      return 12;
  }
  return 1;
}

bool KnownValueType(uint32_t raw) { return raw <= static_cast<uint32_t>(ValueType::kFloat64); }

}  // namespace

// Parses an image into a File. All reads go through Read*, which check the
// remaining bytes first.
class Parser {
 public:
  Parser(File& file) : file_(file), base_(file.base_), size_(file.size_) {}

  Status Parse() {
    uint32_t magic = 0;
    RETURN_IF_ERROR(ReadU32(&magic, "magic"));
    if (magic != kMagic) {
      return Errorf("not a GGUF file (magic %02x %02x %02x %02x, expected 'GGUF')", base_[0],
                    base_[1], base_[2], base_[3]);
    }
    uint32_t version = 0;
    RETURN_IF_ERROR(ReadU32(&version, "version"));
    if (version == 1) return Errorf("GGUF version 1 is not supported (only 2 and 3)");
    if (version != 2 && version != 3) {
      if (__builtin_bswap32(version) == 2 || __builtin_bswap32(version) == 3) {
        return Errorf("big-endian GGUF files are not supported");
      }
      return Errorf("unsupported GGUF version %u (only 2 and 3)", version);
    }
    file_.version_ = version;

    uint64_t n_tensors = 0, n_kv = 0;
    RETURN_IF_ERROR(ReadU64(&n_tensors, "tensor count"));
    RETURN_IF_ERROR(ReadU64(&n_kv, "metadata count"));
    // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes.
    if (n_kv > Remaining() / 13) {
      return Errorf("metadata count %llu is impossible: only %llu bytes follow the header",
                    ULL(n_kv), ULL(Remaining()));
    }
    RETURN_IF_ERROR(ParseMetadata(n_kv));
    // A tensor entry takes at least 8 (name length) + 4 (n_dims) + 8 (one
    // dim) + 4 (type) + 8 (offset) bytes.
    if (n_tensors > Remaining() / 32) {
      return Errorf("tensor count %llu is impossible: only %llu bytes follow the metadata",
                    ULL(n_tensors), ULL(Remaining()));
    }
    RETURN_IF_ERROR(ParseAlignment());
    RETURN_IF_ERROR(ParseTensorTable(n_tensors));
    return Status::Ok();
  }

 private:
  static unsigned long long ULL(uint64_t v) { return static_cast<unsigned long long>(v); }
  uint64_t Remaining() const { return size_ - pos_; }

  Status Need(uint64_t n, const char* what) const {
    if (n > Remaining()) {
      return Errorf("truncated: %s needs %llu bytes at offset %llu, file has %llu", what, ULL(n),
                    ULL(pos_), ULL(size_));
    }
    return Status::Ok();
  }
  template <class T>
  Status ReadPod(T* out, const char* what) {
    RETURN_IF_ERROR(Need(sizeof(T), what));
    std::memcpy(out, base_ + pos_, sizeof(T));  // little-endian host assumed
    pos_ += sizeof(T);
    return Status::Ok();
  }
  Status ReadU32(uint32_t* out, const char* what) { return ReadPod(out, what); }
  Status ReadU64(uint64_t* out, const char* what) { return ReadPod(out, what); }

  Status ReadString(std::string* out, const char* what) {
    uint64_t len = 0;
    RETURN_IF_ERROR(ReadU64(&len, what));
    if (len > Remaining()) {
      return Errorf("%s length %llu at offset %llu extends past end of file (size %llu)", what,
                    ULL(len), ULL(pos_ - 8), ULL(size_));
    }
    out->assign(reinterpret_cast<const char*>(base_ + pos_), len);
    pos_ += len;
    return Status::Ok();
  }

  Status ReadValue(ValueType type, int depth, const std::string& key, Value* out) {
    out->type = type;
    switch (type) {
      case ValueType::kUint8: {
        uint8_t v;
        RETURN_IF_ERROR(ReadPod(&v, "uint8 value"));
        out->u = v;
        return Status::Ok();
      }
      case ValueType::kInt8: {
        int8_t v;
        RETURN_IF_ERROR(ReadPod(&v, "int8 value"));
        out->i = v;
        return Status::Ok();
      }
      case ValueType::kUint16: {
        uint16_t v;
        RETURN_IF_ERROR(ReadPod(&v, "uint16 value"));
        out->u = v;
        return Status::Ok();
      }
      case ValueType::kInt16: {
        int16_t v;
        RETURN_IF_ERROR(ReadPod(&v, "int16 value"));
        out->i = v;
        return Status::Ok();
      }
      case ValueType::kUint32: {
        uint32_t v;
        RETURN_IF_ERROR(ReadPod(&v, "uint32 value"));
        out->u = v;
        return Status::Ok();
      }
      case ValueType::kInt32: {
        int32_t v;
        RETURN_IF_ERROR(ReadPod(&v, "int32 value"));
        out->i = v;
        return Status::Ok();
      }
      case ValueType::kUint64:
        return ReadPod(&out->u, "uint64 value");
      case ValueType::kInt64:
        return ReadPod(&out->i, "int64 value");
      case ValueType::kFloat32: {
        float v;
        RETURN_IF_ERROR(ReadPod(&v, "float32 value"));
        out->f = v;
        return Status::Ok();
      }
      case ValueType::kFloat64:
        return ReadPod(&out->f, "float64 value");
      case ValueType::kBool: {
        uint8_t v;
        RETURN_IF_ERROR(ReadPod(&v, "bool value"));
        if (v > 1) return Errorf("metadata key '%s': bool value %u is not 0 or 1", key.c_str(), v);
        out->u = v;
        return Status::Ok();
      }
      case ValueType::kString:
        return ReadString(&out->s, "string value");
      case ValueType::kArray:
        return ReadArray(depth, key, out);
    }
    return Errorf("metadata key '%s': unknown value type %u", key.c_str(),
                  static_cast<uint32_t>(type));
  }

  Status ReadArray(int depth, const std::string& key, Value* out) {
    if (depth >= kMaxArrayDepth) {
      return Errorf("metadata key '%s': arrays nested deeper than %d levels", key.c_str(),
                    kMaxArrayDepth);
    }
    uint32_t raw_elem = 0;
    RETURN_IF_ERROR(ReadU32(&raw_elem, "array element type"));
    if (!KnownValueType(raw_elem)) {
      return Errorf("metadata key '%s': unknown array element type %u", key.c_str(), raw_elem);
    }
    const ValueType elem = static_cast<ValueType>(raw_elem);
    out->elem_type = elem;
    uint64_t count = 0;
    RETURN_IF_ERROR(ReadU64(&count, "array length"));
    if (count > Remaining() / MinValueBytes(elem)) {
      return Errorf(
          "metadata key '%s': array of %llu %s elements needs at least %llu bytes per element, "
          "only %llu bytes remain",
          key.c_str(), ULL(count), ValueTypeName(elem), ULL(MinValueBytes(elem)), ULL(Remaining()));
    }
    if (count > kMaxTotalArrayItems - total_items_) {
      return Errorf(
          "metadata key '%s': array of %llu elements exceeds the limit of %llu array "
          "items per file",
          key.c_str(), ULL(count), ULL(kMaxTotalArrayItems));
    }
    total_items_ += count;
    out->items.resize(count);
    for (uint64_t k = 0; k < count; ++k) {
      RETURN_IF_ERROR(ReadValue(elem, depth + 1, key, &out->items[k]));
    }
    return Status::Ok();
  }

  Status ParseMetadata(uint64_t n_kv) {
    std::unordered_set<std::string> seen;
    file_.metadata_.reserve(n_kv);
    for (uint64_t k = 0; k < n_kv; ++k) {
      std::string key;
      RETURN_IF_ERROR(ReadString(&key, "metadata key"));
      if (key.empty()) return Errorf("metadata entry %llu has an empty key", ULL(k));
      if (!seen.insert(key).second) return Errorf("duplicate metadata key '%s'", key.c_str());
      uint32_t raw_type = 0;
      RETURN_IF_ERROR(ReadU32(&raw_type, "metadata value type"));
      if (!KnownValueType(raw_type)) {
        return Errorf("metadata key '%s': unknown value type %u", key.c_str(), raw_type);
      }
      Value value;
      RETURN_IF_ERROR(ReadValue(static_cast<ValueType>(raw_type), 0, key, &value));
      file_.metadata_.emplace_back(std::move(key), std::move(value));
    }
    return Status::Ok();
  }

  Status ParseAlignment() {
    const Value* v = file_.Find("general.alignment");
    if (v == nullptr) return Status::Ok();
    if (v->type != ValueType::kUint32) {
      return Errorf("general.alignment is %s, expected uint32", ValueTypeName(v->type));
    }
    if (v->u == 0 || (v->u & (v->u - 1)) != 0) {
      return Errorf("general.alignment %llu is not a non-zero power of two", ULL(v->u));
    }
    file_.alignment_ = v->u;
    return Status::Ok();
  }

  Status ParseTensor(uint64_t index, TensorInfo* t) {
    RETURN_IF_ERROR(ReadString(&t->name, "tensor name"));
    const char* name = t->name.c_str();
    uint32_t n_dims = 0;
    RETURN_IF_ERROR(ReadU32(&n_dims, "tensor n_dims"));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return Errorf("tensor '%s' (#%llu) has n_dims %u (must be 1..%u)", name, ULL(index), n_dims,
                    kMaxDims);
    }
    t->ne.resize(n_dims);
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      RETURN_IF_ERROR(ReadU64(&ne, "tensor dimension"));
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Errorf("tensor '%s' has invalid dimension ne[%u] = %llu", name, d, ULL(ne));
      }
      t->ne[d] = static_cast<int64_t>(ne);
      if (__builtin_mul_overflow(n_elements, t->ne[d], &n_elements)) {
        return Errorf("tensor '%s': element count overflows int64", name);
      }
    }
    uint32_t raw_type = 0;
    RETURN_IF_ERROR(ReadU32(&raw_type, "tensor type"));
    const DTypeInfo* info = GetDTypeInfo(raw_type);
    if (info == nullptr) return Errorf("tensor '%s' has unknown type id %u", name, raw_type);
    t->type = static_cast<DType>(raw_type);
    if (t->ne[0] % info->block_elems != 0) {
      return Errorf(
          "tensor '%s': row length ne[0] = %lld is not a multiple of the %s block size %lld", name,
          static_cast<long long>(t->ne[0]), info->name, static_cast<long long>(info->block_elems));
    }
    int64_t n_bytes = 0;
    if (__builtin_mul_overflow(n_elements / info->block_elems, info->block_bytes, &n_bytes)) {
      return Errorf("tensor '%s': byte size overflows int64", name);
    }
    t->n_bytes = static_cast<uint64_t>(n_bytes);
    RETURN_IF_ERROR(ReadU64(&t->offset, "tensor offset"));
    if (t->offset % file_.alignment_ != 0) {
      return Errorf("tensor '%s': offset %llu is not a multiple of the alignment %llu", name,
                    ULL(t->offset), ULL(file_.alignment_));
    }
    return Status::Ok();
  }

  Status ParseTensorTable(uint64_t n_tensors) {
    std::vector<TensorInfo>& tensors = file_.tensors_;
    tensors.resize(n_tensors);
    std::unordered_set<std::string> seen;
    for (uint64_t k = 0; k < n_tensors; ++k) {
      RETURN_IF_ERROR(ParseTensor(k, &tensors[k]));
      if (!seen.insert(tensors[k].name).second) {
        return Errorf("duplicate tensor name '%s'", tensors[k].name.c_str());
      }
    }
    if (n_tensors == 0) return Status::Ok();
    // pos_ <= size_ and alignment <= 2^32, so this cannot overflow.
    const uint64_t align = file_.alignment_;
    const uint64_t data_start = (pos_ + align - 1) / align * align;
    for (TensorInfo& t : tensors) {
      const uint64_t avail = data_start <= size_ ? size_ - data_start : 0;
      if (t.offset > avail || t.n_bytes > avail - t.offset) {
        return Errorf(
            "tensor '%s' data [offset %llu, %llu bytes] extends past end of file (size "
            "%llu, data section starts at %llu)",
            t.name.c_str(), ULL(t.offset), ULL(t.n_bytes), ULL(size_), ULL(data_start));
      }
      t.data = base_ + data_start + t.offset;
    }
    std::vector<const TensorInfo*> by_offset;
    by_offset.reserve(tensors.size());
    for (const TensorInfo& t : tensors) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
    for (size_t k = 1; k < by_offset.size(); ++k) {
      const TensorInfo* prev = by_offset[k - 1];
      const TensorInfo* cur = by_offset[k];
      if (cur->offset < prev->offset + prev->n_bytes) {
        return Errorf(
            "tensor '%s' data [offset %llu] overlaps tensor '%s' [offset %llu, %llu bytes]",
            cur->name.c_str(), ULL(cur->offset), prev->name.c_str(), ULL(prev->offset),
            ULL(prev->n_bytes));
      }
    }
    return Status::Ok();
  }

  File& file_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t total_items_ = 0;
};

File::~File() {
  if (mapping_ != nullptr) munmap(mapping_, size_);
}

Result<std::unique_ptr<File>> File::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errorf("%s: cannot open: %s", path.c_str(), std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Errorf("%s: cannot stat: %s", path.c_str(), std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Errorf("%s: not a regular file", path.c_str());
  }
  std::unique_ptr<File> file(new File());
  file->path_ = path;
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ == 0) {
    ::close(fd);
    return Errorf("%s: empty file (not a GGUF file)", path.c_str());
  }
  void* map = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    return Errorf("%s: mmap failed: %s", path.c_str(), std::strerror(map_err));
  }
  file->mapping_ = map;
  file->base_ = static_cast<const uint8_t*>(map);
  Parser parser(*file);
  Status s = parser.Parse();
  if (!s.ok()) return s.WithContext(path);
  return file;
}

Result<std::unique_ptr<File>> File::FromBuffer(std::vector<uint8_t> bytes) {
  std::unique_ptr<File> file(new File());
  file->path_ = "<buffer>";
  file->buffer_ = std::move(bytes);
  file->base_ = file->buffer_.data();
  file->size_ = file->buffer_.size();
  Parser parser(*file);
  Status s = parser.Parse();
  if (!s.ok()) return s.WithContext(file->path_);
  return file;
}

}  // namespace reprise::gguf
