// JSON Schema -> grammar rules (see json_schema.h): keyword checks, $ref,
// anyOf/oneOf/allOf, enum/const, objects and arrays. The lexical pieces
// (strings, numbers, whitespace) are in json_terminals.cc.
#include "grammar/json_schema.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string_view>

namespace reprise::grammar {
namespace {

using json = nlohmann::ordered_json;
using State = GrammarBuilder::State;
using Rule = GrammarBuilder::Rule;

enum Kind { kAll = 0, kObject = 1, kArray = 2 };

enum TypeBit : unsigned {
  kTObject = 1,
  kTArray = 2,
  kTString = 4,
  kTInteger = 8,
  kTNumber = 16,
  kTBoolean = 32,
  kTNull = 64,
  kTAll = 127,
};

const std::set<std::string_view>& Annotations() {
  static const std::set<std::string_view> s = {
      "$schema",     "$id",     "$comment",    "$anchor",         "title",
      "description", "default", "examples",    "deprecated",      "readOnly",
      "writeOnly",   "$defs",   "definitions", "contentEncoding", "contentMediaType"};
  return s;
}

const std::set<std::string_view>& Assertions() {
  static const std::set<std::string_view> s = {"type",
                                               "enum",
                                               "const",
                                               "nullable",
                                               "properties",
                                               "required",
                                               "additionalProperties",
                                               "minProperties",
                                               "items",
                                               "prefixItems",
                                               "additionalItems",
                                               "minItems",
                                               "maxItems",
                                               "uniqueItems",
                                               "minLength",
                                               "maxLength",
                                               "format",
                                               "minimum",
                                               "maximum",
                                               "exclusiveMinimum",
                                               "exclusiveMaximum",
                                               "multipleOf",
                                               "$ref",
                                               "anyOf",
                                               "oneOf",
                                               "allOf"};
  return s;
}

bool IsAnnotation(const std::string& key) {
  return Annotations().count(key) != 0 || key.rfind("x-", 0) == 0;
}

// JSON pointer token escaping (RFC 6901).
std::string PointerToken(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string Dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

unsigned TypeBitOf(const std::string& name) {
  if (name == "object") return kTObject;
  if (name == "array") return kTArray;
  if (name == "string") return kTString;
  if (name == "integer") return kTInteger;
  if (name == "number") return kTNumber;
  if (name == "boolean") return kTBoolean;
  if (name == "null") return kTNull;
  return 0;
}

bool IsIntegral(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d);
}

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

struct JsonGrammar::Context {
  JsonGrammar& g;
  const json& doc;

  GrammarBuilder& b() { return *g.b_; }

  Status Error(const std::string& path, const std::string& message) {
    return Status::Error(message + " at " + path);
  }

  Result<std::optional<int64_t>> Count(const json& s, const char* key, const std::string& path) {
    auto it = s.find(key);
    if (it == s.end()) return std::optional<int64_t>();
    if (!IsIntegral(*it) || it->get<double>() < 0) {
      return Error(path + "/" + key, std::string(key) + " must be a non-negative integer");
    }
    const double d = it->get<double>();
    return std::optional<int64_t>(d > 1e15 ? int64_t{1'000'000'000'000'000} : it->get<int64_t>());
  }

  Result<std::optional<double>> Number(const json& s, const char* key, const std::string& path) {
    auto it = s.find(key);
    if (it == s.end() || it->is_boolean()) return std::optional<double>();
    if (!it->is_number()) return Error(path + "/" + key, std::string(key) + " must be a number");
    return std::optional<double>(it->get<double>());
  }

  // The effective bounds of a numeric schema (draft 4 boolean exclusives too).
  struct Bounds {
    std::optional<double> lo, hi;
    bool lo_excl = false, hi_excl = false;
  };
  Result<Bounds> NumericBounds(const json& s, const std::string& path) {
    Bounds out;
    ASSIGN_OR_RETURN(std::optional<double> min, Number(s, "minimum", path));
    ASSIGN_OR_RETURN(std::optional<double> max, Number(s, "maximum", path));
    ASSIGN_OR_RETURN(std::optional<double> xmin, Number(s, "exclusiveMinimum", path));
    ASSIGN_OR_RETURN(std::optional<double> xmax, Number(s, "exclusiveMaximum", path));
    auto flag = [&](const char* key) {
      auto it = s.find(key);
      return it != s.end() && it->is_boolean() && it->get<bool>();
    };
    out.lo = min;
    out.lo_excl = min.has_value() && flag("exclusiveMinimum");
    if (xmin && (!out.lo || *xmin >= *out.lo)) {
      out.lo = xmin;
      out.lo_excl = true;
    }
    out.hi = max;
    out.hi_excl = max.has_value() && flag("exclusiveMaximum");
    if (xmax && (!out.hi || *xmax <= *out.hi)) {
      out.hi = xmax;
      out.hi_excl = true;
    }
    for (const std::optional<double>* v : {&out.lo, &out.hi}) {
      if (*v && !std::isfinite(**v)) return Error(path, "numeric bounds must be finite");
    }
    return out;
  }

  // Checks every keyword of an object schema: known, and of a usable value.
  Status CheckKeywords(const json& s, const std::string& path) {
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& key = it.key();
      if (IsAnnotation(key)) continue;
      if (Assertions().count(key) == 0) {
        return Error(path, "unsupported JSON Schema keyword '" + key + "'");
      }
      const json& v = it.value();
      if (key == "uniqueItems" && !(v.is_boolean() && !v.get<bool>())) {
        return Error(path, "unsupported JSON Schema keyword 'uniqueItems' (only false is)");
      }
      if (key == "minProperties" && !(IsIntegral(v) && v.get<double>() == 0)) {
        return Error(path, "unsupported JSON Schema keyword 'minProperties' (only 0 is)");
      }
      if ((key == "anyOf" || key == "oneOf" || key == "allOf") && (!v.is_array() || v.empty())) {
        return Error(path + "/" + key, key + " must be a non-empty array of schemas");
      }
      if (key == "allOf" && v.size() != 1) {
        return Error(path + "/allOf", "allOf with more than one schema is not supported");
      }
      if (key == "enum" && (!v.is_array() || v.empty())) {
        return Error(path + "/enum", "enum must be a non-empty array");
      }
      if (key == "nullable" && !v.is_boolean()) {
        return Error(path + "/nullable", "nullable must be a boolean");
      }
      if (key == "$ref" && !v.is_string()) return Error(path + "/$ref", "$ref must be a string");
      if (key == "multipleOf" && !(v.is_number() && v.get<double>() == 1.0)) {
        return Error(path, "unsupported JSON Schema keyword 'multipleOf' (only 1 is)");
      }
    }
    return Status::Ok();
  }

  // The one combinator of a schema, and no assertion keyword next to it
  // (other than nullable): "{anyOf: [..], type: ..}" would need an
  // intersection of grammars.
  Status CheckAlone(const json& s, const std::string& key, const std::string& path) {
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (it.key() == key || it.key() == "nullable" || IsAnnotation(it.key())) continue;
      return Error(path, "'" + key + "' next to '" + it.key() +
                             "' is not supported (move the "
                             "keyword into the referenced or combined schemas)");
    }
    return Status::Ok();
  }

  Result<const json*> Resolve(const std::string& ref, const std::string& path) {
    if (ref == "#") return &doc;
    if (ref.rfind("#/", 0) != 0) {
      return Error(path, "$ref '" + ref +
                             "' is not supported: only references into the same "
                             "schema (\"#\", \"#/$defs/...\") are");
    }
    try {
      const json::json_pointer pointer(ref.substr(1));
      if (!doc.contains(pointer)) return Error(path, "$ref '" + ref + "' points to nothing");
      return &doc.at(pointer);
    } catch (const std::exception&) {
      return Error(path, "$ref '" + ref + "' is not a valid JSON pointer");
    }
  }

  Result<Rule> RuleFor(const json& s, Kind kind, const std::string& path, int depth) {
    const auto key = std::make_pair(&s, static_cast<int>(kind));
    auto it = g.memo_.find(key);
    if (it != g.memo_.end()) return it->second;
    const Rule rule = b().NewRule(path);
    g.memo_[key] = rule;
    const State start = b().Start(rule), end = b().NewState(rule);
    b().SetAccepting(end);
    Status st = kind == kObject  ? EmitObject(s, start, end, path, depth)
                : kind == kArray ? EmitArray(s, start, end, path, depth)
                                 : Emit(s, start, end, path, depth);
    if (!st.ok()) return st;
    RETURN_IF_ERROR(b().status());
    return rule;
  }

  // Whether an enum/const value satisfies the keywords that may accompany it.
  Result<bool> ValueAllowed(const json& v, const json& s, const std::string& path) {
    if (v.is_null() && s.value("nullable", false)) return true;
    if (auto t = s.find("type"); t != s.end()) {
      unsigned types = 0;
      for (const json& name : t->is_array() ? *t : json::array({*t})) {
        types |= name.is_string() ? TypeBitOf(name.get<std::string>()) : 0;
      }
      bool ok = false;
      if (v.is_object())
        ok = types & kTObject;
      else if (v.is_array())
        ok = types & kTArray;
      else if (v.is_string())
        ok = types & kTString;
      else if (v.is_boolean())
        ok = types & kTBoolean;
      else if (v.is_null())
        ok = types & kTNull;
      else if (v.is_number())
        ok = (types & kTNumber) || ((types & kTInteger) && IsIntegral(v));
      if (!ok) return false;
    }
    if (v.is_string()) {
      ASSIGN_OR_RETURN(std::optional<int64_t> min_len, Count(s, "minLength", path));
      ASSIGN_OR_RETURN(std::optional<int64_t> max_len, Count(s, "maxLength", path));
      const int64_t n = static_cast<int64_t>(CodePoints(v.get<std::string>()));
      if ((min_len && n < *min_len) || (max_len && n > *max_len)) return false;
    }
    if (v.is_number()) {
      ASSIGN_OR_RETURN(Bounds bounds, NumericBounds(s, path));
      const double d = v.get<double>();
      if (bounds.lo && (bounds.lo_excl ? d <= *bounds.lo : d < *bounds.lo)) return false;
      if (bounds.hi && (bounds.hi_excl ? d >= *bounds.hi : d > *bounds.hi)) return false;
    }
    return true;
  }

  Status EmitLiterals(const json& s, State from, State to, const std::string& path) {
    static const std::set<std::string_view> kWithEnum = {
        "type",      "enum",    "const",   "nullable",         "minLength",
        "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (IsAnnotation(it.key()) || kWithEnum.count(it.key()) != 0) continue;
      return Error(path, "enum/const next to '" + it.key() + "' is not supported");
    }
    json values = json::array();
    auto c = s.find("const");
    auto e = s.find("enum");
    if (c != s.end()) {
      // const and enum together: the const value, if the enum has it.
      if (e == s.end() || std::find(e->begin(), e->end(), *c) != e->end()) values.push_back(*c);
    } else {
      values = *e;
    }
    for (const json& v : values) {
      ASSIGN_OR_RETURN(bool allowed, ValueAllowed(v, s, path));
      if (!allowed) continue;
      const std::string text = Dump(v);
      g.literal_bytes_ += static_cast<int64_t>(text.size());
      if (g.literal_bytes_ > g.options_.max_literal_bytes) {
        return Error(path, StrFormat("enum/const values take more than %lld bytes",
                                     static_cast<long long>(g.options_.max_literal_bytes)));
      }
      b().AddLiteral(from, to, text);
    }
    return b().status();
  }

  Status EmitNumeric(const json& s, bool integer, State from, State to, const std::string& path) {
    ASSIGN_OR_RETURN(Bounds bounds, NumericBounds(s, path));
    std::string format;
    if (auto f = s.find("format"); f != s.end()) {
      format = f->is_string() ? f->get<std::string>() : "";
      if (format != "int32" && format != "int64" && format != "float" && format != "double") {
        return Error(path, "numeric format '" + Dump(*f) +
                               "' is not supported (int32, int64, "
                               "float, double are)");
      }
    }
    if (s.contains("multipleOf") || format == "int32" || format == "int64") integer = true;
    if (format == "int32") {
      if (!bounds.lo || *bounds.lo < -2147483648.0)
        bounds.lo = -2147483648.0, bounds.lo_excl = false;
      if (!bounds.hi || *bounds.hi > 2147483647.0) bounds.hi = 2147483647.0, bounds.hi_excl = false;
    }
    if (!bounds.lo && !bounds.hi) {
      if (integer)
        g.Integer(from, to);
      else
        g.Number(from, to);
      return Status::Ok();
    }
    if (integer) {
      std::optional<int64_t> lo, hi;
      constexpr double kBig = 1e17;
      if (bounds.lo) {
        const double v = bounds.lo_excl ? std::floor(*bounds.lo) + 1 : std::ceil(*bounds.lo);
        lo = static_cast<int64_t>(std::clamp(v, -kBig, kBig));
      }
      if (bounds.hi) {
        const double v = bounds.hi_excl ? std::ceil(*bounds.hi) - 1 : std::floor(*bounds.hi);
        hi = static_cast<int64_t>(std::clamp(v, -kBig, kBig));
      }
      g.IntegerRange(from, to, lo, hi);
    } else {
      g.NumberRange(from, to, bounds.lo, bounds.lo_excl, bounds.hi, bounds.hi_excl);
    }
    return Status::Ok();
  }

  Status EmitString(const json& s, State from, State to, const std::string& path) {
    ASSIGN_OR_RETURN(std::optional<int64_t> min_len, Count(s, "minLength", path));
    ASSIGN_OR_RETURN(std::optional<int64_t> max_len, Count(s, "maxLength", path));
    if (auto f = s.find("format"); f != s.end()) {
      if (!f->is_string()) return Error(path + "/format", "format must be a string");
      if (min_len || max_len)
        return Error(path, "format next to minLength/maxLength is not supported");
      Status st = g.FormattedString(from, to, f->get<std::string>());
      return st.ok() ? st : Error(path, st.message());
    }
    if (!min_len && !max_len) {
      g.PlainString(from, to);
      return Status::Ok();
    }
    Status st = g.String(from, to, min_len.value_or(0), max_len.value_or(-1));
    return st.ok() ? st : Error(path, st.message());
  }

  // Types a schema allows: its "type", or what its keywords are about.
  Result<unsigned> Types(const json& s, const std::string& path) {
    if (auto t = s.find("type"); t != s.end()) {
      unsigned types = 0;
      for (const json& name : t->is_array() ? *t : json::array({*t})) {
        const unsigned bit = name.is_string() ? TypeBitOf(name.get<std::string>()) : 0;
        if (bit == 0) {
          return Error(path + "/type",
                       "type must be object, array, string, integer, number, "
                       "boolean or null (or an array of them), got " +
                           Dump(name));
        }
        types |= bit;
      }
      if (types == 0) return Error(path + "/type", "type must not be an empty array");
      return types;
    }
    unsigned types = 0;
    for (const char* k : {"properties", "required", "additionalProperties", "minProperties"}) {
      if (s.contains(k)) types |= kTObject;
    }
    for (const char* k : {"items", "prefixItems", "additionalItems", "minItems", "maxItems"}) {
      if (s.contains(k)) types |= kTArray;
    }
    for (const char* k : {"minLength", "maxLength"}) {
      if (s.contains(k)) types |= kTString;
    }
    for (const char* k :
         {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}) {
      if (s.contains(k)) types |= kTNumber;
    }
    if (auto f = s.find("format"); f != s.end()) {
      const bool numeric = *f == "int32" || *f == "int64" || *f == "float" || *f == "double";
      types |= numeric ? kTNumber : kTString;
    }
    return types == 0 ? kTAll : types;
  }

  Status Emit(const json& s, State from, State to, const std::string& path, int depth) {
    if (depth > g.options_.max_depth) {
      return Error(path, StrFormat("the schema nests deeper than %d levels", g.options_.max_depth));
    }
    if (s.is_boolean()) {
      if (s.get<bool>()) b().AddCall(from, to, g.AnyValueRule());
      return Status::Ok();  // false: nothing (no edges)
    }
    if (!s.is_object()) return Error(path, "a schema must be an object or a boolean");
    RETURN_IF_ERROR(CheckKeywords(s, path));
    if (s.value("nullable", false)) b().AddLiteral(from, to, "null");
    if (auto r = s.find("$ref"); r != s.end()) {
      RETURN_IF_ERROR(CheckAlone(s, "$ref", path));
      const std::string ref = r->get<std::string>();
      ASSIGN_OR_RETURN(const json* target, Resolve(ref, path));
      ASSIGN_OR_RETURN(Rule rule, RuleFor(*target, kAll, ref, depth + 1));
      b().AddCall(from, to, rule);
      return Status::Ok();
    }
    for (const char* comb : {"anyOf", "oneOf", "allOf"}) {
      auto c = s.find(comb);
      if (c == s.end()) continue;
      RETURN_IF_ERROR(CheckAlone(s, comb, path));
      for (size_t i = 0; i < c->size(); ++i) {
        RETURN_IF_ERROR(
            Emit((*c)[i], from, to, path + "/" + comb + "/" + std::to_string(i), depth + 1));
      }
      return Status::Ok();
    }
    if (s.contains("enum") || s.contains("const")) return EmitLiterals(s, from, to, path);
    ASSIGN_OR_RETURN(unsigned types, Types(s, path));
    if (types == kTAll && !s.contains("type")) {
      b().AddCall(from, to, g.AnyValueRule());
      return Status::Ok();
    }
    if (types & kTObject) {
      ASSIGN_OR_RETURN(Rule rule, RuleFor(s, kObject, path, depth + 1));
      b().AddCall(from, to, rule);
    }
    if (types & kTArray) {
      ASSIGN_OR_RETURN(Rule rule, RuleFor(s, kArray, path, depth + 1));
      b().AddCall(from, to, rule);
    }
    if (types & kTString) RETURN_IF_ERROR(EmitString(s, from, to, path));
    if (types & (kTNumber | kTInteger)) {
      RETURN_IF_ERROR(EmitNumeric(s, (types & kTNumber) == 0, from, to, path));
    }
    if (types & kTBoolean) {
      b().AddLiteral(from, to, "true");
      b().AddLiteral(from, to, "false");
    }
    if (types & kTNull) b().AddLiteral(from, to, "null");
    return b().status();
  }

  struct Member {
    std::string name;
    const json* schema;
    std::string path;
    bool required;
  };

  // "name": value
  Status EmitMember(const Member& m, State from, State to, int depth) {
    const State k = b().Literal(from, Dump(json(m.name)));
    const State w1 = b().NewState(b().RuleOf(from));
    g.Whitespace(k, w1);
    const State w2 = b().NewState(b().RuleOf(from));
    g.Whitespace(b().Literal(w1, ":"), w2);
    return Emit(*m.schema, w2, to, m.path, depth + 1);
  }

  // ws "," ws, from -> returned state
  State Comma(State from) {
    const State a = b().NewState(b().RuleOf(from));
    g.Whitespace(from, a);
    const State c = b().NewState(b().RuleOf(from));
    g.Whitespace(b().Literal(a, ","), c);
    return c;
  }

  Status EmitObject(const json& s, State from, State to, const std::string& path, int depth) {
    static const json kAny = true;
    std::vector<Member> members;
    std::vector<std::string> names;
    const json* additional = nullptr;  // null: no extra properties
    if (auto a = s.find("additionalProperties"); a != s.end()) {
      if (!a->is_boolean() && !a->is_object()) {
        return Error(path + "/additionalProperties",
                     "additionalProperties must be a boolean or "
                     "a schema");
      }
      if (!(a->is_boolean() && !a->get<bool>())) additional = &*a;
    } else if (!s.contains("properties")) {
      additional = &kAny;  // {"type": "object"} alone: any object
    }
    std::set<std::string> required;
    if (auto r = s.find("required"); r != s.end()) {
      if (!r->is_array()) return Error(path + "/required", "required must be an array of names");
      for (const json& name : *r) {
        if (!name.is_string()) return Error(path + "/required", "required must hold strings");
        required.insert(name.get<std::string>());
      }
    }
    if (auto p = s.find("properties"); p != s.end()) {
      if (!p->is_object()) return Error(path + "/properties", "properties must be an object");
      for (auto it = p->begin(); it != p->end(); ++it) {
        const bool req = required.count(it.key()) != 0;
        names.push_back(it.key());
        if (it.value().is_boolean() && !it.value().get<bool>()) {
          if (req) return Error(path, "required property '" + it.key() + "' has schema false");
          continue;
        }
        members.push_back(
            {it.key(), &it.value(), path + "/properties/" + PointerToken(it.key()), req});
      }
    }
    for (const std::string& name : required) {
      if (std::find(names.begin(), names.end(), name) != names.end()) continue;
      // Required but not described: its value follows additionalProperties.
      if (additional == nullptr && s.contains("additionalProperties")) {
        return Error(path, "required property '" + name +
                               "' is not in properties and additionalProperties is false");
      }
      names.push_back(name);
      members.push_back({name, additional != nullptr ? additional : &kAny, path, true});
    }
    const Rule r = b().RuleOf(from);
    const size_t n = members.size();
    std::vector<State> none(n + 1), some(n + 1);  // before member i, nothing / something written
    none[0] = b().NewState(r);
    g.Whitespace(b().Literal(from, "{"), none[0]);
    some[0] = b().NewState(r);
    for (size_t i = 0; i < n; ++i) {
      none[i + 1] = b().NewState(r);
      some[i + 1] = b().NewState(r);
      RETURN_IF_ERROR(EmitMember(members[i], none[i], some[i + 1], depth));
      RETURN_IF_ERROR(EmitMember(members[i], Comma(some[i]), some[i + 1], depth));
      if (!members[i].required) {
        b().AddEpsilon(none[i], none[i + 1]);
        b().AddEpsilon(some[i], some[i + 1]);
      }
    }
    b().AddLiteral(none[n], to, "}");
    const State last = b().NewState(r);
    g.Whitespace(some[n], last);
    b().AddLiteral(last, to, "}");
    if (additional != nullptr) {
      const State extra = b().NewState(r);
      const std::string extra_path = path + "/additionalProperties";
      auto emit_extra = [&](State at) -> Status {
        const State k = b().NewState(r);
        g.ExtraKey(at, k, names);
        const State w1 = b().NewState(r);
        g.Whitespace(k, w1);
        const State w2 = b().NewState(r);
        g.Whitespace(b().Literal(w1, ":"), w2);
        return Emit(*additional, w2, extra, extra_path, depth + 1);
      };
      RETURN_IF_ERROR(emit_extra(none[n]));
      RETURN_IF_ERROR(emit_extra(Comma(some[n])));
      RETURN_IF_ERROR(emit_extra(Comma(extra)));
      const State close = b().NewState(r);
      g.Whitespace(extra, close);
      b().AddLiteral(close, to, "}");
    }
    return b().status();
  }

  Status EmitArray(const json& s, State from, State to, const std::string& path, int depth) {
    static const json kAny = true;
    std::vector<std::pair<const json*, std::string>> prefix;
    const json* rest = &kAny;
    std::string rest_path = path + "/items";
    auto items = s.find("items");
    if (auto p = s.find("prefixItems"); p != s.end()) {
      if (!p->is_array()) return Error(path + "/prefixItems", "prefixItems must be an array");
      for (size_t i = 0; i < p->size(); ++i) {
        prefix.emplace_back(&(*p)[i], path + "/prefixItems/" + std::to_string(i));
      }
      if (items != s.end()) rest = &*items;
    } else if (items != s.end() && items->is_array()) {  // draft 4-7 tuple
      for (size_t i = 0; i < items->size(); ++i) {
        prefix.emplace_back(&(*items)[i], path + "/items/" + std::to_string(i));
      }
      if (auto a = s.find("additionalItems"); a != s.end()) rest = &*a;
      rest_path = path + "/additionalItems";
    } else if (items != s.end()) {
      rest = &*items;
    }
    if (!rest->is_boolean() && !rest->is_object()) {
      return Error(rest_path, "an item schema must be an object or a boolean");
    }
    const bool rest_allowed = !(rest->is_boolean() && !rest->get<bool>());
    ASSIGN_OR_RETURN(std::optional<int64_t> min_items, Count(s, "minItems", path));
    ASSIGN_OR_RETURN(std::optional<int64_t> max_items, Count(s, "maxItems", path));
    const int64_t min = min_items.value_or(0);
    std::optional<int64_t> max = max_items;
    if (!rest_allowed) max = std::min<int64_t>(max.value_or(INT64_MAX), prefix.size());
    if (max && *max < min) return Status::Ok();  // nothing fits: no edges
    const int64_t unrolled =
        std::max<int64_t>(max ? *max : std::max<int64_t>(min, prefix.size()), max ? 0 : 1);
    if (unrolled > g.options_.max_unrolled) {
      return Error(path, StrFormat("an array bound of %lld items is more than the %lld supported",
                                   static_cast<long long>(unrolled),
                                   static_cast<long long>(g.options_.max_unrolled)));
    }
    const bool ws = unrolled <= g.options_.max_ws_items;
    const Rule r = b().RuleOf(from);
    auto space = [&](State a, State z) {
      if (ws)
        g.Whitespace(a, z);
      else
        b().AddEpsilon(a, z);
    };
    auto item = [&](int64_t k, State a, State z) -> Status {
      if (k < static_cast<int64_t>(prefix.size())) {
        return Emit(*prefix[k].first, a, z, prefix[k].second, depth + 1);
      }
      return Emit(*rest, a, z, rest_path, depth + 1);
    };
    const State open = b().NewState(r);
    space(b().Literal(from, "["), open);
    auto close_from = [&](State at) {
      const State c = b().NewState(r);
      space(at, c);
      b().AddLiteral(c, to, "]");
    };
    if (min == 0) b().AddLiteral(open, to, "]");
    State at = open;
    for (int64_t k = 0; k < unrolled; ++k) {
      State start = at;
      if (k > 0) {
        const State a = b().NewState(r), c = b().NewState(r);
        space(at, a);
        space(b().Literal(a, ","), c);
        start = c;
      }
      const State next = b().NewState(r);
      RETURN_IF_ERROR(item(k, start, next));
      if (k + 1 >= min) close_from(next);
      at = next;
    }
    if (!max) {  // unbounded: more items of the rest schema
      const State a = b().NewState(r), c = b().NewState(r);
      space(at, a);
      space(b().Literal(a, ","), c);
      RETURN_IF_ERROR(Emit(*rest, c, at, rest_path, depth + 1));
    }
    return b().status();
  }
};

JsonGrammar::JsonGrammar(GrammarBuilder* builder, JsonSchemaOptions options)
    : b_(builder), options_(options) {}

JsonGrammar::~JsonGrammar() = default;

Result<GrammarBuilder::Rule> JsonGrammar::SchemaRule(const json& document) {
  Context ctx{*this, document};
  return ctx.RuleFor(document, kAll, "#", 0);
}

Result<std::shared_ptr<const Grammar>> CompileJsonSchema(const nlohmann::ordered_json& schema,
                                                         JsonSchemaOptions options,
                                                         GrammarLimits limits) {
  GrammarBuilder b(limits);
  JsonGrammar g(&b, options);
  ASSIGN_OR_RETURN(GrammarBuilder::Rule value, g.SchemaRule(schema));
  const GrammarBuilder::Rule root = b.NewRule("root");
  const State ws = b.NewState(root), end = b.NewState(root);
  g.Whitespace(b.Start(root), ws);
  b.AddCall(ws, end, value);
  b.SetAccepting(end);
  auto compiled = Grammar::Compile(b, root, limits);
  if (!compiled.ok()) {
    const std::string& m = compiled.status().message();
    if (m.find("matches nothing") != std::string::npos) {
      return Status::Error("the schema can never be satisfied (no JSON value passes it)");
    }
    return compiled.status();
  }
  return compiled;
}

}  // namespace reprise::grammar
