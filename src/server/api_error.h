// OpenAI-style API errors: the HTTP status plus the body
// {"error":{"message","type","param","code"}}. Every failure the server
// answers with (bad JSON, bad parameter, auth, routing, engine refusals) is
// one of these, so a client always gets a JSON error and never a dropped
// connection.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "engine/engine.h"

namespace reprise::server {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the request field at fault; empty -> null
  std::string code;   // machine-readable code; empty -> null
};

// 400 naming `param` (e.g. "temperature must be in [0, 2], got 3").
ApiError InvalidParam(const std::string& param, const std::string& message);
// 400 with code "context_length_exceeded" (param "messages" or "prompt").
ApiError ContextLengthExceeded(const std::string& param, const std::string& message);
ApiError Unauthorized(const std::string& message);
ApiError NotFound(const std::string& message);
ApiError MethodNotAllowed(const std::string& message);
ApiError PayloadTooLarge(const std::string& message);
ApiError Forbidden(const std::string& message);             // 403, code "forbidden"
ApiError LengthRequired(const std::string& message);        // 411
ApiError UnsupportedMediaType(const std::string& message);  // 415
ApiError RequestTimeout(const std::string& message);        // 408
ApiError ShuttingDown(const std::string& message);          // 503, code "shutting_down"
ApiError Internal(const std::string& message);
ApiError Unavailable(const std::string& message);  // 503

// Maps an engine refusal/failure to its HTTP error; `prompt_param` is the
// request field the prompt came from ("messages" or "prompt").
ApiError FromEngineError(engine::ErrorCode code, const Status& status,
                         const std::string& prompt_param);

// A ValidateSamplingParams() failure: its message starts with the field name.
ApiError FromSamplingError(const Status& status);

nlohmann::ordered_json ErrorJson(const ApiError& error);
std::string ErrorBody(const ApiError& error);  // ErrorJson(...).dump()

}  // namespace reprise::server
