// OpenAI-style error construction (see api_error.h).
#include "server/api_error.h"

namespace reprise::server {
namespace {

ApiError Make(int status, std::string message, std::string type, std::string param,
              std::string code) {
  ApiError e;
  e.http_status = status;
  e.message = std::move(message);
  e.type = std::move(type);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

}  // namespace

ApiError InvalidParam(const std::string& param, const std::string& message) {
  return Make(400, message, "invalid_request_error", param, "invalid_value");
}

ApiError ContextLengthExceeded(const std::string& param, const std::string& message) {
  return Make(400, message, "invalid_request_error", param, "context_length_exceeded");
}

ApiError Unauthorized(const std::string& message) {
  return Make(401, message, "invalid_request_error", "", "invalid_api_key");
}

ApiError NotFound(const std::string& message) {
  return Make(404, message, "invalid_request_error", "", "not_found");
}

ApiError MethodNotAllowed(const std::string& message) {
  return Make(405, message, "invalid_request_error", "", "method_not_allowed");
}

ApiError PayloadTooLarge(const std::string& message) {
  return Make(413, message, "invalid_request_error", "", "request_too_large");
}

ApiError Forbidden(const std::string& message) {
  return Make(403, message, "invalid_request_error", "", "forbidden");
}

ApiError LengthRequired(const std::string& message) {
  return Make(411, message, "invalid_request_error", "", "length_required");
}

ApiError UnsupportedMediaType(const std::string& message) {
  return Make(415, message, "invalid_request_error", "", "unsupported_media_type");
}

ApiError RequestTimeout(const std::string& message) {
  return Make(408, message, "invalid_request_error", "", "request_timeout");
}

ApiError ShuttingDown(const std::string& message) {
  return Make(503, message, "server_error", "", "shutting_down");
}

ApiError Internal(const std::string& message) {
  return Make(500, message, "server_error", "", "internal_error");
}

ApiError Unavailable(const std::string& message) {
  return Make(503, message, "server_error", "", "unavailable");
}

ApiError FromEngineError(engine::ErrorCode code, const Status& status,
                         const std::string& prompt_param) {
  const std::string& msg = status.message();
  switch (code) {
    case engine::ErrorCode::kContextLengthExceeded:
      return ContextLengthExceeded(prompt_param, msg);
    case engine::ErrorCode::kExceedsKvBudget:
      return Make(400, msg, "invalid_request_error", prompt_param, "exceeds_kv_budget");
    case engine::ErrorCode::kInvalidRequest:
      return Make(400, msg, "invalid_request_error", prompt_param, "invalid_value");
    case engine::ErrorCode::kOverloaded:
      return Make(503, msg, "server_error", "", "overloaded");
    case engine::ErrorCode::kShuttingDown:
      return Make(503, msg, "server_error", "", "shutting_down");
    case engine::ErrorCode::kInternal:
    case engine::ErrorCode::kOk:
      break;
  }
  return Internal(msg.empty() ? "internal error" : msg);
}

ApiError FromSamplingError(const Status& status) {
  const std::string& msg = status.message();
  const size_t end = msg.find_first_of(" :");
  return InvalidParam(end == std::string::npos ? msg : msg.substr(0, end), msg);
}

nlohmann::ordered_json ErrorJson(const ApiError& error) {
  nlohmann::ordered_json inner;
  inner["message"] = error.message;
  inner["type"] = error.type;
  inner["param"] =
      error.param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(error.param);
  inner["code"] =
      error.code.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(error.code);
  return {{"error", inner}};
}

std::string ErrorBody(const ApiError& error) {
  return ErrorJson(error).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace reprise::server
