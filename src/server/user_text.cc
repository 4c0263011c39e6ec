// Marking request text in rendered chat prompts (see user_text.h).
#include "server/user_text.h"

#include <algorithm>
#include <cctype>
#include <random>

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;

std::string Nonce() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i, a >>= 4) out.push_back(kHex[a & 15]);
  for (int i = 0; i < 8; ++i, b >>= 4) out.push_back(kHex[b & 15]);
  return out;
}

// Replaces control-token spellings in every string of `v` (recursively)
// with "<prefix><n>Z", appending the originals to *originals.
void Substitute(const tokenizer::Tokenizer& tok, const std::string& prefix, json* v,
                std::vector<std::string>* originals) {
  if (v->is_string()) {
    const std::string& s = v->get_ref<const std::string&>();
    const std::vector<tokenizer::TextRange> hits = tok.FindControlTexts(s);
    if (hits.empty()) return;
    std::string out;
    size_t pos = 0;
    for (const tokenizer::TextRange& r : hits) {
      out.append(s, pos, r.begin - pos);
      out += prefix + std::to_string(originals->size()) + "Z";
      originals->push_back(s.substr(r.begin, r.end - r.begin));
      pos = r.end;
    }
    out.append(s, pos, std::string::npos);
    *v = std::move(out);
  } else if (v->is_array() || v->is_object()) {
    for (auto& child : *v) Substitute(tok, prefix, &child, originals);
  }
}

}  // namespace

Result<MarkedPrompt> RenderMarkingUserText(const tokenizer::Tokenizer& tok,
                                           const json& messages, const json& tools,
                                           const RenderFn& render) {
  const std::string nonce = Nonce();
  const std::string prefix = "RPQ" + nonce + "N";
  json m = messages;
  json t = tools;
  std::vector<std::string> originals;
  Substitute(tok, prefix, &m, &originals);
  Substitute(tok, prefix, &t, &originals);
  MarkedPrompt out;
  if (originals.empty()) {
    ASSIGN_OR_RETURN(out.text, render(messages, tools));
    return out;
  }
  ASSIGN_OR_RETURN(std::string rendered, render(m, t));
  size_t pos = 0;
  for (size_t hit; (hit = rendered.find(prefix, pos)) != std::string::npos;) {
    out.text.append(rendered, pos, hit - pos);
    size_t end = hit + prefix.size();
    size_t index = 0;
    bool digits = false;
    while (end < rendered.size() && std::isdigit(static_cast<unsigned char>(rendered[end]))) {
      index = index * 10 + static_cast<size_t>(rendered[end] - '0');
      digits = true;
      ++end;
      if (index > originals.size()) break;
    }
    if (!digits || index >= originals.size() || end >= rendered.size() || rendered[end] != 'Z') {
      return Errorf("the chat template altered message text that spells a control token");
    }
    const size_t begin = out.text.size();
    out.text += originals[index];
    out.plain.push_back({begin, out.text.size()});
    pos = end + 1;
  }
  out.text.append(rendered, pos, std::string::npos);
  // A placeholder the template changed (e.g. upper-cased) must not pass as text.
  std::string lower = rendered;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t count = 0;
  for (size_t at = 0; (at = lower.find(nonce, at)) != std::string::npos; at += nonce.size()) {
    ++count;
  }
  if (count != out.plain.size()) {
    return Errorf("the chat template altered message text that spells a control token");
  }
  return out;
}

}  // namespace reprise::server
