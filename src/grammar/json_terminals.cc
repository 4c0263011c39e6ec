// The JSON lexical pieces of JsonGrammar (json_schema.h): whitespace,
// strings (with length bounds and formats), numbers and integer/number
// ranges, extra property names, and the any-value rules.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "grammar/json_schema.h"

namespace reprise::grammar {
namespace {

using State = GrammarBuilder::State;

constexpr int64_t kMaxInt = 9'999'999'999'999'999;  // 16 digits
constexpr int kIntDigits = 16;
constexpr int kFracDigits = 16;
constexpr int kIndent = 20;

void Hex(GrammarBuilder& b, State from, State to) {
  b.AddBytes(from, to, '0', '9');
  b.AddBytes(from, to, 'A', 'F');
  b.AddBytes(from, to, 'a', 'f');
}

// Exactly `n` digits.
void Digits(GrammarBuilder& b, State from, State to, int n) {
  State at = from;
  for (int i = 0; i < n; ++i) {
    const State next = i + 1 == n ? to : b.NewState(b.RuleOf(from));
    b.AddBytes(at, next, '0', '9');
    at = next;
  }
  if (n == 0) b.AddEpsilon(from, to);
}

// Between lo and hi digits (lo >= 1).
void DigitsBetween(GrammarBuilder& b, State from, State to, int lo, int hi) {
  State at = from;
  for (int i = 1; i <= hi; ++i) {
    const State next = b.NewState(b.RuleOf(from));
    b.AddBytes(at, next, '0', '9');
    if (i >= lo) b.AddEpsilon(next, to);
    at = next;
  }
}

// One string character as JSON writes it (see json_schema.h), from -> to.
void Char(GrammarBuilder& b, State from, State to) {
  const GrammarBuilder::Rule r = b.RuleOf(from);
  b.AddBytes(from, to, 0x20, 0x21);
  b.AddBytes(from, to, 0x23, 0x5B);
  b.AddBytes(from, to, 0x5D, 0x7F);
  // Escapes.
  const State esc = b.NewState(r);
  b.AddByte(from, esc, '\\');
  for (char c : std::string("\"\\/bfnrt")) b.AddByte(esc, to, static_cast<uint8_t>(c));
  const State u = b.NewState(r), u1 = b.NewState(r), u1d = b.NewState(r), u2 = b.NewState(r),
              u3 = b.NewState(r);
  b.AddByte(esc, u, 'u');
  b.AddBytes(u, u1, '0', '9');
  b.AddBytes(u, u1, 'A', 'C');
  b.AddBytes(u, u1, 'a', 'c');
  b.AddBytes(u, u1, 'E', 'F');
  b.AddBytes(u, u1, 'e', 'f');
  b.AddByte(u, u1d, 'D');
  b.AddByte(u, u1d, 'd');
  Hex(b, u1, u2);
  b.AddBytes(u1d, u2, '0', '7');  // D800-DFFF (surrogates) are left out
  Hex(b, u2, u3);
  Hex(b, u3, to);
  // UTF-8, well formed (no overlongs, no surrogates, <= U+10FFFF).
  const State c1 = b.NewState(r), c2 = b.NewState(r), c3 = b.NewState(r);
  b.AddBytes(c1, to, 0x80, 0xBF);
  b.AddBytes(c2, c1, 0x80, 0xBF);
  b.AddBytes(c3, c2, 0x80, 0xBF);
  b.AddBytes(from, c1, 0xC2, 0xDF);
  b.AddBytes(from, c2, 0xE1, 0xEC);
  b.AddBytes(from, c2, 0xEE, 0xEF);
  b.AddBytes(from, c3, 0xF1, 0xF3);
  const State e0 = b.NewState(r), ed = b.NewState(r), f0 = b.NewState(r), f4 = b.NewState(r);
  b.AddByte(from, e0, 0xE0);
  b.AddBytes(e0, c1, 0xA0, 0xBF);
  b.AddByte(from, ed, 0xED);
  b.AddBytes(ed, c1, 0x80, 0x9F);
  b.AddByte(from, f0, 0xF0);
  b.AddBytes(f0, c2, 0x90, 0xBF);
  b.AddByte(from, f4, 0xF4);
  b.AddBytes(f4, c2, 0x80, 0x8F);
}

int DecimalDigits(int64_t v) {
  int n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

// Numbers of lo.size() digits between lo and hi (same length, lo <= hi).
void SameLength(GrammarBuilder& b, State from, State to, const std::string& lo,
                const std::string& hi) {
  const size_t n = lo.size();
  if (n == 1) {
    b.AddBytes(from, to, static_cast<uint8_t>(lo[0]), static_cast<uint8_t>(hi[0]));
    return;
  }
  const std::string rest_lo = lo.substr(1), rest_hi = hi.substr(1);
  const GrammarBuilder::Rule r = b.RuleOf(from);
  if (lo[0] == hi[0]) {
    const State mid = b.NewState(r);
    b.AddByte(from, mid, static_cast<uint8_t>(lo[0]));
    SameLength(b, mid, to, rest_lo, rest_hi);
    return;
  }
  const bool lo_all0 = rest_lo.find_first_not_of('0') == std::string::npos;
  const bool hi_all9 = rest_hi.find_first_not_of('9') == std::string::npos;
  const char first_full = lo_all0 ? lo[0] : static_cast<char>(lo[0] + 1);
  const char last_full = hi_all9 ? hi[0] : static_cast<char>(hi[0] - 1);
  if (!lo_all0) {
    const State mid = b.NewState(r);
    b.AddByte(from, mid, static_cast<uint8_t>(lo[0]));
    SameLength(b, mid, to, rest_lo, std::string(n - 1, '9'));
  }
  if (first_full <= last_full) {
    const State mid = b.NewState(r);
    b.AddBytes(from, mid, static_cast<uint8_t>(first_full), static_cast<uint8_t>(last_full));
    Digits(b, mid, to, static_cast<int>(n - 1));
  }
  if (!hi_all9) {
    const State mid = b.NewState(r);
    b.AddByte(from, mid, static_cast<uint8_t>(hi[0]));
    SameLength(b, mid, to, std::string(n - 1, '0'), rest_hi);
  }
}

// Decimal numbers without leading zeros in [lo, hi] (0 <= lo <= hi).
void NonNegativeRange(GrammarBuilder& b, State from, State to, int64_t lo, int64_t hi) {
  const int dlo = DecimalDigits(lo), dhi = DecimalDigits(hi);
  int64_t pow = 1;
  for (int i = 1; i < dlo; ++i) pow *= 10;  // 10^(dlo-1)
  for (int len = dlo; len <= dhi; ++len, pow *= 10) {
    const int64_t first = len == dlo ? lo : pow;
    const int64_t last = len == dhi ? hi : pow * 10 - 1;
    if (first <= last) SameLength(b, from, to, std::to_string(first), std::to_string(last));
  }
}

}  // namespace

void JsonGrammar::Whitespace(State from, State to) {
  GrammarBuilder& b = *b_;
  b.AddEpsilon(from, to);
  if (!options_.whitespace) return;
  b.AddByte(from, to, ' ');
  const GrammarBuilder::Rule r = b.RuleOf(from);
  State at = b.NewState(r);
  b.AddByte(from, at, '\n');
  b.AddEpsilon(at, to);
  for (int i = 0; i < kIndent; ++i) {
    const State next = b.NewState(r);
    b.AddByte(at, next, ' ');
    b.AddByte(at, next, '\t');
    b.AddEpsilon(next, to);
    at = next;
  }
}

Status JsonGrammar::String(State from, State to, int64_t min_len, int64_t max_len) {
  GrammarBuilder& b = *b_;
  const int64_t spelled = max_len >= 0 ? max_len : min_len;
  if (spelled > options_.max_unrolled) {
    return Errorf("a string length bound of %lld is more than the %lld supported",
                  static_cast<long long>(spelled), static_cast<long long>(options_.max_unrolled));
  }
  if (max_len >= 0 && max_len < min_len) return Status::Ok();  // nothing fits: no edges
  const GrammarBuilder::Rule r = b.RuleOf(from);
  State at = b.Literal(from, "\"");
  for (int64_t i = 0; i < spelled; ++i) {
    if (i >= min_len) b.AddByte(at, to, '"');
    const State next = b.NewState(r);
    Char(b, at, next);
    at = next;
  }
  if (max_len < 0) Char(b, at, at);
  b.AddByte(at, to, '"');
  return b.status();
}

void JsonGrammar::PlainString(State from, State to) {
  if (options_.inline_strings) {
    (void)String(from, to, 0, -1);
    return;
  }
  if (string_rule_ == UINT32_MAX) {
    string_rule_ = b_->NewRule("string");
    const State end = b_->NewState(string_rule_);
    b_->SetAccepting(end);
    (void)String(b_->Start(string_rule_), end, 0, -1);
  }
  b_->AddCall(from, to, string_rule_);
}

Status JsonGrammar::FormattedString(State from, State to, const std::string& format) {
  GrammarBuilder& b = *b_;
  const GrammarBuilder::Rule r = b.RuleOf(from);
  auto two = [&](State a, State z, char lo0, char hi0, char lo1, char hi1) {
    const State m = b.NewState(r);
    b.AddBytes(a, m, static_cast<uint8_t>(lo0), static_cast<uint8_t>(hi0));
    b.AddBytes(m, z, static_cast<uint8_t>(lo1), static_cast<uint8_t>(hi1));
  };
  auto date = [&](State a, State z) {
    const State y = b.NewState(r);
    Digits(b, a, y, 4);
    const State dash = b.Literal(y, "-");
    // Months of 31, 30 and 28 days (February 29 is left out: always valid).
    for (const char* m : {"01", "03", "05", "07", "08", "10", "12", "04", "06", "09", "11", "02"}) {
      const State md = b.Literal(dash, std::string(m) + "-");
      two(md, z, '0', '0', '1', '9');
      two(md, z, '1', '1', '0', '9');
      const std::string ms(m);
      if (ms == "02") {
        two(md, z, '2', '2', '0', '8');
        continue;
      }
      two(md, z, '2', '2', '0', '9');
      const bool long_month = ms != "04" && ms != "06" && ms != "09" && ms != "11";
      two(md, z, '3', '3', '0', long_month ? '1' : '0');
    }
  };
  auto time = [&](State a, State z) {
    const State h = b.NewState(r);
    two(a, h, '0', '1', '0', '9');
    two(a, h, '2', '2', '0', '3');
    const State c1 = b.Literal(h, ":");
    const State mi = b.NewState(r);
    two(c1, mi, '0', '5', '0', '9');
    const State c2 = b.Literal(mi, ":");
    const State s = b.NewState(r);
    two(c2, s, '0', '5', '0', '9');
    const State frac = b.Literal(s, ".");
    const State tz = b.NewState(r);
    b.AddEpsilon(s, tz);
    DigitsBetween(b, frac, tz, 1, 6);
    b.AddByte(tz, z, 'Z');
    const State sign = b.NewState(r), oh = b.NewState(r);
    b.AddByte(tz, sign, '+');
    b.AddByte(tz, sign, '-');
    two(sign, oh, '0', '1', '0', '9');
    two(sign, oh, '2', '2', '0', '3');
    const State oc = b.Literal(oh, ":");
    two(oc, z, '0', '5', '0', '9');
  };
  const State open = b.Literal(from, "\"");
  const State close = b.NewState(r);
  b.AddByte(close, to, '"');
  if (format == "date") {
    date(open, close);
  } else if (format == "time") {
    time(open, close);
  } else if (format == "date-time") {
    const State d = b.NewState(r);
    date(open, d);
    time(b.Literal(d, "T"), close);
  } else if (format == "uuid") {
    State at = open;
    for (int group : {8, 4, 4, 4, 12}) {
      for (int i = 0; i < group; ++i) {
        const State next = b.NewState(r);
        Hex(b, at, next);
        at = next;
      }
      if (group != 12) at = b.Literal(at, "-");
    }
    b.AddEpsilon(at, close);
  } else {
    return Errorf("string format '%s' is not supported (date, time, date-time, uuid are)",
                  format.c_str());
  }
  return b.status();
}

void JsonGrammar::Integer(State from, State to) {
  IntegerRange(from, to, std::nullopt, std::nullopt);
}

void JsonGrammar::Number(State from, State to) {
  GrammarBuilder& b = *b_;
  const GrammarBuilder::Rule r = b.RuleOf(from);
  const State int_end = b.NewState(r);
  Integer(from, int_end);
  const State frac_end = b.NewState(r);
  b.AddEpsilon(int_end, frac_end);
  DigitsBetween(b, b.Literal(int_end, "."), frac_end, 1, kFracDigits);
  b.AddEpsilon(frac_end, to);
  const State e = b.NewState(r), sign = b.NewState(r);
  b.AddByte(frac_end, e, 'e');
  b.AddByte(frac_end, e, 'E');
  b.AddEpsilon(e, sign);
  b.AddByte(e, sign, '+');
  b.AddByte(e, sign, '-');
  DigitsBetween(b, sign, to, 1, 2);
}

void JsonGrammar::IntegerRange(State from, State to, std::optional<int64_t> lo,
                               std::optional<int64_t> hi) {
  GrammarBuilder& b = *b_;
  const int64_t l = std::max(lo.value_or(-kMaxInt), -kMaxInt);
  const int64_t h = std::min(hi.value_or(kMaxInt), kMaxInt);
  if (l > h) return;  // nothing: no edges
  if (l < 0) {
    const int64_t mag_lo = std::max<int64_t>(1, -std::min<int64_t>(h, -1));
    NonNegativeRange(b, b.Literal(from, "-"), to, mag_lo, -l);
  }
  if (h >= 0) NonNegativeRange(b, from, to, std::max<int64_t>(l, 0), h);
}

namespace {

// A non-negative decimal as digit strings: integer part (no leading zeros,
// "0" for zero) and fraction digits (no trailing zeros; "" for integers).
struct Decimal {
  int64_t whole = 0;
  std::string frac;
};

// |v| as a Decimal (v finite, |v| < 1e16), from the shortest representation
// that reads back as v: the number the schema's text meant.
Decimal ToDecimal(double v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), std::fabs(v), std::chars_format::fixed);
  std::string text(buf, res.ptr);
  Decimal d;
  const size_t dot = text.find('.');
  d.whole = std::stoll(text.substr(0, dot));
  if (dot != std::string::npos) {
    d.frac = text.substr(dot + 1);
    while (!d.frac.empty() && d.frac.back() == '0') d.frac.pop_back();
  }
  return d;
}

// Fraction digit strings F (1..max_len digits) with lo < 0.F (or <= when
// !lo_strict) and 0.F < hi (or <=); no hi: any F below 1. Digits are
// compared as decimals (missing digits are zeros). States: position x
// (still equal to lo's digits?, still equal to hi's digits?).
void FractionRange(GrammarBuilder& b, State from, State to, const std::string& lo, bool lo_strict,
                   const std::optional<std::string>& hi, bool hi_strict, int max_len) {
  const GrammarBuilder::Rule r = b.RuleOf(from);
  auto digit = [](const std::string& s, int k) {
    return k < static_cast<int>(s.size()) ? s[k] : '0';
  };
  auto rest_zero = [](const std::string& s, int k) {
    return k >= static_cast<int>(s.size()) || s.find_first_not_of('0', k) == std::string::npos;
  };
  // states[k][tl][th]
  std::vector<std::array<std::array<State, 2>, 2>> states(max_len + 1);
  for (auto& level : states) {
    for (auto& row : level) row = {b.NewState(r), b.NewState(r)};
  }
  b.AddEpsilon(from, states[0][1][hi ? 1 : 0]);
  for (int k = 0; k <= max_len; ++k) {
    for (int tl = 0; tl < 2; ++tl) {
      for (int th = 0; th < (hi ? 2 : 1); ++th) {
        const State at = states[k][tl][th];
        if (k >= 1) {  // may the fraction end here?
          const bool lo_ok = !tl || (rest_zero(lo, k) ? !lo_strict : false);
          const bool hi_ok = !th || (rest_zero(*hi, k) ? !hi_strict : true);
          if (lo_ok && hi_ok) b.AddEpsilon(at, to);
        }
        if (k == max_len) continue;
        for (char d = '0'; d <= '9'; ++d) {
          int ntl = 0, nth = 0;
          if (tl) {
            if (d < digit(lo, k)) continue;
            ntl = d == digit(lo, k);
          }
          if (th) {
            if (d > digit(*hi, k)) continue;
            nth = d == digit(*hi, k);
          }
          b.AddByte(at, states[k + 1][ntl][nth], static_cast<uint8_t>(d));
        }
      }
    }
  }
}

}  // namespace

void JsonGrammar::MagnitudeRange(State from, State to, double lo, bool lo_excl,
                                 std::optional<double> hi, bool hi_excl) {
  GrammarBuilder& b = *b_;
  constexpr int64_t kMaxWhole = 999'999'999;  // with 6 fraction digits: 15 significant
  constexpr int kBoundedFracDigits = 6;
  const Decimal l = ToDecimal(lo);
  std::optional<Decimal> h;
  if (hi) h = ToDecimal(*hi);
  // Integers.
  const int64_t int_lo = l.frac.empty() && !lo_excl ? l.whole : l.whole + 1;
  int64_t int_hi = kMaxInt;
  if (h) int_hi = h->frac.empty() && hi_excl ? h->whole - 1 : h->whole;
  if (int_lo <= int_hi) NonNegativeRange(b, from, to, int_lo, std::min(int_hi, kMaxInt));
  // I.F forms.
  auto with_fraction = [&](State whole_end, const std::string& flo, bool flo_strict,
                           const std::optional<std::string>& fhi, bool fhi_strict) {
    FractionRange(b, b.Literal(whole_end, "."), to, flo, flo_strict, fhi, fhi_strict,
                  kBoundedFracDigits);
  };
  const GrammarBuilder::Rule r = b.RuleOf(from);
  if (l.whole > kMaxWhole) return;
  const bool hi_inside = h && h->whole <= kMaxWhole;
  if (hi_inside && h->whole == l.whole) {  // one unit: both bounds apply to F
    with_fraction(b.Literal(from, std::to_string(l.whole)), l.frac, lo_excl, h->frac, hi_excl);
    return;
  }
  // The lower bound's unit, then whole units inside, then the upper bound's.
  with_fraction(b.Literal(from, std::to_string(l.whole)), l.frac, lo_excl, std::nullopt, false);
  const int64_t mid_hi = hi_inside ? h->whole - 1 : kMaxWhole;
  if (l.whole + 1 <= mid_hi) {
    const State whole = b.NewState(r);
    NonNegativeRange(b, from, whole, l.whole + 1, mid_hi);
    with_fraction(whole, "", false, std::nullopt, false);
  }
  if (hi_inside)
    with_fraction(b.Literal(from, std::to_string(h->whole)), "", false, h->frac, hi_excl);
}

bool JsonGrammar::NumberRange(State from, State to, std::optional<double> lo, bool lo_excl,
                              std::optional<double> hi, bool hi_excl) {
  constexpr double kLimit = 1e16;
  if ((lo && *lo >= kLimit) || (hi && *hi <= -kLimit)) return false;
  if (lo && *lo <= -kLimit) lo.reset();
  if (hi && *hi >= kLimit) hi.reset();
  if (lo && hi && (*lo > *hi || (*lo == *hi && (lo_excl || hi_excl)))) return false;
  const size_t before = b_->state_count();
  // x >= 0, written without a sign: magnitudes in [max(lo, 0), hi].
  if (!hi || *hi >= 0) {
    if (lo && *lo >= 0)
      MagnitudeRange(from, to, *lo, lo_excl, hi, hi_excl);
    else
      MagnitudeRange(from, to, 0.0, false, hi, hi_excl);
  }
  // x < 0, written "-m": m in (max(-hi, 0), -lo]; never "-0".
  if (!lo || *lo < 0) {
    const State minus = b_->Literal(from, "-");
    std::optional<double> mag_hi;
    if (lo) mag_hi = -*lo;
    if (hi && *hi < 0)
      MagnitudeRange(minus, to, -*hi, hi_excl, mag_hi, lo_excl);
    else
      MagnitudeRange(minus, to, 0.0, true, mag_hi, lo_excl);
  }
  return b_->state_count() > before;
}

void JsonGrammar::ExtraKey(State from, State to, const std::vector<std::string>& declared) {
  GrammarBuilder& b = *b_;
  const GrammarBuilder::Rule r = b.RuleOf(from);
  auto allowed = [](int c) { return c >= 0x20 && c <= 0x7E && c != '"' && c != '\\'; };
  struct Node {
    State state;
    bool terminal = false;
    std::vector<std::pair<uint8_t, size_t>> children;
  };
  std::vector<Node> nodes = {{b.Literal(from, "\""), false, {}}};
  for (const std::string& name : declared) {
    if (!std::all_of(name.begin(), name.end(),
                     [&](char c) { return allowed(static_cast<uint8_t>(c)); })) {
      continue;  // can never equal a name written without escapes
    }
    size_t at = 0;
    for (char ch : name) {
      const uint8_t c = static_cast<uint8_t>(ch);
      size_t next = SIZE_MAX;
      for (const auto& [byte, child] : nodes[at].children) {
        if (byte == c) next = child;
      }
      if (next == SIZE_MAX) {
        next = nodes.size();
        nodes.push_back({b.NewState(r), false, {}});
        nodes[at].children.emplace_back(c, next);
      }
      at = next;
    }
    nodes[at].terminal = true;
  }
  const State free = b.NewState(r);
  for (int c = 0x20; c <= 0x7E; ++c) {
    if (allowed(c)) b.AddByte(free, free, static_cast<uint8_t>(c));
  }
  b.AddByte(free, to, '"');
  for (const Node& n : nodes) {
    for (int c = 0x20; c <= 0x7E; ++c) {
      if (!allowed(c)) continue;
      State target = free;
      for (const auto& [byte, child] : n.children) {
        if (byte == c) target = nodes[child].state;
      }
      b.AddByte(n.state, target, static_cast<uint8_t>(c));
    }
    if (!n.terminal) b.AddByte(n.state, to, '"');
  }
}

GrammarBuilder::Rule JsonGrammar::AnyValueRule() {
  if (any_value_ != UINT32_MAX) return any_value_;
  GrammarBuilder& b = *b_;
  any_value_ = b.NewRule("any value");
  any_object_ = b.NewRule("any object");
  any_array_ = b.NewRule("any array");
  {
    const State s = b.Start(any_value_), e = b.NewState(any_value_);
    b.SetAccepting(e);
    b.AddCall(s, e, any_object_);
    b.AddCall(s, e, any_array_);
    PlainString(s, e);
    Number(s, e);
    for (const char* lit : {"true", "false", "null"}) b.AddLiteral(s, e, lit);
  }
  auto member = [&](State from, State to) {
    const State k = b.NewState(b.RuleOf(from));
    PlainString(from, k);
    const State w1 = b.NewState(b.RuleOf(from));
    Whitespace(k, w1);
    const State w2 = b.NewState(b.RuleOf(from));
    Whitespace(b.Literal(w1, ":"), w2);
    b.AddCall(w2, to, any_value_);
  };
  auto sequence = [&](GrammarBuilder::Rule rule, const char* open, const char* close,
                      bool members) {
    const State s = b.Start(rule), e = b.NewState(rule);
    b.SetAccepting(e);
    const State first = b.NewState(rule);
    Whitespace(b.Literal(s, open), first);
    b.AddLiteral(first, e, close);
    const State item = b.NewState(rule);
    if (members)
      member(first, item);
    else
      b.AddCall(first, item, any_value_);
    const State before_close = b.NewState(rule);
    Whitespace(item, before_close);
    b.AddLiteral(before_close, e, close);
    const State sep = b.NewState(rule);
    Whitespace(b.Literal(before_close, ","), sep);
    if (members)
      member(sep, item);
    else
      b.AddCall(sep, item, any_value_);
  };
  sequence(any_object_, "{", "}", true);
  sequence(any_array_, "[", "]", false);
  return any_value_;
}

GrammarBuilder::Rule JsonGrammar::AnyObjectRule() {
  AnyValueRule();
  return any_object_;
}

}  // namespace reprise::grammar
