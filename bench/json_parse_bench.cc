// Parse time of a 1 MB chat request: nlohmann::ordered_json::parse, our
// bounded SAX parser (server/json_body.h, what the server uses), and, when
// Debian's libsimdjson-dev is installed, simdjson alone and simdjson plus the
// conversion to the nlohmann DOM the chat renderer needs. Best of N runs.
//   build/bin/json_parse_bench [MiB=1] [runs=20]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "server/json_body.h"

#ifdef REPRISE_HAVE_SIMDJSON
#include <simdjson.h>
#endif

namespace {

using json = nlohmann::ordered_json;

std::string ChatRequest(size_t bytes) {
  json messages = json::array();
  const std::string para =
      "Voici un paragraphe d'exemple avec des accents (é, ü, ñ), des \"guillemets\", "
      "des retours\nà la ligne, du code `x = {\"a\": [1, 2, 3]}` et des emoji 🙂. ";
  size_t total = 0;
  for (int i = 0; total < bytes; ++i) {
    std::string content;
    while (content.size() < 4000) content += para;
    total += content.size() + 40;
    messages.push_back({{"role", i % 2 ? "assistant" : "user"}, {"content", content}});
  }
  json body = {{"model", "m"}, {"messages", messages}, {"temperature", 0.7},
               {"max_tokens", 256}, {"stream", true}};
  return body.dump();
}

double BestMs(int runs, const std::function<void()>& fn) {
  double best = 1e30;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, ms);
  }
  return best;
}

#ifdef REPRISE_HAVE_SIMDJSON
json ToNlohmann(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: {
      json a = json::array();
      for (simdjson::dom::element child : e.get_array()) a.push_back(ToNlohmann(child));
      return a;
    }
    case simdjson::dom::element_type::OBJECT: {
      json o = json::object();
      for (auto field : e.get_object()) o[std::string(field.key)] = ToNlohmann(field.value);
      return o;
    }
    case simdjson::dom::element_type::INT64: return json(int64_t(e.get_int64()));
    case simdjson::dom::element_type::UINT64: return json(uint64_t(e.get_uint64()));
    case simdjson::dom::element_type::DOUBLE: return json(double(e.get_double()));
    case simdjson::dom::element_type::STRING: return json(std::string(e.get_string().value()));
    case simdjson::dom::element_type::BOOL: return json(bool(e.get_bool()));
    case simdjson::dom::element_type::NULL_VALUE: return json(nullptr);
  }
  return json();
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const double mib = argc > 1 ? std::atof(argv[1]) : 1.0;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 20;
  const std::string body = ChatRequest(static_cast<size_t>(mib * (1 << 20)));
  std::printf("chat request: %zu bytes, best of %d runs\n", body.size(), runs);
  const double nl = BestMs(runs, [&] {
    json j = json::parse(body);
    if (!j.is_object()) std::abort();
  });
  std::printf("nlohmann ordered_json::parse        %8.2f ms  %7.0f MB/s\n", nl,
              body.size() / nl / 1e3);
  const double bounded = BestMs(runs, [&] {
    reprise::server::JsonParseResult r = reprise::server::ParseJsonBounded(body);
    if (!r.ok) std::abort();
  });
  std::printf("ParseJsonBounded (server)           %8.2f ms  %7.0f MB/s\n", bounded,
              body.size() / bounded / 1e3);
#ifdef REPRISE_HAVE_SIMDJSON
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(body);
  const double simd = BestMs(runs, [&] {
    simdjson::dom::element e;
    if (parser.parse(padded).get(e)) std::abort();
  });
  std::printf("simdjson dom::parser (%s)        %8.2f ms  %7.0f MB/s\n",
              simdjson::get_active_implementation()->name().c_str(), simd,
              body.size() / simd / 1e3);
  const double simd_conv = BestMs(runs, [&] {
    simdjson::dom::element e;
    if (parser.parse(padded).get(e)) std::abort();
    json j = ToNlohmann(e);
    if (!j.is_object()) std::abort();
  });
  std::printf("simdjson + conversion to nlohmann   %8.2f ms  %7.0f MB/s\n", simd_conv,
              body.size() / simd_conv / 1e3);
#else
  std::printf("simdjson: not built (install libsimdjson-dev and re-run cmake)\n");
#endif
  return 0;
}
