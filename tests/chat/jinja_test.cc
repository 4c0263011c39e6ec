// Unit tests of the Jinja engine's semantics: whitespace control as
// transformers configures it, Python printing, loops and scoping, macros,
// filters, tests, methods, errors with line numbers. Expected strings are what
// Jinja2 3.1 / CPython produce.
#include <gtest/gtest.h>
#include <malloc.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat/template.h"

namespace reprise::chat {
namespace {

using Json = nlohmann::ordered_json;

Result<std::string> TryRender(const std::string& src, const Json& vars = Json::object(),
                              RenderError* error = nullptr) {
  auto t = ChatTemplate::Parse(src);
  if (!t.ok()) return t.status();
  RenderOptions o;
  o.now = "2024-07-26T12:00:00";
  o.extra_kwargs = vars;
  return t->Render(Json::array(), Json(), o, error);
}

std::string R(const std::string& src, const Json& vars = Json::object()) {
  auto r = TryRender(src, vars);
  EXPECT_TRUE(r.ok()) << src << "\n" << r.status().message();
  return r.ok() ? *r : "<error>";
}

TEST(JinjaWhitespace, TrimBlocksAndLstripBlocksRemoveTagOnlyLines) {
  EXPECT_EQ(R("  {% if true %}\nx\n  {% endif %}\ny"), "x\ny");
  EXPECT_EQ(R("{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n"), "  1\n  2\n");
}

TEST(JinjaWhitespace, DashModifiersStripAllAdjacentWhitespace) {
  EXPECT_EQ(R("a  \n {{- 'b' -}} \n  c"), "abc");
  EXPECT_EQ(R("a\n  {%- if true -%}\n  b  {%- endif %}"), "ab");
}

TEST(JinjaWhitespace, PlusDisablesLstripAndVariablesAreNotStripped) {
  EXPECT_EQ(R("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(R("  {{ 'x' }}\n"), "  x");
  EXPECT_EQ(R("a {% if true %}b{% endif %}"), "a b");  // not at line start
}

TEST(JinjaWhitespace, DropsOneTrailingNewlineAndNormalizesCrLf) {
  EXPECT_EQ(R("hi\n"), "hi");
  EXPECT_EQ(R("hi\n\n"), "hi\n");
  EXPECT_EQ(R("a\r\nb"), "a\nb");
}

TEST(JinjaWhitespace, CommentsFollowBlockRules) {
  EXPECT_EQ(R("a\n  {# note #}\nb"), "a\nb");
  EXPECT_EQ(R("a {#- note -#}  b"), "ab");
}

TEST(JinjaPrinting, ValuesPrintLikePythonStr) {
  EXPECT_EQ(R("{{ {'a': 1, 'b': [true, none, 'x']} }}"), "{'a': 1, 'b': [True, None, 'x']}");
  EXPECT_EQ(R("{{ none }}|{{ true }}|{{ missing }}|{{ (1, 'a') }}|{{ (1,) }}"), "None|True||(1, 'a')|(1,)");
  EXPECT_EQ(R("{{ [\"it's\", 'a\"b', 'new\\nline'] }}"), "[\"it's\", 'a\"b', 'new\\nline']");
  EXPECT_EQ(R("{{ 1.0 }} {{ 1 / 3 }} {{ 10 / 4 }} {{ 1e20 }} {{ 0.00001 }} {{ 2 ** 10 }}"),
            "1.0 0.3333333333333333 2.5 1e+20 1e-05 1024");
  EXPECT_EQ(R("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 3 * 'ab' }} {{ 1 + 2.5 }}"), "3 -4 2 ababab 3.5");
}

TEST(JinjaPrinting, InputJsonKeepsKeyOrder) {
  Json vars = Json::parse(R"({"d": {"z": 1, "a": {"y": 2.5, "b": null}}})");
  EXPECT_EQ(R("{{ d }}|{{ d | tojson }}", vars), "{'z': 1, 'a': {'y': 2.5, 'b': None}}|{\"z\": 1, \"a\": {\"y\": 2.5, \"b\": null}}");
}

TEST(JinjaFilters, ToJsonMatchesPythonJsonDumps) {
  EXPECT_EQ(R("{{ {'a': 'é\"\\n', 'b': [1, 2.5, none, true]} | tojson }}"),
            "{\"a\": \"é\\\"\\n\", \"b\": [1, 2.5, null, true]}");
  EXPECT_EQ(R("{{ {'a': [1], 'b': {}} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}");
  // A negative indent is Python's " " * -1: newlines, no spaces.
  EXPECT_EQ(R("{{ {'a': 1} | tojson(indent=-1) }}"), "{\n\"a\": 1\n}");
  EXPECT_EQ(R("{{ 'a\nb' | indent(-3) }}"), "a\nb");
  EXPECT_EQ(R("{{ 'a' | center(5) }}"), "  a  ");
  EXPECT_EQ(R("{{ '-1'.zfill(4) }}"), "-001");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"), "{\"a\": 2, \"b\": 1}");
  EXPECT_EQ(R("{{ 'é' | tojson(ensure_ascii=true) }}"), "\"\\u00e9\"");
  EXPECT_EQ(R("{{ '<&>' | tojson }}"), "\"<&>\"");  // no HTML escaping
}

TEST(JinjaFilters, GeneratorsAreNotJsonSerializable) {
  auto r = TryRender("{{ [{'a': 1}] | map(attribute='a') | tojson }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("generator is not JSON serializable"), std::string::npos);
  EXPECT_EQ(R("{{ [{'a': 1}, {'a': 2}] | map(attribute='a') | list | tojson }}"), "[1, 2]");
}

TEST(JinjaFilters, CommonFilters) {
  Json vars = Json::parse(R"({"xs": [{"t": "a", "n": 1}, {"t": "b", "n": 2}, {"t": "a", "n": 3}]})");
  EXPECT_EQ(R("{{ xs | selectattr('t', 'equalto', 'a') | map(attribute='n') | join(',') }}", vars), "1,3");
  EXPECT_EQ(R("{{ xs | rejectattr('t', 'equalto', 'a') | list | length }}", vars), "1");
  EXPECT_EQ(R("{{ xs | map(attribute='t') | unique | list }}", vars), "['a', 'b']");
  EXPECT_EQ(R("{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) | first }} {{ [1, 2] | last }}"),
            "[1, 2, 3] 3 2");
  EXPECT_EQ(R("{{ missing | default('d') }} {{ none | default('d') }} {{ '' | default('d', true) }}"),
            "d None d");
  EXPECT_EQ(R("{{ '  x  ' | trim }}|{{ 'AbC' | lower }}|{{ 'abc' | upper }}|{{ 'hello world' | title }}"),
            "x|abc|ABC|Hello World");
  EXPECT_EQ(R("{{ 'a\nb\n' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}"), "a\n  b\n|  a\n  b");
  EXPECT_EQ(R("{{ '42' | int + 1 }} {{ '3.7' | int }} {{ 'x' | int }} {{ '2.5' | float }} {{ 3 | string }}"),
            "43 3 0 2.5 3");
  EXPECT_EQ(R("{% for k, v in {'b': 1, 'a': 2} | items %}{{ k }}={{ v }};{% endfor %}"), "b=1;a=2;");
  EXPECT_EQ(R("{% for k, v in {'b': 1, 'a': 2} | dictsort %}{{ k }}={{ v }};{% endfor %}"), "a=2;b=1;");
  EXPECT_EQ(R("{{ 'a-b-a' | replace('a', 'x') }} {{ [1, 2, 3] | sum }} {{ [1, 5, 2] | max }}"), "x-b-x 6 5");
  EXPECT_EQ(R("{{ ['a', 'b'] | reject('equalto', 'a') | list }} {{ 'abc' | length }} {{ 'héllo' | length }}"),
            "['b'] 3 5");
}

TEST(JinjaFilters, SafeMarkupEscapesPlainStringsJoinedWithPlus) {
  EXPECT_EQ(R("{{ ('<b>' | safe) + '<i>' }}"), "<b>&lt;i&gt;");
  EXPECT_EQ(R("{{ '\"' + ('{}' | safe) }}"), "&#34;{}");
  EXPECT_EQ(R("{{ ('<' | safe) ~ '<' }}"), "<<");  // ~ joins as plain str
}

TEST(JinjaTests, IsTests) {
  Json vars = Json::parse(R"({"n": null, "s": "x", "d": {"k": 1}, "l": [1]})");
  EXPECT_EQ(R("{{ s is defined }}{{ zz is defined }}{{ n is none }}{{ s is string }}{{ d is mapping }}"
              "{{ l is iterable }}{{ s is iterable }}{{ d is not string }}{{ 3 is odd }}{{ 1 is in l }}"
              "{{ 2 is equalto 2 }}{{ true is sameas true }}{{ zz is undefined }}{{ 1.5 is float }}",
              vars),
            "TrueFalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(R("{{ 'k' in d }}{{ 'x' in 'xyz' }}{{ 2 not in l }}{{ 1 < 2 < 3 }}{{ 1 < 2 > 3 }}", vars),
            "TrueTrueTrueTrueFalse");
}

TEST(JinjaLoops, LoopVariables) {
  EXPECT_EQ(R("{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
              "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}"
              "{{ loop.nextitem }}{{ loop.cycle('o', 'e') }}|{% endfor %}"),
            "1032TrueFalse3bo|2121FalseFalse3ace|3210FalseTrue3bo|");
}

TEST(JinjaLoops, ElseBreakContinueAndFilter) {
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}"
              "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(R("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}/{{ loop.length }} {% endfor %}"), "2/2 4/2 ");
  EXPECT_EQ(R("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }} {% endfor %}"), "3 7 ");
  EXPECT_EQ(R("{% for c in 'hé' %}[{{ c }}]{% endfor %}{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}"),
            "[h][é]xy");
}

TEST(JinjaScoping, SetInsideLoopDoesNotLeakButNamespaceDoes) {
  EXPECT_EQ(R("{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}"),
            "0102|0");
  EXPECT_EQ(R("{% set ns = namespace(n=0) %}{% for i in [1, 2] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"),
            "3");
  EXPECT_EQ(R("{% if true %}{% set y = 5 %}{% endif %}{{ y }}"), "5");
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(R("{% set x %}a{{ 1 }}{% endset %}{{ x }}|{% set y | upper %}ab{% endset %}{{ y }}"), "a1|AB");
}

TEST(JinjaMacros, DefaultsKeywordsCallerAndOuterVariables) {
  EXPECT_EQ(R("{% set g = '!' %}{% macro m(a, b='B') %}{{ a }}{{ b }}{{ g }}{% endmacro %}"
              "{{ m(1) }}{{ m(1, 2) }}{{ m(b=3, a=4) }}"),
            "1B!12!43!");
  EXPECT_EQ(R("{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}in{% endcall %}"), "[in]");
  EXPECT_EQ(R("{% macro v() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ v(1, k=2) }}"), "(1,){'k': 2}");
}

TEST(JinjaExpressions, SlicingIndexingAndMethods) {
  EXPECT_EQ(R("{{ 'hello'[::-1] }} {{ [1, 2, 3, 4][1:3] }} {{ [1, 2, 3][-1] }} {{ 'héllo'[1] }} {{ 'abc'[:-1] }}"),
            "olleh [2, 3] 3 é ab");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'xxhixx'.strip('x') }} {{ '  a'.lstrip() }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] hi a");
  EXPECT_EQ(R("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'aXa'.replace('a', 'b') }}"
              "{{ 'ab'.upper() }}{{ 'hello world'.title() }}{{ 'a-b'.split('-', 1)[1] }}"),
            "TrueTruebXbABHello Worldb");
  Json vars = Json::parse(R"({"d": {"a": 1}})");
  EXPECT_EQ(R("{{ d.get('a') }}{{ d.get('b') }}{{ d.get('b', 7) }}{{ d.items() | list }}{{ d.keys() | list }}"
              "{{ d['a'] }}{{ d.a }}",
              vars),
            "1None7[('a', 1)]['a']11");
  EXPECT_EQ(R("{{ 'x' if false }}|{{ 'y' if true else 'n' }}|{{ 'a' ~ 1 ~ none }}|{{ '\\u00e9\\x41' }}"),
            "|y|a1None|éA");
}

TEST(JinjaGlobals, StrftimeNowUsesTheFrozenClockAndRangeWorks) {
  EXPECT_EQ(R("{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M') }}"), "26 Jul 2024 2024-07-26 12:00");
  EXPECT_EQ(R("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ dict(a=1) }}"), "[0, 1, 2] [1, 3, 5] {'a': 1}");
}

TEST(JinjaBlocks, GenerationFilterAndRawBlocksRenderTheirBody) {
  EXPECT_EQ(R("{% generation %}x{{ 1 }}{% endgeneration %}"), "x1");
  EXPECT_EQ(R("{% filter upper %}ab{{ 'c' }}{% endfilter %}"), "ABC");
  EXPECT_EQ(R("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
}

TEST(JinjaErrors, RaiseExceptionCarriesTheTemplateMessage) {
  RenderError error;
  auto r = TryRender("line1\n{{ raise_exception('Roles must alternate!') }}", Json::object(), &error);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "Roles must alternate!");
  EXPECT_EQ(error.kind, RenderError::Kind::kRaised);
  EXPECT_EQ(error.line, 2);
}

TEST(JinjaErrors, RuntimeErrorsCarryLineAndPythonMessage) {
  Json vars = Json::parse(R"({"m": {"role": "user"}})");
  auto r = TryRender("a\n\n{{ m.content + 'x' }}", vars);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "chat template line 3: UndefinedError: 'dict object' has no attribute 'content'");
  r = TryRender("{{ 'a' + {'k': 1} }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("can only concatenate str (not \"dict\") to str"), std::string::npos);
  r = TryRender("{% for t in n %}{% endfor %}", Json::parse(R"({"n": null})"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'NoneType' object is not iterable"), std::string::npos);
  r = TryRender("{% set l = [] %}{{ l.append(1) }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("SecurityError"), std::string::npos);
  r = TryRender("{{ missing.attr }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'missing' is undefined"), std::string::npos);
}

TEST(JinjaErrors, SyntaxErrorsFailAtParseWithLine) {
  auto t = ChatTemplate::Parse("ok\n{% if x %}\nno end");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("endif"), std::string::npos);
  t = ChatTemplate::Parse("a\nb\n{{ x | nosuchfilter }}");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("line 3"), std::string::npos);
  EXPECT_FALSE(ChatTemplate::Parse("{{ 'unterminated }}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{% unknowntag %}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{{ (1 }}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{% break %}").ok());
}

TEST(JinjaErrors, DeepMacroRecursionIsAnErrorNotACrash) {
  auto r = TryRender("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("RecursionError"), std::string::npos);
}

// Found by the jinja fuzz target (UBSan: signed overflow in "-"): integers
// are 64-bit, so results past the range are a template error, never
// undefined behaviour; ** by squaring never loops for long.
TEST(JinjaErrors, IntegerOverflowIsAnErrorAndPowIsFast) {
  for (const char* src : {"{{ 4 - (-9223372036854775807) }}", "{{ 9223372036854775807 + 1 }}",
                          "{{ 4611686018427387904 * 2 }}", "{{ -(-9223372036854775807 - 1) }}",
                          "{{ (-9223372036854775807 - 1) // -1 }}", "{{ 2 ** 999999999999 }}"}) {
    auto r = TryRender(src);
    ASSERT_FALSE(r.ok()) << src;
    EXPECT_NE(r.status().message().find("OverflowError"), std::string::npos) << src;
  }
  EXPECT_EQ(R("{{ 1 ** 999999999999999 }}"), "1");
  EXPECT_EQ(R("{{ (-1) ** 999999999999999 }}"), "-1");
  EXPECT_EQ(R("{{ 3 ** 4 }},{{ -7 // 2 }},{{ -7 % 3 }},{{ 7 % -3 }}"), "81,-4,2,-2");
  EXPECT_EQ(R("{{ (-9223372036854775807 - 1) % -1 }},{{ (-9223372036854775807 - 1) % 3 }}"),
            "0,1");
  EXPECT_EQ(R("{{ 9223372036854775806 + 1 }}"), "9223372036854775807");
}

// Found by the jinja fuzz target (a hang): an empty list or string times a
// huge count is empty at once, not n iterations that add nothing; a
// non-empty one past the size cap is a MemoryError.
TEST(JinjaErrors, RepeatingAnEmptySequenceIsInstantWhateverTheCount) {
  EXPECT_EQ(R("{{ [] * 9223372036854775807 }}|{{ '' * 9223372036854775807 }}|{{ (0 * [1]) }}"),
            "[]||[]");
  EXPECT_EQ(R("{{ 9223372036854775807 * [] }}|{{ [1, 2] * -5 }}|{{ 'ab' * 0 }}|{{ 'ab' * 2 }}"),
            "[]|[]||abab");
  auto r = TryRender("{{ [1] * 9223372036854775807 }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("MemoryError"), std::string::npos);
  // Strings are repeated by doubling: every count gives n copies in order.
  for (int n = 1; n <= 37; ++n) {
    std::string want;
    for (int i = 0; i < n; ++i) want += "abc";
    EXPECT_EQ(R("{{ 'abc' * " + std::to_string(n) + " }}"), want) << n;
    EXPECT_EQ(R("{{ (" + std::to_string(n) + " * 'x') | length }}"), std::to_string(n));
  }
  EXPECT_EQ(R("{{ ('x' * 1000001) | length }}"), "1000001");
}

// A runaway template fails with the execution budget's error instead of
// hanging; RenderOptions::max_steps sets the budget (the fuzz target's small
// one), 0 keeps the default that real templates never approach.
TEST(JinjaErrors, ExecutionBudgetStopsRunawayLoopsAndIsConfigurable) {
  auto r = TryRender("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("execution budget"), std::string::npos);
  auto t = ChatTemplate::Parse("{% for i in range(n) %}x{% endfor %}");
  ASSERT_TRUE(t.ok());
  RenderOptions o;
  o.extra_kwargs = Json{{"n", 50}};
  o.max_steps = 40;
  EXPECT_FALSE(t->Render(Json::array(), Json(), o).ok());
  o.max_steps = 200;
  auto small = t->Render(Json::array(), Json(), o);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->size(), 50u);
  o.max_steps = 0;
  o.extra_kwargs = Json{{"n", 50000}};
  auto big = t->Render(Json::array(), Json(), o);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->size(), 50000u);
}

// A template that builds strings without bound (a hostile or broken chat
// template in a model file) fails with a MemoryError once its strings, lists and
// output pass the render's byte budget, instead of growing until the process
// is killed; RenderOptions::max_bytes sets the budget, and a long
// conversation's render is nowhere near the default one.
TEST(JinjaErrors, ByteBudgetStopsRunawayStringsAndListsAndIsConfigurable) {
  const char* runaway[] = {
      // doubling a megabyte forty times
      "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(40) %}"
      "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
      // a list of a thousand copies of a 60 MB string (the list itself is small)
      "{% set s = 'x' * 60000000 %}{{ ([s] * 1000) | length }}",
      // 100,000 outputs of a megabyte
      "{% set s = 'y' * 1000000 %}{% for i in range(100000) %}{{ s }}{% endfor %}",
      // a 300,000-item list made and dropped 100,000 times (found by the fuzz
      // target: each list is small enough for Repeat's own limit, but the
      // loop took 44 s; the lists' slots are charged now)
      "{% set l = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] %}{% for i in range(100000) %}"
      "{{ (l * 30000) | length }}{% endfor %}",
      // a 20 MB string iterated: 20 M one-character Values (2 GB) were made
      // before anything was charged for them (found by the fuzz target: its
      // `| reject` of a 2 MB string took 0.5 s)
      "{% set s = 'x' * 20000000 %}{% for c in s %}{% endfor %}",
      "{% set s = 'x' * 20000000 %}{{ s | reject | length }}",
      // widths of 6 * 10^18 spaces (found by the fuzz target: tojson's indent
      // asked the allocator for 6 EB and aborted the process)
      "{{ {'a': 1} | tojson(indent=6148914691236517205) }}",
      "{{ 'a\nb' | indent(6148914691236517205) }}",
      "{{ 'a' | center(6148914691236517205) }}",
      "{{ '-1'.zfill(6148914691236517205) }}",
  };
  for (const char* src : runaway) {
    auto r = TryRender(src);
    ASSERT_FALSE(r.ok()) << src;
    EXPECT_NE(r.status().message().find("MemoryError"), std::string::npos) << r.status().message();
  }
  auto t = ChatTemplate::Parse("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}");
  ASSERT_TRUE(t.ok());
  Json messages = Json::array();
  for (int i = 0; i < 200; ++i) {  // 200 messages of 10 KB: a 2 MB conversation
    messages.push_back({{"role", i % 2 ? "assistant" : "user"}, {"content", std::string(10000, 'a' + i % 26)}});
  }
  RenderOptions o;
  auto whole = t->Render(messages, Json(), o);
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  EXPECT_GT(whole->size(), 2000000u);
  o.max_bytes = 1 << 20;  // a megabyte: the same conversation no longer fits
  auto small = t->Render(messages, Json(), o);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("MemoryError"), std::string::npos);
}

// Hostile depth: expressions thousands deep (chains the parser builds in a
// loop: a + b + ..., x.a.b..., not not ...) are syntax errors, and values
// nested 100,000 deep at run time print and dump as Python's RecursionError,
// and are freed without recursing; none of them may overflow the stack (each
// crashed the process before).
TEST(JinjaErrors, DeepExpressionsAndValuesFailCleanlyInsteadOfOverflowingTheStack) {
  const int n = 200000;
  std::string plus = "{{ 1", attrs = "{{ x", nots = "{{ ";
  for (int i = 0; i < n; ++i) plus += " + 1", attrs += ".a", nots += "not ";
  plus += " }}", attrs += " }}", nots += "1 }}";
  for (const std::string* src : {&plus, &attrs, &nots}) {
    auto r = TryRender(*src);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("too deep"), std::string::npos) << r.status().message();
  }
  // 400 terms still parse and evaluate (real templates: a few dozen).
  std::string ok = "{{ 0";
  for (int i = 0; i < 300; ++i) ok += " + 1";
  EXPECT_EQ(R(ok + " }}"), "300");
  const char* deep_values[] = {
      "{% set ns = namespace(x={}) %}{% for i in range(100000) %}{% set ns.x = {'a': ns.x} %}"
      "{% endfor %}{{ ns.x | tojson }}",
      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
      "{% endfor %}{{ ns.x }}",
      "{% set ns = namespace(x=[], y=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
      "{% set ns.y = [ns.y] %}{% endfor %}{{ ns.x == ns.y }}",
  };
  for (const char* src : deep_values) {
    auto r = TryRender(src);
    ASSERT_FALSE(r.ok()) << src;
    EXPECT_NE(r.status().message().find("RecursionError"), std::string::npos) << r.status().message();
  }
  // Built and freed 500,000 deep without printing: fine, and no recursion.
  EXPECT_EQ(R("{% set ns = namespace(x=[]) %}{% for i in range(5) %}{% for j in range(100000) %}"
              "{% set ns.x = [ns.x] %}{% endfor %}{% endfor %}{{ ns.x | length }}"),
            "1");
}

TEST(ChatTemplateApi, RendersMessagesToolsAndSpecialTokens) {
  auto t = ChatTemplate::Parse(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
      "{% if tools %}T{{ tools | length }}{% endif %}{% if add_generation_prompt %}<assistant>{% endif %}"
      "{{ eos_token is defined }}");
  ASSERT_TRUE(t.ok());
  RenderOptions o;
  o.bos_token = "<s>";
  o.add_generation_prompt = true;
  auto out = t->Render(Json::parse(R"([{"role": "user", "content": "hi"}])"), Json::parse(R"([{"type": "function"}])"), o);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, "<s><user>hiT1<assistant>False");
}

TEST(ChatTemplateApi, RejectsABadClock) {
  auto t = ChatTemplate::Parse("x");
  ASSERT_TRUE(t.ok());
  RenderOptions o;
  o.now = "yesterday";
  EXPECT_FALSE(t->Render(Json::array(), Json(), o).ok());
}

}  // namespace
}  // namespace reprise::chat

namespace reprise::chat {
namespace {

TEST(JinjaLimits, HostileTemplatesAndInputsFailCleanly) {
  EXPECT_FALSE(ChatTemplate::Parse("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{{ " + std::string(5000, '[') + std::string(5000, ']') + " }}").ok());
  std::string nested;
  for (int i = 0; i < 1000; ++i) nested += "{% if true %}";
  EXPECT_FALSE(ChatTemplate::Parse(nested).ok());
  auto r = TryRender("{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}");
  EXPECT_FALSE(r.ok());
  r = TryRender("{{ 'ab' * 100000000000 }}");
  EXPECT_FALSE(r.ok());
  auto t = ChatTemplate::Parse("{{ messages }}");
  ASSERT_TRUE(t.ok());
  Json deep = Json::array();
  for (int i = 0; i < 1000; ++i) deep = Json::array({deep});
  EXPECT_FALSE(t->Render(deep, Json(), RenderOptions{}).ok());
}

// A macro is stored in the scope it captures: that shared_ptr cycle kept the
// whole render context alive after every render (found by the jinja fuzz
// target under LeakSanitizer). 300 renders of 200 KB of messages would keep
// 60 MB; the heap must not grow by more than a few.
TEST(JinjaMacros, RenderingATemplateWithMacrosKeepsNothingAlive) {
  auto t = ChatTemplate::Parse(
      "{%- macro show(m) -%}[{{ m.role }}] {{ m.content }}{%- endmacro -%}"
      "{%- set ns = namespace(f=none) -%}{%- set ns.f = show -%}"
      "{%- for m in messages %}{{ show(m) }}{% endfor %}");
  ASSERT_TRUE(t.ok()) << t.status().message();
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", std::string(200000, 'x')}});
  RenderOptions options;
  options.now = "2026-01-02";
  auto render = [&] {
    auto out = t->Render(messages, nullptr, options);
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_EQ(out->size(), 200000u + 7);
  };
  render();  // warm up allocator pools
  const size_t before = mallinfo2().uordblks;
  for (int i = 0; i < 300; ++i) render();
  const size_t after = mallinfo2().uordblks;
  EXPECT_LT(after, before + (size_t{8} << 20)) << "heap grew by " << (after - before) << " bytes";
}

}  // namespace
}  // namespace reprise::chat
