// Server wiring: routes, admission (admission.cc), error/exception handlers,
// the HTTP threads (elastic_pool.h: one per connection, grown on demand),
// bind/run/stop (see server.h).
#include "server/server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <random>
#include <utility>
#include <vector>

#include "core/log.h"
#include "server/anthropic_types.h"
#include "server/elastic_pool.h"
#include "server/header_watchdog.h"
#include "server/json_body.h"
#include "server/server_internal.h"

namespace reprise::server {
namespace {

constexpr const char* kLog = "server";
constexpr int kListenBacklog = 4096;  // the kernel caps it at net.core.somaxconn

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
    case 408:
      return RequestTimeout("the request was not received in time");
    case 413:
      return PayloadTooLarge("the request body is larger than the server's limit");
    case 415:
      return UnsupportedMediaType("unsupported request body encoding");
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

bool Server::Impl::Aborting() const {
  if (!draining) return false;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  return now >= abort_at_ms.load();
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
  JsonParseResult parsed = ParseJsonBounded(req.body);
  if (!parsed.ok) {
    RespondError(res, InvalidParam("", parsed.error));
    return std::nullopt;
  }
  nlohmann::ordered_json& j = parsed.value;
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
  const int max_threads = std::max(threads, s.config.max_connections);
  Impl* pool_owner = impl_.get();
  s.http.new_task_queue = [threads, max_threads, pool_owner] {
    return new ElasticPool(threads, max_threads, [pool_owner] { ReleaseConnection(*pool_owner); });
  };
  s.http.set_payload_max_length(static_cast<size_t>(s.config.max_body_bytes));
  s.http.set_keep_alive_max_count(1000);
  s.http.set_read_timeout(s.config.read_timeout_s);
  s.http.set_keep_alive_timeout(s.config.idle_timeout_s);
  s.http.set_write_timeout(30);
  s.http.set_tcp_nodelay(true);

  Impl* p = impl_.get();
  auto bind = [p](void (*fn)(Server::Impl&, const httplib::Request&, httplib::Response&)) {
    return [p, fn](const httplib::Request& req, httplib::Response& res) { fn(*p, req, res); };
  };
  // POST routes read their body themselves (ReadBody: the byte limit holds
  // while reading, chunked or not).
  auto bind_post = [p](void (*fn)(Server::Impl&, const httplib::Request&, httplib::Response&)) {
    return [p, fn](const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& reader) {
      if (ReadBody(*p, req, res, reader)) fn(*p, req, res);
    };
  };
  for (const char* path : {"/v1/chat/completions", "/chat/completions"}) {
    s.http.Post(path, bind_post(HandleChatCompletions));
  }
  for (const char* path : {"/v1/completions", "/completions"}) {
    s.http.Post(path, bind_post(HandleCompletions));
  }
  for (const char* path : {"/v1/models", "/models"}) s.http.Get(path, bind(HandleModels));
  s.http.Get(R"(/v1/models/(.+))", bind(HandleModel));
  s.http.Post("/v1/messages", bind_post(HandleMessages));
  s.http.Post("/v1/messages/count_tokens", bind_post(HandleCountTokens));
  s.http.Post("/v1/responses", bind_post(HandleResponses));
  s.http.Get("/health", bind(HandleHealth));
  s.http.Get("/metrics", bind(HandleMetrics));
  s.http.Get("/v1/cache", bind(HandleCache));
  s.http.Post("/tokenize", bind_post(HandleTokenize));
  s.http.Post("/detokenize", bind_post(HandleDetokenize));

  s.http.set_pre_routing_handler([p](const httplib::Request& req, httplib::Response& res) {
    const httplib::Server::HandlerResponse r = Admit(*p, req, res);
    if (r == httplib::Server::HandlerResponse::Handled && res.status >= 400) {
      InRouteShape(req, res);  // refusals on /v1/messages in Anthropic's error shape
    }
    return r;
  });
  // Called for every response with status >= 400: fills in a JSON error
  // where the route did not write one (unknown route, 413, malformed HTTP).
  // (Unknown routes and methods are answered by Admit.)
  s.http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.content_provider_) return;
    if (res.body.empty()) RespondError(res, ErrorForStatus(res.status, req));
    InRouteShape(req, res);  // /v1/messages answers in Anthropic's error shape
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

namespace {

// httplib listens with a backlog of 5 (compiled into Debian's library): a
// burst of connections then waits out SYN retransmits (1 s, 3 s, ...).
// Listening again on the same socket raises the backlog; the socket is
// found by its port, since httplib does not expose it.
void RaiseListenBacklog(int port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const int fd = std::atoi(e->d_name);
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t addr_len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) continue;
    int bound = -1;
    if (addr.ss_family == AF_INET) {
      bound = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      bound = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    }
    if (bound == port) {
      if (listen(fd, kListenBacklog) != 0) LOG_WARN(kLog, "cannot raise the listen backlog");
      break;
    }
  }
  closedir(dir);
}

}  // namespace

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
  RaiseListenBacklog(s.bound_port);
  return Status::Ok();
}

int Server::port() const { return impl_->bound_port; }

void Server::Run() {
  Impl* p = impl_.get();
  std::unique_ptr<HeaderWatchdog> watchdog;
  if (p->config.header_timeout_s > 0) {
    watchdog = std::make_unique<HeaderWatchdog>(
        p->bound_port,
        std::chrono::milliseconds(static_cast<int64_t>(p->config.header_timeout_s * 1000)),
        [p](const std::string& peer) {
          std::lock_guard<std::mutex> lock(p->spoken_mu);
          return p->spoken.count(peer) != 0;
        });
  }
  LOG_INFO(kLog, "listening on http://%s:%d", p->config.host.c_str(), p->bound_port);
  p->http.listen_after_bind();
  if (watchdog) {
    watchdog->Stop();
    if (watchdog->shut_down() > 0) {
      LOG_INFO(kLog, "%lld connections were closed for not sending their headers in time",
               static_cast<long long>(watchdog->shut_down()));
    }
  }
}

void Server::Stop() {
  Impl& s = *impl_;
  if (!s.draining.exchange(true)) {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    s.abort_at_ms = now + static_cast<int64_t>(s.config.shutdown_timeout_s * 1000.0);
  }
  // Closes the listening socket; Run returns once the in-flight requests
  // (which see draining / Aborting()) have ended.
  if (s.http.is_running()) s.http.stop();
}

}  // namespace reprise::server
