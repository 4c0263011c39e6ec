// `reprise info --model F [--json]`: describes a GGUF file without loading a
// model — format version, architecture, the `{arch}.*` hyperparameters, the
// tokenizer, a table of tensors and totals per tensor type. Depends only on
// the gguf module (a file the model module cannot run is still described).
// The description is built once as JSON; the text form is rendered from it,
// so both outputs always agree.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "commands.h"
#include "gguf/gguf.h"

namespace reprise::tools {
namespace {

using nlohmann::json;

// Arrays longer than this are summarised ("array of N uint32") rather than
// listed, so a per-layer array prints but a vocabulary does not.
constexpr size_t kMaxListedItems = 64;
constexpr size_t kMaxTextValueChars = 96;

json ValueToJson(const gguf::Value& v) {
  using gguf::ValueType;
  switch (v.type) {
    case ValueType::kUint8:
    case ValueType::kUint16:
    case ValueType::kUint32:
    case ValueType::kUint64:
      return v.u;
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64:
      return v.i;
    case ValueType::kFloat32:
    case ValueType::kFloat64:
      return std::isfinite(v.f) ? json(v.f) : json(nullptr);
    case ValueType::kBool:
      return v.u != 0;
    case ValueType::kString:
      return v.s;
    case ValueType::kArray: {
      if (v.items.size() > kMaxListedItems) {
        return StrFormat("array of %zu %s", v.items.size(), gguf::ValueTypeName(v.elem_type));
      }
      json out = json::array();
      for (const gguf::Value& item : v.items) out.push_back(ValueToJson(item));
      return out;
    }
  }
  return nullptr;
}

std::string HumanBytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double x = static_cast<double>(n);
  int u = 0;
  while (x >= 1024 && u < 4) {
    x /= 1024;
    ++u;
  }
  return u == 0 ? StrFormat("%llu B", static_cast<unsigned long long>(n))
                : StrFormat("%.2f %s", x, units[u]);
}

std::string ShapeText(const json& shape) {
  std::string out = "[";
  for (size_t k = 0; k < shape.size(); ++k) {
    if (k > 0) out += ", ";
    out += std::to_string(shape[k].get<int64_t>());
  }
  return out + "]";
}

std::string ValueText(const json& v) {
  // Most float metadata is float32: 7 significant digits print it exactly
  // enough and keep 1e-05 from showing as 9.999999747378752e-06.
  if (v.is_number_float()) return StrFormat("%.7g", v.get<double>());
  std::string s =
      v.is_string() ? v.get<std::string>() : v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > kMaxTextValueChars) s = s.substr(0, kMaxTextValueChars) + "...";
  return s;
}

json Describe(const gguf::File& file) {
  json out;
  out["path"] = file.path();
  out["file_bytes"] = file.file_size();
  out["gguf_version"] = file.version();
  out["alignment"] = file.alignment();
  out["metadata_count"] = file.metadata().size();

  std::string arch;
  if (const gguf::Value* v = file.Find("general.architecture");
      v != nullptr && v->type == gguf::ValueType::kString) {
    arch = v->s;
  }
  out["architecture"] = arch.empty() ? json(nullptr) : json(arch);
  json general = json::object();
  for (const char* key : {"general.name", "general.file_type", "general.quantization_version",
                          "general.size_label", "general.basename"}) {
    if (const gguf::Value* v = file.Find(key)) general[key + 8] = ValueToJson(*v);
  }
  out["general"] = general;

  // Every `{arch}.*` key, in file order, prefix stripped: context_length,
  // embedding_length, block_count, attention.*, rope.*, expert_*, ...
  json hparams = json::object();
  if (!arch.empty()) {
    const std::string prefix = arch + ".";
    for (const auto& [key, value] : file.metadata()) {
      if (key.size() > prefix.size() && key.compare(0, prefix.size(), prefix) == 0) {
        hparams[key.substr(prefix.size())] = ValueToJson(value);
      }
    }
  }
  out["hyperparameters"] = hparams;

  json tokenizer = json::object();
  if (const gguf::Value* v = file.Find("tokenizer.ggml.model"))
    tokenizer["model"] = ValueToJson(*v);
  if (const gguf::Value* v = file.Find("tokenizer.ggml.pre")) tokenizer["pre"] = ValueToJson(*v);
  if (const gguf::Value* v = file.Find("tokenizer.ggml.tokens");
      v != nullptr && v->type == gguf::ValueType::kArray) {
    tokenizer["vocab_size"] = v->items.size();
  }
  if (const gguf::Value* v = file.Find("tokenizer.ggml.merges");
      v != nullptr && v->type == gguf::ValueType::kArray) {
    tokenizer["merges"] = v->items.size();
  }
  for (const char* id : {"bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id"}) {
    if (const gguf::Value* v = file.Find(std::string("tokenizer.ggml.") + id)) {
      tokenizer[id] = ValueToJson(*v);
    }
  }
  tokenizer["has_chat_template"] = file.Has("tokenizer.chat_template");
  out["tokenizer"] = tokenizer;

  json tensors = json::array();
  // Per type: tensors, elements, bytes. std::map keeps the type order stable.
  std::map<std::string, std::array<uint64_t, 3>> per_type;
  uint64_t total_bytes = 0, total_elements = 0;
  for (const gguf::TensorInfo& t : file.tensors()) {
    json shape = json::array();
    for (int64_t d : t.ne) shape.push_back(d);
    const std::string type = DTypeName(t.type);
    tensors.push_back({{"name", t.name},
                       {"type", type},
                       {"shape", shape},
                       {"elements", t.n_elements()},
                       {"bytes", t.n_bytes},
                       {"offset", t.offset}});
    auto& acc = per_type[type];
    acc[0] += 1;
    acc[1] += static_cast<uint64_t>(t.n_elements());
    acc[2] += t.n_bytes;
    total_bytes += t.n_bytes;
    total_elements += static_cast<uint64_t>(t.n_elements());
  }
  json totals = json::object();
  for (const auto& [type, acc] : per_type) {
    totals[type] = {{"tensors", acc[0]}, {"elements", acc[1]}, {"bytes", acc[2]}};
  }
  out["tensors"] = tensors;
  out["totals_by_type"] = totals;
  out["tensor_count"] = file.tensors().size();
  out["total_elements"] = total_elements;
  out["total_tensor_bytes"] = total_bytes;
  return out;
}

void PrintText(const json& d) {
  std::printf("file: %s (%s)\n", d["path"].get<std::string>().c_str(),
              HumanBytes(d["file_bytes"].get<uint64_t>()).c_str());
  std::printf("GGUF version: %u, alignment %llu, %zu metadata keys\n",
              d["gguf_version"].get<unsigned>(),
              static_cast<unsigned long long>(d["alignment"].get<uint64_t>()),
              d["metadata_count"].get<size_t>());
  std::printf("architecture: %s\n", d["architecture"].is_null()
                                        ? "(none)"
                                        : d["architecture"].get<std::string>().c_str());
  for (const auto& [key, value] : d["general"].items()) {
    std::printf("  general.%s: %s\n", key.c_str(), ValueText(value).c_str());
  }
  if (!d["hyperparameters"].empty()) {
    std::printf("hyperparameters:\n");
    // json objects iterate sorted by key, which groups attention.*, rope.*, ...
    for (const auto& [key, value] : d["hyperparameters"].items()) {
      std::printf("  %s: %s\n", key.c_str(), ValueText(value).c_str());
    }
  }
  const json& tok = d["tokenizer"];
  if (tok.contains("model")) {
    std::printf("tokenizer: %s", ValueText(tok["model"]).c_str());
    if (tok.contains("pre")) std::printf(" (pre: %s)", ValueText(tok["pre"]).c_str());
    if (tok.contains("vocab_size")) std::printf(", vocab %zu", tok["vocab_size"].get<size_t>());
    if (tok.contains("merges")) std::printf(", %zu merges", tok["merges"].get<size_t>());
    if (tok["has_chat_template"].get<bool>()) std::printf(", chat template");
    std::printf("\n");
  } else {
    std::printf("tokenizer: (none)\n");
  }

  const json& tensors = d["tensors"];
  std::printf("tensors: %zu\n", tensors.size());
  if (!tensors.empty()) {
    size_t name_width = 4;
    for (const json& t : tensors) {
      name_width = std::max(name_width, t["name"].get<std::string>().size());
    }
    std::printf("  %-*s  %-8s  %-24s  %14s\n", static_cast<int>(name_width), "name", "type",
                "shape", "bytes");
    for (const json& t : tensors) {
      std::printf("  %-*s  %-8s  %-24s  %14llu\n", static_cast<int>(name_width),
                  t["name"].get<std::string>().c_str(), t["type"].get<std::string>().c_str(),
                  ShapeText(t["shape"]).c_str(),
                  static_cast<unsigned long long>(t["bytes"].get<uint64_t>()));
    }
    std::printf("totals by type:\n");
    for (const auto& [type, acc] : d["totals_by_type"].items()) {
      std::printf("  %-8s %5llu tensors  %14llu elements  %s\n", type.c_str(),
                  static_cast<unsigned long long>(acc["tensors"].get<uint64_t>()),
                  static_cast<unsigned long long>(acc["elements"].get<uint64_t>()),
                  HumanBytes(acc["bytes"].get<uint64_t>()).c_str());
    }
    std::printf("  %-8s %5zu tensors  %14llu elements  %s\n", "all", tensors.size(),
                static_cast<unsigned long long>(d["total_elements"].get<uint64_t>()),
                HumanBytes(d["total_tensor_bytes"].get<uint64_t>()).c_str());
  }
}

}  // namespace

void AddInfoCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "info", "Describe a GGUF file: architecture, hyperparameters, tokenizer, tensors");
  struct Options {
    std::string model;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  cmd->add_option("--model,-m", opts->model, "GGUF file")->required();
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of text");
  cmd->callback([opts, &exit_code] {
    auto file = gguf::File::Open(opts->model);
    if (!file.ok()) {
      std::fprintf(stderr, "error: %s\n", file.status().message().c_str());
      exit_code = 1;
      return;
    }
    const json description = Describe(**file);
    if (opts->json) {
      // Metadata strings need not be valid UTF-8: replace bad bytes, never throw.
      std::printf("%s\n", description.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    } else {
      PrintText(description);
    }
    exit_code = 0;
  });
}

}  // namespace reprise::tools
