// Bounded JSON parsing (see json_body.h).
#include "server/json_body.h"

#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;

// Objects up to this many keys find duplicates by scanning; larger ones
// build a hash index once and keep it while they are open.
constexpr size_t kIndexFrom = 16;

class BoundedBuilder {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  explicit BoundedBuilder(int max_depth) : max_depth_(max_depth) {}

  bool null() { return Put(json(nullptr)); }
  bool boolean(bool v) { return Put(json(v)); }
  bool number_integer(number_integer_t v) { return Put(json(v)); }
  bool number_unsigned(number_unsigned_t v) { return Put(json(v)); }
  bool number_float(number_float_t v, const string_t& /*text*/) { return Put(json(v)); }
  bool string(string_t& v) { return Put(json(std::move(v))); }
  bool binary(binary_t& v) { return Put(json::binary(std::move(v))); }

  bool start_object(std::size_t /*size*/) { return Open(json::value_t::object); }
  bool key(string_t& k) {
    stack_.back().key = std::move(k);
    return true;
  }
  bool end_object() { return Close(); }
  bool start_array(std::size_t /*size*/) { return Open(json::value_t::array); }
  bool end_array() { return Close(); }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    error_ = ex.what();
    return false;
  }

  json TakeRoot() { return std::move(root_); }
  bool too_deep() const { return too_deep_; }
  const std::string& error() const { return error_; }

 private:
  struct Frame {
    json value;
    string_t key;  // objects: the key of the value being parsed
    std::unique_ptr<std::unordered_map<std::string, size_t>> index;  // key -> position
  };

  bool Open(json::value_t type) {
    if (static_cast<int>(stack_.size()) >= max_depth_) {
      too_deep_ = true;
      return false;
    }
    stack_.push_back(Frame{json(type), {}, nullptr});
    return true;
  }

  bool Close() {
    json done = std::move(stack_.back().value);
    stack_.pop_back();
    return Put(std::move(done));
  }

  bool Put(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return true;
    }
    Frame& f = stack_.back();
    if (f.value.is_array()) {
      f.value.get_ref<json::array_t&>().push_back(std::move(v));
      return true;
    }
    auto& object = f.value.get_ref<json::object_t&>();
    // ordered_map is a vector of pairs: appending to it directly is O(1);
    // its own insert scans every key for a duplicate first.
    auto& items = static_cast<std::vector<std::pair<const std::string, json>>&>(object);
    if (f.index == nullptr && items.size() >= kIndexFrom) {
      f.index = std::make_unique<std::unordered_map<std::string, size_t>>();
      f.index->reserve(items.size() * 2);
      for (size_t i = 0; i < items.size(); ++i) f.index->emplace(items[i].first, i);
    }
    if (f.index != nullptr) {
      auto [it, inserted] = f.index->emplace(f.key, items.size());
      if (!inserted) {
        items[it->second].second = std::move(v);
        return true;
      }
    } else {
      for (auto& item : items) {
        if (item.first == f.key) {
          item.second = std::move(v);
          return true;
        }
      }
    }
    items.emplace_back(std::move(f.key), std::move(v));
    return true;
  }

  const int max_depth_;
  std::vector<Frame> stack_;
  json root_;
  bool too_deep_ = false;
  std::string error_;
};

}  // namespace

JsonParseResult ParseJsonBounded(std::string_view text, int max_depth) {
  JsonParseResult out;
  BoundedBuilder builder(max_depth);
  const bool ok = json::sax_parse(text.begin(), text.end(), &builder);
  if (ok) {
    out.ok = true;
    out.value = builder.TakeRoot();
    return out;
  }
  out.too_deep = builder.too_deep();
  if (out.too_deep) {
    out.error = "the request body nests arrays/objects deeper than " + std::to_string(max_depth) +
                " levels";
  } else {
    std::string what = builder.error();
    // "[json.exception.parse_error.101] parse error at line 1, ..." -> "parse error at ..."
    const size_t bracket = what.find("] ");
    if (what.rfind("[json.exception.", 0) == 0 && bracket != std::string::npos) {
      what = what.substr(bracket + 2);
    }
    out.error = "the request body is not valid JSON" + (what.empty() ? "" : ": " + what);
  }
  return out;
}

}  // namespace reprise::server
