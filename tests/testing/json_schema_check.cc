// The test validator (see json_schema_check.h).
#include "testing/json_schema_check.h"

#include <cmath>
#include <regex>

namespace reprise::testing {
namespace {

using json = nlohmann::ordered_json;

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool IsInteger(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return true;
  return v.is_number_float() && std::isfinite(v.get<double>()) &&
         v.get<double>() == std::floor(v.get<double>());
}

bool HasType(const json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  if (t == "number") return v.is_number();
  if (t == "integer") return v.is_number() && IsInteger(v);
  return false;
}

bool ValidDate(const std::string& s) {
  static const std::regex re(R"(^(\d{4})-(\d{2})-(\d{2})$)");
  std::smatch m;
  if (!std::regex_match(s, m, re)) return false;
  const int y = std::stoi(m[1]), mo = std::stoi(m[2]), d = std::stoi(m[3]);
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= days[mo - 1] + (mo == 2 && leap ? 1 : 0);
}

bool ValidTime(const std::string& s) {
  static const std::regex re(R"(^(\d{2}):(\d{2}):(\d{2})(\.\d+)?([zZ]|[+-](\d{2}):(\d{2}))$)");
  std::smatch m;
  if (!std::regex_match(s, m, re)) return false;
  if (std::stoi(m[1]) > 23 || std::stoi(m[2]) > 59 || std::stoi(m[3]) > 59) return false;
  if (m[6].matched && (std::stoi(m[6]) > 23 || std::stoi(m[7]) > 59)) return false;
  return true;
}

class Checker {
 public:
  explicit Checker(const json& doc) : doc_(doc) {}

  std::string Check(const json& v, const json& s, const std::string& at, int depth = 0) {
    if (depth > 200) return at + ": schema recursion too deep";
    if (s.is_boolean()) return s.get<bool>() ? "" : at + ": schema false";
    if (s.value("nullable", false) && v.is_null()) return "";
    if (auto r = s.find("$ref"); r != s.end()) {
      const std::string ref = r->get<std::string>();
      const json& target = ref == "#" ? doc_ : doc_.at(json::json_pointer(ref.substr(1)));
      if (std::string e = Check(v, target, at, depth + 1); !e.empty()) return e;
    }
    if (auto t = s.find("type"); t != s.end()) {
      bool ok = false;
      for (const json& name : t->is_array() ? *t : json::array({*t})) ok = ok || HasType(v, name);
      if (!ok) return at + ": not of type " + t->dump();
    }
    if (auto e = s.find("enum"); e != s.end()) {
      bool ok = false;
      for (const json& x : *e) ok = ok || Equal(x, v);
      if (!ok) return at + ": not in enum";
    }
    if (auto c = s.find("const"); c != s.end() && !Equal(*c, v)) return at + ": not the const";
    if (auto a = s.find("anyOf"); a != s.end()) {
      bool ok = false;
      for (const json& b : *a) ok = ok || Check(v, b, at, depth + 1).empty();
      if (!ok) return at + ": matches no anyOf branch";
    }
    if (auto o = s.find("oneOf"); o != s.end()) {
      int n = 0;
      for (const json& b : *o) n += Check(v, b, at, depth + 1).empty();
      if (n != 1) return at + ": matches " + std::to_string(n) + " oneOf branches";
    }
    if (auto a = s.find("allOf"); a != s.end()) {
      for (const json& b : *a) {
        if (std::string e = Check(v, b, at, depth + 1); !e.empty()) return e;
      }
    }
    if (v.is_string()) return CheckString(v.get<std::string>(), s, at);
    if (v.is_number()) return CheckNumber(v, s, at);
    if (v.is_object()) return CheckObject(v, s, at, depth);
    if (v.is_array()) return CheckArray(v, s, at, depth);
    return "";
  }

 private:
  static bool Equal(const json& a, const json& b) {
    if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
    return a == b;
  }

  std::string CheckString(const std::string& v, const json& s, const std::string& at) {
    const size_t n = CodePoints(v);
    if (s.contains("minLength") && n < s["minLength"].get<size_t>()) return at + ": too short";
    if (s.contains("maxLength") && n > s["maxLength"].get<size_t>()) return at + ": too long";
    if (auto f = s.find("format"); f != s.end()) {
      const std::string format = f->get<std::string>();
      static const std::regex uuid(
          "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
      bool ok = true;
      if (format == "date") ok = ValidDate(v);
      if (format == "time") ok = ValidTime(v);
      if (format == "date-time") {
        const size_t t = v.find_first_of("Tt");
        ok = t != std::string::npos && ValidDate(v.substr(0, t)) && ValidTime(v.substr(t + 1));
      }
      if (format == "uuid") ok = std::regex_match(v, uuid);
      if (!ok) return at + ": not a " + format;
    }
    return "";
  }

  std::string CheckNumber(const json& v, const json& s, const std::string& at) {
    const double d = v.get<double>();
    if (!std::isfinite(d)) return at + ": not finite";
    auto num = [&](const char* k) { return s.contains(k) && s[k].is_number(); };
    auto flag = [&](const char* k) {
      return s.contains(k) && s[k].is_boolean() && s[k].get<bool>();
    };
    if (num("minimum") && (flag("exclusiveMinimum") ? d <= s["minimum"].get<double>()
                                                    : d < s["minimum"].get<double>())) {
      return at + ": below minimum";
    }
    if (num("maximum") && (flag("exclusiveMaximum") ? d >= s["maximum"].get<double>()
                                                    : d > s["maximum"].get<double>())) {
      return at + ": above maximum";
    }
    if (num("exclusiveMinimum") && d <= s["exclusiveMinimum"].get<double>()) {
      return at + ": not above exclusiveMinimum";
    }
    if (num("exclusiveMaximum") && d >= s["exclusiveMaximum"].get<double>()) {
      return at + ": not below exclusiveMaximum";
    }
    if (num("multipleOf")) {
      const double q = d / s["multipleOf"].get<double>();
      if (q != std::floor(q)) return at + ": not a multiple";
    }
    if (s.value("format", "") == "int32" && (d < -2147483648.0 || d > 2147483647.0)) {
      return at + ": not an int32";
    }
    return "";
  }

  std::string CheckObject(const json& v, const json& s, const std::string& at, int depth) {
    if (auto r = s.find("required"); r != s.end()) {
      for (const json& name : *r) {
        if (!v.contains(name.get<std::string>())) return at + ": missing " + name.dump();
      }
    }
    const json* props = s.contains("properties") ? &s["properties"] : nullptr;
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string child = at + "/" + it.key();
      if (props != nullptr && props->contains(it.key())) {
        if (std::string e = Check(it.value(), (*props)[it.key()], child, depth + 1); !e.empty()) {
          return e;
        }
      } else if (s.contains("additionalProperties")) {
        if (std::string e = Check(it.value(), s["additionalProperties"], child, depth + 1);
            !e.empty()) {
          return e;
        }
      }
    }
    if (s.contains("minProperties") && v.size() < s["minProperties"].get<size_t>()) {
      return at + ": too few properties";
    }
    return "";
  }

  std::string CheckArray(const json& v, const json& s, const std::string& at, int depth) {
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return at + ": too few";
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return at + ": too many";
    const json* prefix = nullptr;
    const json* rest = nullptr;
    if (s.contains("prefixItems")) {
      prefix = &s["prefixItems"];
      if (s.contains("items")) rest = &s["items"];
    } else if (s.contains("items") && s["items"].is_array()) {
      prefix = &s["items"];
      if (s.contains("additionalItems")) rest = &s["additionalItems"];
    } else if (s.contains("items")) {
      rest = &s["items"];
    }
    for (size_t i = 0; i < v.size(); ++i) {
      const json* item = prefix != nullptr && i < prefix->size() ? &(*prefix)[i] : rest;
      if (item == nullptr) continue;
      if (std::string e = Check(v[i], *item, at + "/" + std::to_string(i), depth + 1); !e.empty()) {
        return e;
      }
    }
    return "";
  }

  const json& doc_;
};

}  // namespace

std::string SchemaViolation(const json& value, const json& schema) {
  try {
    return Checker(schema).Check(value, schema, "#");
  } catch (const std::exception& e) {
    return std::string("validator error: ") + e.what();
  }
}

}  // namespace reprise::testing
