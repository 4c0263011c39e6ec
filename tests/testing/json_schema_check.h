// A small JSON Schema validator for tests, written apart from the grammar
// compiler (src/grammar/json_schema.cc) so the two can check each other: it
// implements the keywords that compiler supports, with their JSON Schema
// meaning (oneOf is exactly-one here, dates check days per month and leap
// years, additionalProperties absent allows anything). The Node tests check
// the same outputs with ajv.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace reprise::testing {

// "" when `value` is valid under `schema` (a document: $ref "#..." resolves
// inside it); otherwise what fails, with the JSON pointer of the value.
std::string SchemaViolation(const nlohmann::ordered_json& value,
                            const nlohmann::ordered_json& schema);

}  // namespace reprise::testing
