#include "model/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/ops.h"

namespace reprise::model {
namespace {

constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;  // the state's increment

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += kSplitMixGamma);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t HashName(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Uniform weights with the given standard deviation, quantized row by row.
// The random stream is one SplitMix64 sequence over the whole matrix (the
// same values as ever); SplitMix64's k-th state is the seed plus k times its
// increment, so every core generates and quantizes its own rows (an
// 8B-parameter model took minutes with one generator).
std::vector<uint8_t> RandomMatrix(const std::string& name, DType type, int64_t rows, int64_t cols,
                                  float stddev, uint64_t seed) {
  const int64_t row_bytes = RowBytes(type, cols);
  std::vector<uint8_t> data(static_cast<size_t>(rows * row_bytes));
  const uint64_t s0 = HashName(name, seed);
  const float a = stddev * std::sqrt(3.0f);
  const int n_threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({32, std::thread::hardware_concurrency(), rows})));
  auto work = [&](int part) {
    std::vector<float> vals(static_cast<size_t>(cols));
    for (int64_t r = part; r < rows; r += n_threads) {
      // The state before this row's first value: s0 + (r * cols) * gamma.
      uint64_t s = s0 + static_cast<uint64_t>(r) * static_cast<uint64_t>(cols) * kSplitMixGamma;
      for (int64_t c = 0; c < cols; ++c) {
        const uint32_t u = static_cast<uint32_t>(SplitMix(s) >> 40);  // 24 bits
        vals[c] = (static_cast<float>(u) * (1.0f / 8388608.0f) - 1.0f) * a;
      }
      kernels::QuantizeRow(type, vals.data(), data.data() + r * row_bytes, cols);
    }
  };
  std::vector<std::thread> threads;
  for (int p = 1; p < n_threads; ++p) threads.emplace_back(work, p);
  work(0);
  for (auto& t : threads) t.join();
  return data;
}

std::vector<uint8_t> Ones(int64_t n) {
  std::vector<float> v(n, 1.0f);
  std::vector<uint8_t> out(n * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// GPT-2's byte-to-unicode mapping: printable bytes map to themselves, the
// rest to U+0100 onwards, so every byte is a visible one-character token.
std::string ByteToken(int b) {
  static const auto table = [] {
    std::vector<int> cps(256, -1);
    int next = 256;
    for (int i = 0; i < 256; ++i) {
      const bool printable = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174);
      cps[i] = printable ? i : next++;
    }
    return cps;
  }();
  const int cp = table[b];
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return out;
}

constexpr const char* kChatMlTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

constexpr int64_t kByteVocabSize = 259;  // 256 bytes + 3 ChatML specials
constexpr int32_t kEosId = 258;          // <|im_end|>

// The byte-level vocabulary, then one USER_DEFINED token per script piece.
void AddByteLevelVocab(gguf::Writer& w, const std::vector<std::string>& script,
                       const std::string& chat_template) {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(ByteToken(b));
    types.push_back(1);  // normal
  }
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    tokens.push_back(s);
    types.push_back(3);  // control
  }
  for (const std::string& piece : script) {
    tokens.push_back(piece);
    types.push_back(4);  // user-defined: decoded as its text, never skipped
  }
  w.Set("tokenizer.ggml.model", gguf::Value::String("gpt2"));
  w.Set("tokenizer.ggml.pre", gguf::Value::String("default"));
  w.Set("tokenizer.ggml.tokens", gguf::Value::StringArray(tokens));
  w.Set("tokenizer.ggml.token_type", gguf::Value::Int32Array(types));
  w.Set("tokenizer.ggml.merges", gguf::Value::StringArray({}));
  w.Set("tokenizer.ggml.bos_token_id", gguf::Value::Uint32(256));
  w.Set("tokenizer.ggml.eos_token_id", gguf::Value::Uint32(kEosId));
  w.Set("tokenizer.ggml.add_bos_token", gguf::Value::Bool(false));
  w.Set("tokenizer.chat_template",
        gguf::Value::String(chat_template.empty() ? kChatMlTemplate : chat_template));
}

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(float));
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// The scripted model's designed matrices (see synthetic.h), F32, row-major
// [rows, cols]. Token ids: script piece k is kByteVocabSize + k.
std::vector<uint8_t> ScriptedMatrix(const std::string& name, int64_t rows, int64_t cols,
                                    int64_t n_script, const std::vector<int64_t>& reply_ends) {
  std::vector<float> m(static_cast<size_t>(rows * cols), 0.0f);
  if (name == "token_embd.weight") {
    for (int64_t i = 0; i < rows; ++i) m[i * cols + i] = 1.0f;  // one-hot: row i = e_i
  } else if (name == "output.weight") {
    // After the final RMSNorm a one-hot e_i is ~sqrt(cols) * e_i, so the
    // chosen logit is ~64 and every other is 0.
    const float w = 64.0f / std::sqrt(static_cast<float>(cols));
    const int64_t first = kByteVocabSize;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t k = i - first;  // script position of token i, if any
      const bool ends = k + 1 >= n_script ||
                        std::find(reply_ends.begin(), reply_ends.end(), k) != reply_ends.end();
      const int64_t next = k < 0 ? first : (ends ? kEosId : i + 1);
      m[next * cols + i] = w;
    }
  }
  // Everything else (attention, FFN) stays zero: the residual is the embedding.
  return F32Bytes(m);
}

}  // namespace

Status WriteSyntheticModel(const SyntheticModelSpec& spec, const std::string& path) {
  const SyntheticModelSpec& s = spec;
  if (s.n_embd <= 0 || s.n_layers <= 0 || s.n_heads <= 0 || s.n_kv_heads <= 0 || s.n_ff <= 0 ||
      s.n_embd % s.n_heads != 0 || s.n_heads % s.n_kv_heads != 0) {
    return Errorf("invalid model shape (dim %lld, heads %lld, kv heads %lld, ffn %lld)",
                  (long long)s.n_embd, (long long)s.n_heads, (long long)s.n_kv_heads,
                  (long long)s.n_ff);
  }
  const bool scripted = !s.script.empty();
  const DType weight_type = scripted ? DType::kF32 : s.weight_type;
  const DType embd_type = scripted ? DType::kF32 : s.embd_type;
  for (DType t : {weight_type, embd_type}) {
    if (!kernels::IsSupportedWeightType(t)) {
      return Errorf("unsupported weight type %s", DTypeName(t));
    }
    const int64_t block = GetDTypeInfo(static_cast<uint32_t>(t))->block_elems;
    if (s.n_embd % block != 0 || s.n_ff % block != 0) {
      return Errorf("dim %lld and ffn %lld must be multiples of the %s block (%lld)",
                    (long long)s.n_embd, (long long)s.n_ff, DTypeName(t), (long long)block);
    }
  }
  if (scripted) {
    if (!s.vocab_gguf.empty()) return Errorf("a scripted model uses the byte-level vocabulary");
    for (const std::string& piece : s.script) {
      if (piece.empty()) return Errorf("script pieces must not be empty");
    }
    for (int64_t k : s.reply_ends) {
      if (k < 0 || k >= static_cast<int64_t>(s.script.size())) {
        return Errorf("reply end %lld is not a script position", (long long)k);
      }
    }
    const int64_t n_vocab = kByteVocabSize + static_cast<int64_t>(s.script.size());
    if (s.n_embd < n_vocab) {
      return Errorf("a scripted model needs dim >= its vocabulary (%lld), got %lld",
                    (long long)n_vocab, (long long)s.n_embd);
    }
  }
  gguf::Writer w;
  int64_t n_vocab = s.n_vocab;
  if (scripted) {
    AddByteLevelVocab(w, s.script, s.chat_template);
    n_vocab = kByteVocabSize + static_cast<int64_t>(s.script.size());
  } else if (!s.vocab_gguf.empty()) {
    ASSIGN_OR_RETURN(std::unique_ptr<gguf::File> vocab, gguf::File::Open(s.vocab_gguf));
    ASSIGN_OR_RETURN(std::vector<std::string> toks, vocab->GetStringArray("tokenizer.ggml.tokens"));
    n_vocab = static_cast<int64_t>(toks.size());
    w.CopyMetadata(*vocab, "tokenizer.");
  } else if (s.byte_level_vocab) {
    AddByteLevelVocab(w, {}, s.chat_template);
    n_vocab = kByteVocabSize;
  }
  const std::string a = "llama.";
  w.Set("general.architecture", gguf::Value::String("llama"));
  w.Set("general.name", gguf::Value::String(s.name));
  // Random or designed weights: servers say its output is not a real model's.
  // reprise.scripted tells the two apart: a scripted model replays its script
  // (a test model), the others are random-weight (benchmark / demo) models.
  w.Set("reprise.synthetic", gguf::Value::Bool(true));
  if (scripted) w.Set("reprise.scripted", gguf::Value::Bool(true));
  w.Set(a + "context_length", gguf::Value::Uint32(static_cast<uint32_t>(s.n_ctx)));
  w.Set(a + "embedding_length", gguf::Value::Uint32(static_cast<uint32_t>(s.n_embd)));
  w.Set(a + "block_count", gguf::Value::Uint32(static_cast<uint32_t>(s.n_layers)));
  w.Set(a + "feed_forward_length", gguf::Value::Uint32(static_cast<uint32_t>(s.n_ff)));
  w.Set(a + "attention.head_count", gguf::Value::Uint32(static_cast<uint32_t>(s.n_heads)));
  w.Set(a + "attention.head_count_kv", gguf::Value::Uint32(static_cast<uint32_t>(s.n_kv_heads)));
  w.Set(a + "rope.freq_base", gguf::Value::Float32(s.rope_freq_base));
  w.Set(a + "rope.dimension_count", gguf::Value::Uint32(static_cast<uint32_t>(s.n_embd / s.n_heads)));
  w.Set(a + "attention.layer_norm_rms_epsilon", gguf::Value::Float32(1e-5f));
  w.Set(a + "vocab_size", gguf::Value::Uint32(static_cast<uint32_t>(n_vocab)));

  const int64_t hd = s.n_embd / s.n_heads;
  const int64_t kv = s.n_kv_heads * hd;
  const float std_w = 0.02f;
  auto matrix = [&](const std::string& name, DType type, int64_t rows, int64_t cols) {
    if (scripted) {
      w.AddTensor(
          name, DType::kF32, {cols, rows},
          ScriptedMatrix(name, rows, cols, static_cast<int64_t>(s.script.size()), s.reply_ends));
    } else {
      w.AddTensor(name, type, {cols, rows}, RandomMatrix(name, type, rows, cols, std_w, s.seed));
    }
  };
  matrix("token_embd.weight", s.embd_type, n_vocab, s.n_embd);
  for (int64_t i = 0; i < s.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    w.AddTensor(p + "attn_norm.weight", DType::kF32, {s.n_embd}, Ones(s.n_embd));
    matrix(p + "attn_q.weight", s.weight_type, s.n_embd, s.n_embd);
    matrix(p + "attn_k.weight", s.weight_type, kv, s.n_embd);
    matrix(p + "attn_v.weight", s.weight_type, kv, s.n_embd);
    matrix(p + "attn_output.weight", s.weight_type, s.n_embd, s.n_embd);
    w.AddTensor(p + "ffn_norm.weight", DType::kF32, {s.n_embd}, Ones(s.n_embd));
    matrix(p + "ffn_gate.weight", s.weight_type, s.n_ff, s.n_embd);
    matrix(p + "ffn_up.weight", s.weight_type, s.n_ff, s.n_embd);
    matrix(p + "ffn_down.weight", s.weight_type, s.n_embd, s.n_ff);
  }
  w.AddTensor("output_norm.weight", DType::kF32, {s.n_embd}, Ones(s.n_embd));
  matrix("output.weight", s.embd_type, n_vocab, s.n_embd);
  return w.WriteFile(path);
}

}  // namespace reprise::model
