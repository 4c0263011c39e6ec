// What every request must pass before its route runs (see server_internal.h).
// Runs as httplib's pre-routing handler: after the request line and headers
// are read and before any byte of the body is, so a refused request costs
// no body read. Order: route exists (404/405), shutdown (503), connections
// of this client address (429, counted from a connection's first request),
// Host (403),
// Origin and CORS preflight (403/204), API key (401), then for POST routes
// the body's framing and type (411/400/413/415).
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <string>

#include "server/anthropic_types.h"
#include "server/header_watchdog.h"
#include "server/server_internal.h"

namespace reprise::server {
namespace {

using HandlerResponse = httplib::Server::HandlerResponse;

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
  if (path.rfind("/v1/models/", 0) == 0 && path.size() > 11) return "GET";  // one model
  return nullptr;
}

// Routes that answer without an API key (probes and scrapers).
bool IsPublic(const std::string& path) { return path == "/health" || path == "/metrics"; }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsLoopbackBind(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// "name:port" / "[v6]:port" / "name" -> the name part ("[v6]" keeps its
// brackets); "" when the value is malformed.
std::string HostName(const std::string& host) {
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) return "";
    const std::string rest = host.substr(close + 1);
    if (!rest.empty() && !(rest[0] == ':' && AllDigits(rest.substr(1)))) return "";
    return host.substr(0, close + 1);
  }
  const size_t colon = host.find(':');
  if (colon == std::string::npos) return host;
  if (!AllDigits(host.substr(colon + 1))) return "";
  return host.substr(0, colon);
}

bool HostAllowed(const Server::Impl& s, const std::string& value) {
  const std::string host = Lower(Trim(value));
  const std::string name = HostName(host);
  if (name.empty()) return false;
  if (name == "localhost" || name == "127.0.0.1" || name == "[::1]") return true;
  for (const std::string& allowed : s.config.allowed_hosts) {
    const std::string a = Lower(allowed);
    if (a == "*" || a == host || a == name) return true;
  }
  return false;
}

bool OriginAllowed(const Server::Impl& s, const std::string& origin) {
  for (const std::string& allowed : s.config.cors_origins) {
    if (allowed == "*" || allowed == origin) return true;
  }
  return false;
}


// The socket of the request's connection (httplib does not expose it),
// found by its two addresses; -1 when not found.
int ConnectionFd(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const int fd = std::atoi(e->d_name);
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    std::string local_ip, peer_ip;
    int local_port = 0, peer_port = 0;
    if (!SocketAddressText(local, &local_ip, &local_port) ||
        !SocketAddressText(peer, &peer_ip, &peer_port)) {
      continue;
    }
    if (local_port == req.local_port && peer_port == req.remote_port &&
        peer_ip == req.remote_addr) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

// Most a refused request's unread body is drained before its connection is
// closed, and for how long: a client that writes its whole body before it
// reads (most do) then sees the error instead of a reset.
constexpr int64_t kLingerBytes = int64_t{64} << 20;
constexpr int kLingerMs = 2000;

}  // namespace

void RespondAndClose(const httplib::Request& req, httplib::Response& res, const ApiError& error) {
  // The body goes out here, before the route runs: in the route's error shape.
  const std::string body = req.path.rfind("/v1/messages", 0) == 0
                               ? AnthropicErrorBodyFrom(ErrorBody(error), error.http_status)
                               : ErrorBody(error);
  res.status = error.http_status;
  res.set_header("Connection", "close");
  const int fd = ConnectionFd(req);
  char peek = 0;
  if (fd >= 0 && recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
    // The client ended its side (e.g. sent a body shorter than announced and
    // shut down writing). httplib will not write to such a socket, so answer
    // here; httplib's own attempt then fails and it closes the connection.
    const std::string head =
        StrFormat("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n",
                  error.http_status, error.http_status == 413 ? "Payload Too Large" : "Error",
                  body.size());
    const std::string all = head + body;
    size_t sent = 0;
    while (sent < all.size()) {
      const ssize_t n = send(fd, all.data() + sent, all.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    res.set_content_provider(body.size(), "application/json",
                             [](size_t, size_t, httplib::DataSink&) { return false; });
    return;
  }
  res.set_content_provider(
      body.size(), "application/json",
      [body, fd](size_t offset, size_t /*length*/, httplib::DataSink& sink) {
        if (!sink.write(body.data() + offset, body.size() - offset)) return false;
        if (fd >= 0) {
          // Lingering close: end our side, then read and drop what the client
          // still sends, within bounds.
          shutdown(fd, SHUT_WR);
          const auto deadline =
              std::chrono::steady_clock::now() + std::chrono::milliseconds(kLingerMs);
          int64_t drained = 0;
          char buf[65536];
          while (drained < kLingerBytes) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  deadline - std::chrono::steady_clock::now())
                                  .count();
            if (left <= 0) break;
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, static_cast<int>(left)) <= 0) break;
            const ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n <= 0) break;
            drained += n;
          }
        }
        return false;  // tells httplib to close the connection
      });
}

namespace {

HandlerResponse Refuse(const httplib::Request& req, httplib::Response& res,
                       const ApiError& error) {
  // A refused request's body is never read: a connection with one pending
  // cannot carry another request.
  const bool has_body =
      req.has_header("Transfer-Encoding") ||
      (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
  if (has_body) {
    RespondAndClose(req, res, error);
  } else {
    RespondError(res, error);
  }
  return HandlerResponse::Handled;
}

// Checks the framing and type of a POST body; an error when refused.
std::optional<ApiError> CheckBodyHeaders(const Server::Impl& s, const httplib::Request& req) {
  const std::string type = Lower(req.get_header_value("Content-Type"));
  if (Trim(type.substr(0, type.find(';'))) != "application/json") {
    return UnsupportedMediaType("request bodies must be JSON sent as Content-Type: "
                                "application/json, got '" +
                                req.get_header_value("Content-Type") + "'");
  }
  const bool has_te = req.has_header("Transfer-Encoding");
  const bool has_cl = req.has_header("Content-Length");
  if (has_te) {
    if (Lower(Trim(req.get_header_value("Transfer-Encoding"))) != "chunked") {
      return InvalidParam("", "unsupported Transfer-Encoding '" +
                                  req.get_header_value("Transfer-Encoding") + "'");
    }
    if (has_cl) return InvalidParam("", "a request must not carry both Content-Length and "
                                        "Transfer-Encoding");
    return std::nullopt;  // the limit is enforced while reading
  }
  if (!has_cl) {
    return LengthRequired("a request body needs Content-Length or Transfer-Encoding: chunked");
  }
  const size_t n = req.get_header_value_count("Content-Length");
  const std::string first = Trim(req.get_header_value("Content-Length", 0));
  for (size_t i = 1; i < n; ++i) {
    if (Trim(req.get_header_value("Content-Length", i)) != first) {
      return InvalidParam("", "conflicting Content-Length headers");
    }
  }
  // Digits only: no sign, and at most 18 of them, so the value fits int64.
  if (!AllDigits(first) || first.size() > 18) {
    return InvalidParam("", "invalid Content-Length '" + first + "'");
  }
  if (std::stoll(first) > s.config.max_body_bytes) {
    return PayloadTooLarge(StrFormat("the request body (%s bytes) is larger than the server's "
                                     "limit of %lld bytes",
                                     first.c_str(),
                                     static_cast<long long>(s.config.max_body_bytes)));
  }
  return std::nullopt;
}

// The client address this thread's connection is counted under ("" when
// not counted yet): httplib serves one connection per thread at a time.
thread_local std::string tl_counted_client;
// The peer key of this thread's connection once it has sent a request.
thread_local std::string tl_spoken_peer;

void MarkSpoken(Server::Impl& s, const httplib::Request& req) {
  if (!tl_spoken_peer.empty()) return;
  tl_spoken_peer = PeerKey(req.remote_addr, req.remote_port);
  std::lock_guard<std::mutex> lock(s.spoken_mu);
  s.spoken.insert(tl_spoken_peer);
}

// Counts the connection under its address on its first request; false when
// that address already has the most connections allowed.
bool CountConnection(Server::Impl& s, const std::string& addr) {
  if (!tl_counted_client.empty() || s.config.max_connections_per_client <= 0) return true;
  std::lock_guard<std::mutex> lock(s.clients_mu);
  int& n = s.clients[addr];
  if (n >= s.config.max_connections_per_client) {
    if (n == 0) s.clients.erase(addr);
    return false;
  }
  ++n;
  tl_counted_client = addr;
  return true;
}

}  // namespace

void ReleaseConnection(Server::Impl& s) {
  if (!tl_spoken_peer.empty()) {
    std::lock_guard<std::mutex> lock(s.spoken_mu);
    s.spoken.erase(tl_spoken_peer);
    tl_spoken_peer.clear();
  }
  if (tl_counted_client.empty()) return;
  std::lock_guard<std::mutex> lock(s.clients_mu);
  auto it = s.clients.find(tl_counted_client);
  if (it != s.clients.end() && --it->second <= 0) s.clients.erase(it);
  tl_counted_client.clear();
}

int ApiKeyIndex(const Server::Impl& s, const httplib::Request& req) {
  if (s.config.api_keys.empty()) return -1;
  const std::string auth = req.get_header_value("Authorization");
  constexpr const char kBearer[] = "Bearer ";
  std::string key;
  if (auth.rfind(kBearer, 0) == 0) {
    key = auth.substr(sizeof(kBearer) - 1);
  } else if (req.has_header("x-api-key")) {  // Anthropic clients
    key = req.get_header_value("x-api-key");
  } else {
    return -1;
  }
  int found = -1;
  // Compare with every key (no early exit on the first match or mismatch).
  for (size_t i = 0; i < s.config.api_keys.size(); ++i) {
    const std::string& k = s.config.api_keys[i];
    unsigned diff = k.size() != key.size() ? 1u : 0u;
    for (size_t j = 0; j < k.size(); ++j) {
      diff |= static_cast<unsigned char>(k[j]) ^
              static_cast<unsigned char>(j < key.size() ? key[j] : 0);
    }
    if (diff == 0 && found < 0) found = static_cast<int>(i);
  }
  return found;
}

HandlerResponse Admit(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  MarkSpoken(s, req);  // its headers are in: the header deadline no longer applies
  const bool is_post = req.method == "POST";
  const char* allowed = AllowedMethod(req.path);
  const bool preflight = req.method == "OPTIONS" && req.has_header("Origin");
  // A request on no route is answered before its body is read.
  if (allowed == nullptr) {
    return Refuse(req, res, NotFound("unknown route " + req.method + " " + req.path));
  }
  const bool head_of_get = req.method == "HEAD" && std::string(allowed) == "GET";
  if (req.method != allowed && !preflight && !head_of_get) {
    res.set_header("Allow", allowed);
    return Refuse(req, res,
                  MethodNotAllowed("method " + req.method + " is not allowed on " + req.path));
  }
  if (s.draining) return Refuse(req, res, ShuttingDown("the server is shutting down"));
  if (!CountConnection(s, req.remote_addr)) {
    ApiError e = InvalidParam("", StrFormat("too many connections from %s (at most %d; see "
                                            "--max-connections-per-client)",
                                            req.remote_addr.c_str(),
                                            s.config.max_connections_per_client));
    e.http_status = 429;
    e.code = "too_many_connections";
    RespondAndClose(req, res, e);
    return HandlerResponse::Handled;
  }
  if (IsLoopbackBind(s.config.host) && req.has_header("Host") &&
      !HostAllowed(s, req.get_header_value("Host"))) {
    return Refuse(req, res,
                  Forbidden("Host '" + req.get_header_value("Host") +
                            "' is not allowed: this server listens on a loopback address and "
                            "answers only requests naming it (see --allowed-hosts)"));
  }
  if (req.has_header("Origin")) {
    const std::string origin = req.get_header_value("Origin");
    if (!OriginAllowed(s, origin)) {
      return Refuse(req, res,
                    Forbidden("cross-origin requests from '" + origin +
                              "' are not allowed (see --cors-origin)"));
    }
    res.set_header("Access-Control-Allow-Origin", origin);
    res.set_header("Vary", "Origin");
    if (preflight) {
      res.status = 204;
      res.set_header("Access-Control-Allow-Methods", std::string(allowed) + ", OPTIONS");
      res.set_header("Access-Control-Allow-Headers",
                     "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta");
      res.set_header("Access-Control-Max-Age", "600");
      return HandlerResponse::Handled;
    }
  }
  if (!s.config.api_keys.empty() && !IsPublic(req.path) && ApiKeyIndex(s, req) < 0) {
    const bool sent = req.has_header("Authorization") || req.has_header("x-api-key");
    return Refuse(req, res,
                  Unauthorized(sent ? "invalid API key"
                                    : "missing API key (send Authorization: Bearer KEY or "
                                      "x-api-key: KEY)"));
  }
  if (is_post) {
    if (auto error = CheckBodyHeaders(s, req)) return Refuse(req, res, *error);
  }
  return HandlerResponse::Unhandled;
}

bool ReadBody(Server::Impl& s, const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader& reader) {
  const int64_t limit = s.config.max_body_bytes;
  std::string body;
  if (req.has_header("Content-Length")) {
    body.reserve(static_cast<size_t>(
        std::min<int64_t>(limit, std::stoll(req.get_header_value("Content-Length")))));
  }
  bool too_large = false;
  const bool ok = reader([&](const char* data, size_t n) {
    if (static_cast<int64_t>(body.size() + n) > limit) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_large) {
    RespondAndClose(req, res,
                    PayloadTooLarge(StrFormat("the request body is larger than the server's "
                                              "limit of %lld bytes",
                                              static_cast<long long>(limit))));
    return false;
  }
  if (!ok) {
    RespondAndClose(req, res,
                    InvalidParam("", "the request body ended before its announced length, or "
                                     "its chunked encoding is malformed"));
    return false;
  }
  const_cast<httplib::Request&>(req).body = std::move(body);
  return true;
}

}  // namespace reprise::server
