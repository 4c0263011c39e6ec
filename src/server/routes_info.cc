// Informational routes: /v1/models, /v1/models/{id}, /health, /metrics, /v1/cache, /tokenize,
// /detokenize. Read-only views of the engine; none of them blocks on it.
#include <string>
#include <vector>

#include "server/server_internal.h"

namespace reprise::server {

using json = nlohmann::ordered_json;

namespace {

json ModelJson(Server::Impl& s) {
  const engine::EngineStats st = s.engine.Stats();
  json model = {{"id", s.config.model_id},
                {"object", "model"},
                {"created", s.started_unix_s},
                {"owned_by", "reprise"},
                {"description", s.config.model_description},
                {"output_is_noise", s.config.model_output_is_noise},
                {"context_length", st.ctx_size},
                {"chat_template", s.renderer ? json(s.renderer->name()) : json(nullptr)}};
  if (s.config.model_output_is_noise) {
    model["warning"] =
        "This is reprise's built-in demo model: random weights, so its output is noise. "
        "Serve a real model with `make run MODEL=path.gguf`.";
  } else if (s.config.model_is_scripted) {
    model["scripted"] = true;
    model["warning"] =
        "This is a scripted test model: it replies with a fixed script whatever the prompt "
        "(reprise's end-to-end tests use it). It is not a real model.";
  }
  return model;
}

}  // namespace

void HandleModels(Server::Impl& s, const httplib::Request&, httplib::Response& res) {
  RespondJson(res, {{"object", "list"}, {"data", json::array({ModelJson(s)})}});
}

// GET /v1/models/{id}: the served model, or 404 for any other id.
void HandleModel(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches.size() > 1 ? req.matches[1].str() : "";
  if (id != s.config.model_id) {
    RespondError(res, NotFound("model '" + id + "' does not exist; this server serves '" +
                               s.config.model_id + "'"));
    return;
  }
  RespondJson(res, ModelJson(s));
}

void HandleHealth(Server::Impl& s, const httplib::Request&, httplib::Response& res) {
  if (s.draining) {
    RespondError(res, Unavailable("the server is shutting down"));
    return;
  }
  if (!s.engine.Healthy()) {
    RespondError(res, Unavailable("the engine thread is not making progress"));
    return;
  }
  RespondJson(res, {{"status", "ok"}});
}

void HandleMetrics(Server::Impl& s, const httplib::Request&, httplib::Response& res) {
  res.status = 200;
  res.set_content(s.metrics.Render(s.engine.Stats(), s.engine.Healthy()),
                  "text/plain; version=0.0.4; charset=utf-8");
}

void HandleCache(Server::Impl& s, const httplib::Request&, httplib::Response& res) {
  const engine::EngineStats st = s.engine.Stats();
  const std::vector<kv::CacheEntryInfo> entries = s.engine.CacheEntries();
  json data = json::array();
  for (const kv::CacheEntryInfo& e : entries) {
    data.push_back({{"tokens", e.tokens},
                    {"bytes", e.bytes},
                    {"blocks", e.blocks},
                    {"shared_blocks", e.shared_blocks},
                    {"last_use_unix_ms", e.last_use_unix_ms},
                    {"hits", e.hits},
                    // Where its blocks live: all in the pool; some may also
                    // have a copy in a lower tier already.
                    {"tiers", st.lower_tiers.empty()
                                  ? json{{st.pool_tier, e.blocks}}
                                  : json{{st.pool_tier, e.blocks}, {st.lower_name, e.lower_blocks}}}});
  }
  const kv::PromptCacheStats& c = st.cache;
  json body = {{"object", "list"},
               {"data", data},
               {"entries", c.entries},
               {"max_entries", s.engine.config().max_cache_entries},
               {"cached_blocks", c.cached_blocks},
               {"cached_bytes", c.cached_bytes},
               {"cached_tokens", c.cached_tokens},
               {"hits", c.hits},
               {"misses", c.misses},
               {"hit_tokens", c.hit_tokens},
               {"evictions", c.evictions},
               {"kv_bytes_in_use", st.kv_bytes_in_use},
               {"kv_bytes_limit", st.kv_bytes_limit},
               {"kv_blocks_in_use", st.kv_used_blocks},
               {"kv_blocks_capacity", st.kv_capacity_blocks},
               {"block_tokens", st.block_tokens},
               {"active_requests", st.active},
               {"queued_requests", st.queued}};
  // The tiers: the pool's cached blocks ("ram", or "device" on a GPU), and
  // the tiers below it, which also hold conversations that are no longer in
  // the pool (not listed in data).
  json tiers = {{st.pool_tier, {{"blocks", c.cached_blocks},
                                {"bytes", c.cached_bytes},
                                {"bytes_limit", st.kv_bytes_limit},
                                {"hit_tokens", c.hit_tokens - c.lower_hit_tokens}}}};
  for (size_t i = 0; i < st.lower_tiers.size(); ++i) {
    const engine::EngineStats::Tier& t = st.lower_tiers[i];
    const kv::BlockStoreStats& d = t.stats;
    json j = {{"enabled", d.enabled},
              {"blocks", d.blocks},
              {"bytes", d.bytes},
              {"bytes_limit", d.bytes_limit},
              {"hit_tokens", t.hit_tokens},
              {"promotions", t.promotions},
              // Blocks written into this tier: demoted from the pool (the
              // fastest lower tier) or sunk from the tier above.
              {"demotions", d.puts},
              {"evictions", d.evictions},
              {"bytes_written", d.bytes_written},
              {"bytes_read", d.bytes_read},
              {"corrupt_discarded", d.corrupt_discarded}};
    if (!t.dir.empty()) j["dir"] = t.dir;
    tiers[t.name] = j;
  }
  body["tiers"] = tiers;
  RespondJson(res, body);
}

void HandleTokenize(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  std::optional<json> body = ParseJsonBody(req, res);
  if (!body) return;
  auto content = body->find("content");
  if (content == body->end() || !content->is_string()) {
    RespondError(res, InvalidParam("content", "content must be a string"));
    return;
  }
  bool add_special = false;
  bool parse_special = true;
  for (auto [key, out] : {std::pair<const char*, bool*>{"add_special", &add_special},
                          std::pair<const char*, bool*>{"parse_special", &parse_special}}) {
    auto it = body->find(key);
    if (it == body->end() || it->is_null()) continue;
    if (!it->is_boolean()) {
      RespondError(res, InvalidParam(key, std::string(key) + " must be a boolean"));
      return;
    }
    *out = it->get<bool>();
  }
  const std::vector<int32_t> ids =
      s.tok.Encode(content->get<std::string>(), add_special, parse_special);
  RespondJson(res, {{"tokens", ids}});
}

void HandleDetokenize(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  std::optional<json> body = ParseJsonBody(req, res);
  if (!body) return;
  auto tokens = body->find("tokens");
  if (tokens == body->end() || !tokens->is_array()) {
    RespondError(res, InvalidParam("tokens", "tokens must be an array of token ids"));
    return;
  }
  std::vector<int32_t> ids;
  for (size_t i = 0; i < tokens->size(); ++i) {
    const json& t = (*tokens)[i];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= s.tok.n_vocab()) {
      RespondError(res, InvalidParam("tokens", StrFormat("tokens[%zu] is not a token id in [0, %d)",
                                                         i, s.tok.n_vocab())));
      return;
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  auto text = s.tok.Decode(ids, /*skip_special=*/false);
  if (!text.ok()) {
    RespondError(res, InvalidParam("tokens", text.status().message()));
    return;
  }
  RespondJson(res, {{"content", *text}});
}

}  // namespace reprise::server
