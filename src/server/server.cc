// Server wiring: routes, authentication, error/exception handlers, the HTTP
// thread pool, bind/run/stop (see server.h).
#include "server/server.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>
#include <vector>

#include "core/log.h"
#include "server/anthropic_types.h"
#include "server/server_internal.h"

namespace reprise::server {
namespace {

constexpr const char* kLog = "server";

struct Route {
  const char* path;
  const char* method;
};

// Every route, for telling 404 (unknown path) from 405 (wrong method).
constexpr Route kRoutes[] = {
    {"/v1/chat/completions", "POST"},
    {"/chat/completions", "POST"},
    {"/v1/completions", "POST"},
    {"/completions", "POST"},
    {"/v1/messages", "POST"},
    {"/v1/messages/count_tokens", "POST"},
    {"/v1/responses", "POST"},
    {"/v1/models", "GET"},
    {"/models", "GET"},
    {"/health", "GET"},
    {"/metrics", "GET"},
    {"/v1/cache", "GET"},
    {"/tokenize", "POST"},
    {"/detokenize", "POST"},
};

const char* AllowedMethod(const std::string& path) {
  for (const Route& r : kRoutes) {
    if (path == r.path) return r.method;
  }
  return nullptr;
}

// Routes that answer without an API key (probes and scrapers).
bool IsPublic(const std::string& path) { return path == "/health" || path == "/metrics"; }

ApiError ErrorForStatus(int status, const httplib::Request& req) {
  switch (status) {
    case 400:
      return InvalidParam("", "malformed HTTP request");
    case 401:
      return Unauthorized("missing or invalid API key");
    case 404:
      return NotFound("unknown route " + req.method + " " + req.path);
    case 405:
      return MethodNotAllowed("method " + req.method + " is not allowed on " + req.path);
    case 413:
      return PayloadTooLarge("the request body is larger than the server's limit");
    case 414:
      return InvalidParam("", "the request URI is too long");
    default:
      break;
  }
  ApiError e = status >= 500 ? Internal("internal server error") : InvalidParam("", "bad request");
  e.http_status = status;
  return e;
}

// The Anthropic routes answer every error in Anthropic's shape, also the
// OpenAI-shaped ones written by shared code (401, 404, 405, 413, bad JSON).
// Runs in the error handler: before httplib sets Content-Length.
void InRouteShape(const httplib::Request& req, httplib::Response& res) {
  if (req.path.rfind("/v1/messages", 0) == 0) {
    res.body = AnthropicErrorBodyFrom(res.body, res.status);
  }
}

}  // namespace

std::string Server::Impl::NewId(const char* prefix) {
  const uint64_t n = next_id.fetch_add(1) + 1;
  return StrFormat("%s-%08llx%06llx", prefix,
                   static_cast<unsigned long long>(id_salt & 0xffffffffu),
                   static_cast<unsigned long long>(n));
}

void RespondError(httplib::Response& res, const ApiError& error) {
  res.status = error.http_status;
  res.set_content(ErrorBody(error), "application/json");
}

void RespondJson(httplib::Response& res, const nlohmann::ordered_json& body, int status) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

std::optional<nlohmann::ordered_json> ParseJsonBody(const httplib::Request& req,
                                                    httplib::Response& res) {
  nlohmann::ordered_json j =
      nlohmann::ordered_json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    RespondError(res, InvalidParam("", "the request body is not valid JSON"));
    return std::nullopt;
  }
  if (!j.is_object()) {
    RespondError(res, InvalidParam("", "the request body must be a JSON object"));
    return std::nullopt;
  }
  return j;
}

Server::Server(engine::Engine& engine, const tokenizer::Tokenizer& tok,
               std::unique_ptr<ChatRenderer> renderer, ServerConfig config)
    : impl_(std::make_unique<Impl>(engine, tok, std::move(renderer), std::move(config))) {
  Impl& s = *impl_;
  s.id_salt = std::random_device{}();
  s.started_unix_s = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const int threads = s.config.http_threads > 0 ? s.config.http_threads
                                                : std::max(16, 4 * engine.config().max_parallel);
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.http.set_payload_max_length(static_cast<size_t>(s.config.max_body_bytes));
  s.http.set_keep_alive_max_count(1000);
  s.http.set_read_timeout(30);
  s.http.set_write_timeout(30);
  s.http.set_tcp_nodelay(true);

  Impl* p = impl_.get();
  auto bind = [p](void (*fn)(Server::Impl&, const httplib::Request&, httplib::Response&)) {
    return [p, fn](const httplib::Request& req, httplib::Response& res) { fn(*p, req, res); };
  };
  for (const char* path : {"/v1/chat/completions", "/chat/completions"}) {
    s.http.Post(path, bind(HandleChatCompletions));
  }
  for (const char* path : {"/v1/completions", "/completions"}) {
    s.http.Post(path, bind(HandleCompletions));
  }
  for (const char* path : {"/v1/models", "/models"}) s.http.Get(path, bind(HandleModels));
  s.http.Get(R"(/v1/models/(.+))", bind(HandleModel));
  s.http.Post("/v1/messages", bind(HandleMessages));
  s.http.Post("/v1/messages/count_tokens", bind(HandleCountTokens));
  s.http.Post("/v1/responses", bind(HandleResponses));
  s.http.Get("/health", bind(HandleHealth));
  s.http.Get("/metrics", bind(HandleMetrics));
  s.http.Get("/v1/cache", bind(HandleCache));
  s.http.Post("/tokenize", bind(HandleTokenize));
  s.http.Post("/detokenize", bind(HandleDetokenize));

  s.http.set_pre_routing_handler([p](const httplib::Request& req, httplib::Response& res) {
    if (p->config.api_key.empty() || IsPublic(req.path)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string auth = req.get_header_value("Authorization");
    if (auth == "Bearer " + p->config.api_key) return httplib::Server::HandlerResponse::Unhandled;
    const std::string x_api_key = req.get_header_value("x-api-key");  // Anthropic clients
    if (x_api_key == p->config.api_key) return httplib::Server::HandlerResponse::Unhandled;
    RespondError(res, Unauthorized(auth.empty() && x_api_key.empty()
                                       ? "missing API key (send Authorization: Bearer KEY or "
                                         "x-api-key: KEY)"
                                       : "invalid API key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Called for every response with status >= 400: fills in a JSON error
  // where the route did not write one (unknown route, 413, malformed HTTP).
  s.http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return InRouteShape(req, res);
    int status = res.status;
    // httplib answers a method without a matching route with 404 (GET) or
    // 400 (POST, PUT, ...); a parsed request line tells them from garbage.
    if ((status == 404 || status == 400) && !req.method.empty() && !req.path.empty()) {
      const char* allowed = AllowedMethod(req.path);
      if (allowed == nullptr) {
        status = 404;
      } else if (req.method != allowed) {
        status = 405;
        res.set_header("Allow", allowed);
      }
    }
    RespondError(res, ErrorForStatus(status, req));
    InRouteShape(req, res);
  });
  s.http.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        LOG_ERROR(kLog, "%s %s: exception: %s", req.method.c_str(), req.path.c_str(), what.c_str());
        RespondError(res, Internal("internal error: " + what));
      });
  s.http.set_logger([p](const httplib::Request&, const httplib::Response& res) {
    p->metrics.CountResponse(res.status);
  });
}

Server::~Server() { Stop(); }

Status Server::Bind() {
  Impl& s = *impl_;
  if (s.config.port == 0) {
    s.bound_port = s.http.bind_to_any_port(s.config.host);
    if (s.bound_port <= 0) return Errorf("cannot listen on %s (any port)", s.config.host.c_str());
  } else {
    if (!s.http.bind_to_port(s.config.host, s.config.port)) {
      return Errorf("cannot listen on %s:%d (address in use or not available)",
                    s.config.host.c_str(), s.config.port);
    }
    s.bound_port = s.config.port;
  }
  return Status::Ok();
}

int Server::port() const { return impl_->bound_port; }

void Server::Run() {
  LOG_INFO(kLog, "listening on http://%s:%d", impl_->config.host.c_str(), impl_->bound_port);
  impl_->http.listen_after_bind();
}

void Server::Stop() {
  impl_->stopping = true;
  if (impl_->http.is_running()) impl_->http.stop();
}

}  // namespace reprise::server
