// JSON Schema -> byte-level grammar (grammar.h): the JSON texts a schema
// accepts, written the way the grammar lets a model write them.
//
// Supported (everything else is an error naming the keyword and where it is,
// never silently ignored):
//  - type (a name or an array of names), enum, const, nullable (OpenAPI);
//  - objects: properties, required, additionalProperties (false / true /
//    a schema; when absent and properties are given, no extra property is
//    generated, as OpenAI's and XGrammar's strict modes do; an object schema
//    without properties allows any members), minProperties 0;
//  - arrays: items (a schema, true/false, or the draft-4..7 tuple array with
//    additionalItems), prefixItems, minItems, maxItems, uniqueItems false;
//  - strings: minLength, maxLength (in code points), format date, time,
//    date-time, uuid (dates use days 1-28 in February: always valid);
//  - numbers and integers: minimum, maximum, exclusiveMinimum,
//    exclusiveMaximum (numbers or draft-4 booleans), multipleOf 1 (integers),
//    format int32/int64/float/double;
//  - $ref to "#", "#/$defs/..", "#/definitions/..", or any JSON pointer into
//    the same document (recursion allowed, except a schema that reaches
//    itself before reading anything: left recursion is refused);
//  - anyOf, oneOf (treated as anyOf: when branches overlap a value may match
//    several), allOf with one schema;
//  - annotations: title, description, default, examples, $schema, $id,
//    $comment, $anchor, deprecated, readOnly, writeOnly, $defs, definitions,
//    contentEncoding, contentMediaType, and every "x-..." key.
// Unsupported: pattern, patternProperties, propertyNames, not, if/then/else,
// dependencies, uniqueItems true, contains, min/maxProperties (other than
// minProperties 0), unevaluated*, remote $ref, other formats.
//
// What is generated, so that every text parses and validates:
//  - properties in the schema's order (each at most once, required ones
//    always); extra properties (when allowed) after them, with printable-ASCII
//    names that are not declared properties and no escapes;
//  - strings: valid UTF-8, escapes \" \\ \/ \b \f \n \r \t and \uXXXX except
//    surrogates (nlohmann and JavaScript both read them);
//  - numbers: at most 16 integer digits, 16 fraction digits and a 2-digit
//    exponent (always finite). With bounds: exact decimal ranges, no
//    exponent, and fractions of at most 6 digits on at most 9 integer
//    digits (15 significant digits: every text reads back as a distinct
//    double, so a bound is never crossed by rounding);
//  - whitespace: at most one space, or one newline and up to 20 spaces/tabs,
//    between tokens (none with JsonSchemaOptions::whitespace off), none
//    after the value. Arrays longer than 64 items take no whitespace between
//    items (bounds the automaton).
// Limits (JsonSchemaOptions): schema nesting, enum/const bytes, lengths and
// counts spelled out, and the grammar's state limits; passing one is an
// error, never a hang. Errors say which keyword, where (JSON pointer).
// Invariant: compiled rules are memoized per (schema node, kind), so a $ref
// to a schema already being compiled becomes a call (recursion), and every
// rule is compiled once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "grammar/grammar.h"

namespace reprise::grammar {

struct JsonSchemaOptions {
  bool whitespace = true;
  // Strings are inlined into the rule that contains them (true), or one
  // shared rule is called (false): fewer automaton states, but tokens that
  // close a string and go on depend on the caller (see matcher.h).
  bool inline_strings = true;
  int max_depth = 64;                   // schema nesting (objects, arrays, anyOf, ...)
  int64_t max_literal_bytes = 1 << 20;  // enum/const texts, all together
  int max_ws_items = 64;                // longer arrays: no whitespace between items
  int64_t max_unrolled = 10000;         // string lengths / item counts spelled out
};

// Adds JSON rules to a builder. One object may compile several schemas (of
// several documents) into the same builder, e.g. every tool's parameters.
class JsonGrammar {
 public:
  using json = nlohmann::ordered_json;
  using State = GrammarBuilder::State;
  using Rule = GrammarBuilder::Rule;

  JsonGrammar(GrammarBuilder* builder, JsonSchemaOptions options = {});
  ~JsonGrammar();

  // A rule matching the JSON texts of the values `schema` accepts. `document`
  // is the schema's root (for $ref) and must outlive the builder's use.
  // Errors name the keyword and its place as a JSON pointer ("#/properties/x").
  Result<Rule> SchemaRule(const json& document);
  // Any JSON object / any JSON value.
  Rule AnyObjectRule();
  Rule AnyValueRule();
  // The bounded whitespace between JSON tokens, from -> to.
  void Whitespace(State from, State to);
  GrammarBuilder& builder() { return *b_; }

  struct Context;

 private:
  friend struct Context;
  GrammarBuilder* b_;
  JsonSchemaOptions options_;
  std::map<std::pair<const json*, int>, Rule> memo_;
  Rule any_value_ = UINT32_MAX, any_object_ = UINT32_MAX, any_array_ = UINT32_MAX;
  Rule string_rule_ = UINT32_MAX;
  int64_t literal_bytes_ = 0;

 public:
  // Terminal fragments (json_terminals.cc), from -> to inside one rule.
  Status String(State from, State to, int64_t min_len, int64_t max_len);  // max -1 = none
  Status FormattedString(State from, State to, const std::string& format);
  void PlainString(State from, State to);  // inline or a call, per options
  void Integer(State from, State to);
  void Number(State from, State to);
  // Integers in [lo, hi] (each bound optional: none = 16 digits).
  void IntegerRange(State from, State to, std::optional<int64_t> lo, std::optional<int64_t> hi);
  // Numbers in [lo, hi] / (lo, hi) with exclusive flags, no exponent; a
  // fraction has at most 6 digits and its integer part at most 9 (so every
  // text reads back as a distinct double); false if none can be written.
  bool NumberRange(State from, State to, std::optional<double> lo, bool lo_excl,
                   std::optional<double> hi, bool hi_excl);
  // Unsigned decimals ("I" or "I.F") with a value in [lo, hi] (lo >= 0).
  void MagnitudeRange(State from, State to, double lo, bool lo_excl, std::optional<double> hi,
                      bool hi_excl);
  // A property name of extra properties: printable ASCII without escapes,
  // quoted, never one of `declared`.
  void ExtraKey(State from, State to, const std::vector<std::string>& declared);
  int64_t& literal_bytes() { return literal_bytes_; }
  const JsonSchemaOptions& options() const { return options_; }
};

// Convenience: the grammar of `[whitespace] value` for one schema document
// (json_object: pass {"type":"object"}).
Result<std::shared_ptr<const Grammar>> CompileJsonSchema(const nlohmann::ordered_json& schema,
                                                         JsonSchemaOptions options = {},
                                                         GrammarLimits limits = {});

}  // namespace reprise::grammar
