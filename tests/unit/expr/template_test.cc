#include "expr/template.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace pushhub::expr {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Properties props(Pairs pairs) {
  auto p = Properties::make(std::move(pairs));
  EXPECT_TRUE(p) << p.error().message;
  return p ? *p : Properties();
}

CompiledTemplate compiled(std::string_view body, TemplateFormat format) {
  auto t = CompiledTemplate::compile(body, format);
  EXPECT_TRUE(t) << body << ": " << (t ? "" : t.error().message);
  return t ? *t : CompiledTemplate();
}

std::string render(const CompiledTemplate& t, const Properties& p) {
  auto out = t.render(p, 1 << 20);
  EXPECT_TRUE(out);
  return out ? *out : "<too long>";
}

std::string json(std::string_view body, const Properties& p = {}) {
  return render(compiled(body, TemplateFormat::kJson), p);
}
std::string xml(std::string_view body, const Properties& p = {}) {
  return render(compiled(body, TemplateFormat::kXml), p);
}
std::string value(std::string_view text, const Properties& p = {}) {
  auto t = CompiledTemplate::compileValue(text);
  EXPECT_TRUE(t) << text << ": " << (t ? "" : t.error().message);
  return t ? render(*t, p) : "<refused>";
}

// A JSON template whose only member "v" holds `expression`, rendered: just the value's text.
std::string jsonValue(std::string_view expression, const Properties& p) {
  std::string out = json("{\"v\":\"" + std::string(expression) + "\"}", p);
  EXPECT_EQ(out.substr(0, 5), "{\"v\":");
  EXPECT_EQ(out.back(), '}');
  return out.substr(5, out.size() - 6);
}

std::string refusal(std::string_view body, TemplateFormat format) {
  auto t = CompiledTemplate::compile(body, format);
  EXPECT_FALSE(t) << body << " compiled";
  if (t) return "";
  EXPECT_EQ(t.error().code, Error::Code::kInvalidArgument);
  return t.error().message;
}
std::string jsonRefusal(std::string_view body) { return refusal(body, TemplateFormat::kJson); }
std::string xmlRefusal(std::string_view body) { return refusal(body, TemplateFormat::kXml); }
std::string valueRefusal(std::string_view text) {
  auto t = CompiledTemplate::compileValue(text);
  EXPECT_FALSE(t) << text << " compiled";
  return t ? "" : t.error().message;
}

// ---- Properties ---------------------------------------------------------------------------------

TEST(Properties, LookupIgnoresCase) {
  Properties p = props({{"Name", "Ann"}, {"b", "2"}, {"ZZ_9", "z"}});
  EXPECT_EQ(p.size(), 3u);
  ASSERT_NE(p.find("name"), nullptr);
  EXPECT_EQ(*p.find("name"), "Ann");
  EXPECT_EQ(*p.find("NAME"), "Ann");
  EXPECT_EQ(*p.find("nAmE"), "Ann");
  EXPECT_EQ(*p.find("B"), "2");
  EXPECT_EQ(*p.find("zz_9"), "z");
  EXPECT_EQ(p.find("nam"), nullptr);
  EXPECT_EQ(p.find("names"), nullptr);
  EXPECT_EQ(p.find(""), nullptr);
  EXPECT_EQ(Properties().find("a"), nullptr);
}

TEST(Properties, KeepsNamesATemplateCannotReach) {
  Properties p = props({{"a-b", "1"}, {"", "2"}, {"é", "3"}});
  EXPECT_EQ(p.size(), 3u);
  EXPECT_EQ(*p.find("A-B"), "1");
  EXPECT_EQ(*p.find(""), "2");
  EXPECT_EQ(*p.find("é"), "3");
  EXPECT_EQ(p.find("É"), nullptr);  // letter case is folded for ASCII only
}

TEST(Properties, RefusesNamesDifferingOnlyByCase) {
  auto p = Properties::make({{"Name", "a"}, {"other", "b"}, {"name", "c"}});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Error::Code::kInvalidArgument);
  EXPECT_EQ(p.error().message, "properties: 'Name' and 'name' differ only by letter case");
  auto twice = Properties::make({{"a", "1"}, {"a", "2"}});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message, "properties: 'a' is given twice");
}

TEST(Properties, RefusesValuesThatAreNotUtf8) {
  for (std::string bad : {"\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "a\xFF"}) {
    auto p = Properties::make({{"ok", "é"}, {"Title", bad}});
    ASSERT_FALSE(p) << bad;
    EXPECT_EQ(p.error().message, "properties: the value of 'Title' is not valid UTF-8");
  }
  EXPECT_TRUE(Properties::make({{"a", "\xF0\x9F\x98\x80 \xE2\x82\xAC \xC3\xA9"}}));
  // Names are quoted in messages as clean UTF-8.
  auto odd = Properties::make({{"n\xFF\x01", "\xFF"}});
  ASSERT_FALSE(odd);
  EXPECT_EQ(odd.error().message, "properties: the value of 'n? ' is not valid UTF-8");
}

// ---- Expressions --------------------------------------------------------------------------------

TEST(Expression, PropertyAndMissingProperty) {
  Properties p = props({{"name", "Ann"}, {"empty", ""}});
  EXPECT_EQ(value("$(name)", p), "Ann");
  EXPECT_EQ(value("$(missing)", p), "");
  EXPECT_EQ(value("$(empty)", p), "");
  EXPECT_EQ(jsonValue("$(missing)", p), "\"\"");
  EXPECT_EQ(xml("<a>$(missing)</a>", p), "<a></a>");
  EXPECT_EQ(xml("<a b=\"$(missing)\"/>", p), "<a b=\"\"/>");
}

TEST(Expression, NamesAreMatchedWithoutRegardToCase) {
  Properties p = props({{"FirstName", "Ann"}});
  EXPECT_EQ(value("$(firstname)", p), "Ann");
  EXPECT_EQ(value("$(FIRSTNAME)", p), "Ann");
  EXPECT_EQ(value("{$(fIrStNaMe) + '!'}", p), "Ann!");
}

TEST(Expression, ClipCountsCodePoints) {
  Properties p = props({{"s", "hello"}});
  const char* expected[] = {"", "h", "he", "hel", "hell", "hello", "hello"};
  for (int n = 0; n <= 6; ++n) {
    EXPECT_EQ(value("$(s, " + std::to_string(n) + ")", p), expected[n]) << n;
  }
  EXPECT_EQ(value("$(s,2147483647)", p), "hello");
  EXPECT_EQ(value("$(missing, 3)", p), "");
}

TEST(Expression, EllipsisIsAtMostNCodePoints) {
  Properties p = props({{"s", "hello"}, {"abc", "abc"}, {"e", ""}});
  const char* expected[] = {"", ".", "..", "...", "h...", "hello", "hello"};
  for (int n = 0; n <= 6; ++n) {
    EXPECT_EQ(value(".(s, " + std::to_string(n) + ")", p), expected[n]) << n;
  }
  EXPECT_EQ(value(".(abc, 2)", p), "..");
  EXPECT_EQ(value(".(abc, 3)", p), "abc");
  EXPECT_EQ(value(".(abc, 0)", p), "");
  EXPECT_EQ(value(".(e, 0)", p), "");
  EXPECT_EQ(value(".(missing, 2)", p), "");
}

TEST(Expression, ClippingNeverSplitsAMultiByteCharacter) {
  // é is 2 bytes, € and 日本語 3, 😀 4.
  Properties p =
      props({{"two", "h\xC3\xA9llo"},
             {"three", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"},
             {"four", "\xF0\x9F\x98\x80\xF0\x9F\x98\x81\xF0\x9F\x98\x82\xF0\x9F\x98\x83"},
             {"mixed",
              "a\xE2\x82\xAC\xF0\x9F\x98\x80"
              "b"}});
  EXPECT_EQ(value("$(two, 1)", p), "h");
  EXPECT_EQ(value("$(two, 2)", p), "h\xC3\xA9");
  EXPECT_EQ(value("$(two, 4)", p), "h\xC3\xA9ll");
  EXPECT_EQ(value("$(two, 5)", p), "h\xC3\xA9llo");
  EXPECT_EQ(value("$(three, 1)", p), "\xE6\x97\xA5");
  EXPECT_EQ(value("$(three, 2)", p), "\xE6\x97\xA5\xE6\x9C\xAC");
  EXPECT_EQ(value("$(three, 3)", p), "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E");
  EXPECT_EQ(value("$(four, 1)", p), "\xF0\x9F\x98\x80");
  EXPECT_EQ(value("$(four, 3)", p), "\xF0\x9F\x98\x80\xF0\x9F\x98\x81\xF0\x9F\x98\x82");
  EXPECT_EQ(value("$(mixed, 0)", p), "");
  EXPECT_EQ(value("$(mixed, 1)", p), "a");
  EXPECT_EQ(value("$(mixed, 2)", p), "a\xE2\x82\xAC");
  EXPECT_EQ(value("$(mixed, 3)", p), "a\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(value("$(mixed, 4)", p),
            "a\xE2\x82\xAC\xF0\x9F\x98\x80"
            "b");
  // 4 code points: clipped to 3 leaves no room before the dots.
  EXPECT_EQ(value(".(four, 3)", p), "...");
  EXPECT_EQ(value(".(four, 4)", p),
            "\xF0\x9F\x98\x80\xF0\x9F\x98\x81\xF0\x9F\x98\x82\xF0\x9F\x98\x83");
  EXPECT_EQ(value(".(mixed, 3)", p), "...");
  EXPECT_EQ(value(".(two, 4)", p), "h...");
  EXPECT_EQ(value(".(two, 5)", p), "h\xC3\xA9llo");
  EXPECT_EQ(value(".(three, 2)", p), "..");
  Properties seven = props({{"t",
                             "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x83\x86\xE3\x82\xAD"
                             "\xE3\x82\xB9\xE3\x83\x88"}});  // 日本語テキスト
  EXPECT_EQ(value(".(t, 5)", seven), "\xE6\x97\xA5\xE6\x9C\xAC...");
  EXPECT_EQ(value(".(t, 6)", seven), "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E...");
  EXPECT_EQ(value(".(t, 7)", seven), *seven.find("t"));
  // In JSON the clip counts the value's characters, not its escaped form.
  Properties quotes = props({{"q", "\"\"\"\""}});
  EXPECT_EQ(jsonValue("$(q, 2)", quotes), "\"\\\"\\\"\"");
  EXPECT_EQ(jsonValue(".(q, 3)", quotes), "\"...\"");
}

TEST(Expression, PercentEncodingKeepsOnlyUnreservedCharacters) {
  Properties p = props({{"r", "a b/c?d=e&f#g%h+i:j@k"},
                        {"u", "AZaz09-._~"},
                        {"m", "\xC3\xA9\xF0\x9F\x98\x80"},
                        {"ctl", "\n\"<"}});
  EXPECT_EQ(value("%(r)", p), "a%20b%2Fc%3Fd%3De%26f%23g%25h%2Bi%3Aj%40k");
  EXPECT_EQ(value("%(u)", p), "AZaz09-._~");
  EXPECT_EQ(value("%(m)", p), "%C3%A9%F0%9F%98%80");
  EXPECT_EQ(value("%(missing)", p), "");
  EXPECT_EQ(jsonValue("%(ctl)", p), "\"%0A%22%3C\"");
  EXPECT_EQ(xml("<a href=\"%(r)\">%(ctl)</a>", p),
            "<a href=\"a%20b%2Fc%3Fd%3De%26f%23g%25h%2Bi%3Aj%40k\">%0A%22%3C</a>");
  EXPECT_EQ(value("{'x=' + %(m)}", p), "x=%C3%A9%F0%9F%98%80");
}

TEST(Expression, NumberIsBareInJsonOnlyWhenTheValueIsANumber) {
  Properties p = props({{"zero", "0"},
                        {"forty", "40"},
                        {"sci", "1.5e3"},
                        {"frac", "2.50"},
                        {"exp", "1E+5"},
                        {"nexp", "3e-2"},
                        {"neg", "-1"},
                        {"lead", "01"},
                        {"space", " 4"},
                        {"dot", "1."},
                        {"dotfirst", ".5"},
                        {"e", "1e"},
                        {"word", "abc"},
                        {"empty", ""},
                        {"trail", "4 "}});
  EXPECT_EQ(json("{\"badge\":\"#(forty)\"}", p), "{\"badge\":40}");
  EXPECT_EQ(jsonValue("#(zero)", p), "0");
  EXPECT_EQ(jsonValue("#(sci)", p), "1.5e3");
  EXPECT_EQ(jsonValue("#(frac)", p), "2.50");
  EXPECT_EQ(jsonValue("#(exp)", p), "1E+5");
  EXPECT_EQ(jsonValue("#(nexp)", p), "3e-2");
  EXPECT_EQ(jsonValue("#(neg)", p), "\"-1\"");
  EXPECT_EQ(jsonValue("#(lead)", p), "\"01\"");
  EXPECT_EQ(jsonValue("#(space)", p), "\" 4\"");
  EXPECT_EQ(jsonValue("#(dot)", p), "\"1.\"");
  EXPECT_EQ(jsonValue("#(dotfirst)", p), "\".5\"");
  EXPECT_EQ(jsonValue("#(e)", p), "\"1e\"");
  EXPECT_EQ(jsonValue("#(word)", p), "\"abc\"");
  EXPECT_EQ(jsonValue("#(empty)", p), "\"\"");
  EXPECT_EQ(jsonValue("#(missing)", p), "\"\"");
  EXPECT_EQ(jsonValue("#(trail)", p), "\"4 \"");
  EXPECT_EQ(json("{\"a\":[\"#(forty)\",\"#(neg)\"]}", p), "{\"a\":[40,\"-1\"]}");
  // XML has no bare numbers: the value is text.
  EXPECT_EQ(xml("<badge value=\"#(forty)\">#(neg)</badge>", p), "<badge value=\"40\">-1</badge>");
  EXPECT_EQ(xml("<a>#(word)</a>", p), "<a>abc</a>");
  EXPECT_EQ(xml("<a>#(missing)</a>", p), "<a></a>");
  EXPECT_EQ(value("#(neg)", p), "-1");
}

TEST(Expression, LiteralsWriteTheirQuoteTwice) {
  Properties p = props({{"name", "Ann"}});
  EXPECT_EQ(value("{'it''s ' + $(name)}", p), "it's Ann");
  EXPECT_EQ(value("{\"say \"\"hi\"\"\"}", p), "say \"hi\"");
  EXPECT_EQ(value("{'' + ''}", p), "");
  EXPECT_EQ(value("{'\"' + \"'\"}", p), "\"'");
  EXPECT_EQ(value("{'a + b } c'}", p), "a + b } c");
  EXPECT_EQ(value("{'$(name)'}", p), "$(name)");
  // In JSON a double-quoted literal's quotes are escaped in the body, and rendered escaped.
  EXPECT_EQ(json("{\"k\":\"{\\\"x\\\"\\\"y\\\"}\"}", p), "{\"k\":\"x\\\"y\"}");
  EXPECT_EQ(json("{\"k\":\"{'\\u00e9\\ud83d\\ude00\\n'}\"}", p),
            "{\"k\":\"\xC3\xA9\xF0\x9F\x98\x80\\n\"}");
}

TEST(Expression, Concatenation) {
  Properties p = props({{"first", "Ann"}, {"second", "Bo"}, {"n", "12345"}});
  EXPECT_EQ(value("{$(first) + ' - ' + $(second)}", p), "Ann - Bo");
  EXPECT_EQ(value("{$(first)+$(second)}", p), "AnnBo");
  EXPECT_EQ(value("{ \t\r\n$(first)\n+\t$(second) }", p), "AnnBo");
  EXPECT_EQ(value("{$(first)}", p), "Ann");
  EXPECT_EQ(value("{.(n, 4) + %(first) + $(n,2)}", p), "1...Ann12");
  EXPECT_EQ(value("{$( first , 1 ) + .( n ,+3 )}", p), "A...");
  EXPECT_EQ(value("$(n, 003)", p), "123");
  EXPECT_EQ(value("$(n, +2)", p), "12");
}

// ---- Escaping -----------------------------------------------------------------------------------

TEST(Escaping, JsonStrings) {
  Properties p = props({{"v", "a\"b\\c/\n\r\t\b\f\x01\x1f\x7f\xC3\xA9"}});
  EXPECT_EQ(jsonValue("$(v)", p), "\"a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\xC3\xA9\"");
  EXPECT_EQ(jsonValue("{'<' + $(v, 2)}", p), "\"<a\\\"\"");
}

TEST(Escaping, XmlTextAndAttributes) {
  Properties p = props({{"v", "<a & \"b\" 'c'>\t\r\n"}, {"ctl", "x\x01y\x1f\xEF\xBF\xBEz"}});
  EXPECT_EQ(xml("<t>$(v)</t>", p), "<t>&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;\t\r\n</t>");
  EXPECT_EQ(xml("<t a=\"$(v)\"/>", p),
            "<t a=\"&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;&#9;&#13;&#10;\"/>");
  EXPECT_EQ(xml("<t a='$(v)'/>", p),
            "<t a='&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;&#9;&#13;&#10;'/>");
  // Characters XML cannot carry at all become U+FFFD.
  EXPECT_EQ(xml("<t>$(ctl)</t>", p), "<t>x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBDz</t>");
  // Literals are decoded text and are escaped again.
  EXPECT_EQ(xml("<t>{'a &amp; &lt;b&gt;' + $(missing)}</t>", p), "<t>a &amp; &lt;b&gt;</t>");
  // compileValue does not escape.
  EXPECT_EQ(value("$(v)", p), "<a & \"b\" 'c'>\t\r\n");
}

// ---- JSON documents -----------------------------------------------------------------------------

TEST(JsonTemplate, ConstantBodyRendersByteForByte) {
  std::string body =
      " {\"aps\": {\"alert\" : \"Hello $(name)\", \"x\":\" $(a)\", \"e\":\"\\u00e9\\n\\/\"},\n"
      "\"n\":[1, -2.5e+3, 0, true, false, null, {}, []], \"$schema\":\"x\", \"#\":\"\"} \n";
  CompiledTemplate t = compiled(body, TemplateFormat::kJson);
  EXPECT_TRUE(t.isConstant());
  EXPECT_EQ(render(t, props({{"name", "Ann"}, {"a", "x"}})), body);
}

TEST(JsonTemplate, ExpressionsReplaceWholeStringValues) {
  Properties p = props({{"title", "Hi \"you\""}, {"b", "3"}});
  CompiledTemplate t = compiled(
      "{\"aps\":{\"alert\":{\"title\":\"$(title)\"},\"badge\":\"#(b)\"},"
      " \"list\":[\"$(b, 1)\", \"plain\"]}",
      TemplateFormat::kJson);
  EXPECT_FALSE(t.isConstant());
  EXPECT_EQ(render(t, p),
            "{\"aps\":{\"alert\":{\"title\":\"Hi \\\"you\\\"\"},\"badge\":3}, \"list\":[\"3\", "
            "\"plain\"]}");
  EXPECT_EQ(t, compiled("{\"aps\":{\"alert\":{\"title\":\"$(title)\"},\"badge\":\"#(b)\"},"
                        " \"list\":[\"$(b, 1)\", \"plain\"]}",
                        TemplateFormat::kJson));
}

TEST(JsonTemplate, EscapedValuesAreDecodedBeforeDetection) {
  Properties p = props({{"a", "x"}});
  EXPECT_EQ(json("{\"k\":\"\\u0024(a)\"}", p), "{\"k\":\"x\"}");
  EXPECT_EQ(json("{\"k\":\"\\\\$(a)\"}", p), "{\"k\":\"\\\\$(a)\"}");
}

TEST(JsonTemplate, KeysAreNeverExpressions) {
  EXPECT_EQ(jsonRefusal("{\"$(a)\":1}"), "position 1: an expression cannot be a JSON key");
  EXPECT_EQ(jsonRefusal("{\"x\":{\"{'a' + 'b'}\":1}}"),
            "position 6: an expression cannot be a JSON key");
  EXPECT_EQ(json("{\"$5\":1,\"...\":2,\"$(\":3}", props({{"a", "x"}})),
            "{\"$5\":1,\"...\":2,\"$(\":3}");
}

TEST(JsonTemplate, RefusesInvalidJsonWithThePosition) {
  EXPECT_EQ(jsonRefusal(""), "position 0: the body is empty: expected a JSON object");
  EXPECT_EQ(jsonRefusal("  "), "position 2: the body is empty: expected a JSON object");
  EXPECT_EQ(jsonRefusal("[1]"), "position 0: the top level of a JSON template must be an object");
  EXPECT_EQ(jsonRefusal(" \"a\""),
            "position 1: the top level of a JSON template must be an object");
  EXPECT_EQ(jsonRefusal("{\"a\":}"), "position 5: expected a JSON value");
  EXPECT_EQ(jsonRefusal("{\"a\":1,}"), "position 7: expected a string key");
  EXPECT_EQ(jsonRefusal("{\"a\" 1}"), "position 5: expected ':' after the key");
  EXPECT_EQ(jsonRefusal("{\"a\":1 \"b\":2}"), "position 7: expected ',' or '}' after a member");
  EXPECT_EQ(jsonRefusal("{\"a\":[1 2]}"), "position 8: expected ',' or ']' after an element");
  EXPECT_EQ(jsonRefusal("{\"a\":01}"), "position 6: expected ',' or '}' after a member");
  EXPECT_EQ(jsonRefusal("{\"a\":1.}"), "position 7: expected a digit in a number");
  EXPECT_EQ(jsonRefusal("{\"a\":-}"), "position 6: expected a digit in a number");
  EXPECT_EQ(jsonRefusal("{\"a\":tru}"), "position 5: expected a JSON value");
  EXPECT_EQ(jsonRefusal("{\"a\":'x'}"), "position 5: expected a JSON value");
  EXPECT_EQ(jsonRefusal("{} x"), "position 3: unexpected text after the JSON object");
  EXPECT_EQ(jsonRefusal("{}{}"), "position 2: unexpected text after the JSON object");
  EXPECT_EQ(jsonRefusal("{\"a\":1"), "position 6: expected ',' or '}' after a member");
  EXPECT_EQ(jsonRefusal("{\"a\":\"x}"), "position 5: a string is not closed");
  EXPECT_EQ(jsonRefusal("{\"a\":\"x\ny\"}"),
            "position 7: a control character in a string must be escaped");
  EXPECT_EQ(jsonRefusal("{\"a\":\"\\x\"}"), "position 6: invalid escape in a string");
  EXPECT_EQ(jsonRefusal("{\"a\":\"\\u12G4\"}"),
            "position 6: \\u must be followed by four hex digits");
  EXPECT_EQ(jsonRefusal("{\"a\":\"x\\ud800\"}"),
            "position 7: a \\u escape of a high surrogate must be followed by a low one");
  EXPECT_EQ(jsonRefusal("{\"a\":\"\\udc00\"}"),
            "position 6: a \\u escape of a low surrogate must follow one of a high surrogate");
  EXPECT_EQ(jsonRefusal("{\"a\":\"\xC3\"}"), "position 6: a string is not valid UTF-8");
  EXPECT_EQ(jsonRefusal("{\"\xFF\":1}"), "position 2: a string is not valid UTF-8");
  EXPECT_EQ(jsonRefusal("\xEF\xBB\xBF{}"),
            "position 0: the top level of a JSON template must be an object");
}

TEST(JsonTemplate, NestingIsAtMost32) {
  auto nested = [](int levels) {
    // The object is level 1; each '[' one more.
    return "{\"a\":" + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}";
  };
  EXPECT_TRUE(CompiledTemplate::compile(nested(32), TemplateFormat::kJson));
  EXPECT_EQ(jsonRefusal(nested(33)),
            "position 36: JSON nesting deeper than 32 levels of objects and arrays");
  EXPECT_EQ(jsonRefusal(nested(1000)),
            "position 36: JSON nesting deeper than 32 levels of objects and arrays");
  std::string objects;
  for (int i = 0; i < 33; ++i) objects += "{\"a\":";
  EXPECT_EQ(jsonRefusal(objects + "1" + std::string(33, '}')),
            "position 160: JSON nesting deeper than 32 levels of objects and arrays");
}

TEST(JsonTemplate, RefusesMalformedExpressionsWithThePosition) {
  EXPECT_EQ(jsonRefusal("{\"a\":\"$5 off\"}"),
            "position 7: '$5 off' starts like an expression but is not one (expected '(' after "
            "'$')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"#1\"}"),
            "position 7: '#1' starts like an expression but is not one (expected '(' after '#')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"...\"}"),
            "position 7: '...' starts like an expression but is not one (expected '(' after "
            "'.')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"%\"}"),
            "position 7: '%' starts like an expression but is not one (expected '(' after '%')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"$(b) \"}"),
            "position 10: nothing may follow a complete expression, not even whitespace (in the "
            "expression '$(b) ')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"$(b)x\"}"),
            "position 10: nothing may follow a complete expression, not even whitespace (in the "
            "expression '$(b)x')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"$(a) + $(b)\"}"),
            "position 10: a concatenation must be written in braces: {e1 + e2} (in the "
            "expression '$(a) + $(b)')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"{{$(a)}}\"}"),
            "position 7: braces do not nest (in the expression '{{$(a)}}')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"{$(a) + {'x'}}\"}"),
            "position 14: braces do not nest (in the expression '{$(a) + {'x'}}')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"{$(a) + #(b)}\"}"),
            "position 14: #(p) cannot be part of a concatenation (in the expression '{$(a) + "
            "#(b)}')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"{#(b)}\"}"),
            "position 7: #(p) cannot be part of a concatenation (in the expression '{#(b)}')");
  EXPECT_EQ(jsonRefusal("{\"a\":\"{$(a)} \"}"),
            "position 12: nothing may follow a complete expression, not even whitespace (in the "
            "expression '{$(a)} ')");
  // The position is exact through escapes: \u0024 is '$'.
  EXPECT_EQ(jsonRefusal("{\"a\":\"\\u0024(b) \"}"),
            "position 15: nothing may follow a complete expression, not even whitespace (in the "
            "expression '$(b) ')");
}

TEST(JsonTemplate, RefusesBadLengthsAndNames) {
  auto rule = [](std::string_view expression) {
    return jsonRefusal("{\"a\":\"" + std::string(expression) + "\"}");
  };
  // Positions: the expression starts at 6.
  EXPECT_EQ(rule("$(b, -1)"),
            "position 11: expected a length: a decimal integer from 0 to 2147483647 (in the "
            "expression '$(b, -1)')");
  EXPECT_EQ(rule("$(b, 2147483648)"),
            "position 11: a length is at most 2147483647 (in the expression '$(b, 2147483648)')");
  EXPECT_EQ(rule("$(b, 99999999999999999999999)"),
            "position 11: a length is at most 2147483647 (in the expression '$(b, "
            "99999999999999999999999)')");
  EXPECT_EQ(rule("$(b, x)"),
            "position 11: expected a length: a decimal integer from 0 to 2147483647 (in the "
            "expression '$(b, x)')");
  EXPECT_EQ(rule("$(b,)"),
            "position 10: expected a length: a decimal integer from 0 to 2147483647 (in the "
            "expression '$(b,)')");
  EXPECT_EQ(rule("$(b, 0x10)"),
            "position 12: expected ')' after the length (in the expression '$(b, 0x10)')");
  EXPECT_EQ(rule("$(b, + 1)"),
            "position 11: expected a length: a decimal integer from 0 to 2147483647 (in the "
            "expression '$(b, + 1)')");
  EXPECT_EQ(rule("$(b, 1 2)"),
            "position 13: expected ')' after the length (in the expression '$(b, 1 2)')");
  EXPECT_EQ(rule(".(b)"),
            "position 9: expected ',': .(p, n) needs a length n (in the expression '.(b)')");
  EXPECT_EQ(rule("%(b, 2)"), "position 9: %(p) takes no length (in the expression '%(b, 2)')");
  EXPECT_EQ(rule("#(b, 2)"), "position 9: #(p) takes no length (in the expression '#(b, 2)')");
  EXPECT_EQ(rule("$(b"),
            "position 9: expected ',' or ')' after the name (in the expression '$(b')");
  EXPECT_EQ(rule("%(b c)"),
            "position 10: expected ')' after the name (in the expression '%(b c)')");
  EXPECT_EQ(rule("$()"),
            "position 8: expected a property name of [A-Za-z0-9_] (in the expression '$()')");
  EXPECT_EQ(rule("$(a-b)"),
            "position 9: expected ',' or ')' after the name (in the expression '$(a-b)')");
  EXPECT_EQ(rule("$ (b)"),
            "position 7: '$ (b)' starts like an expression but is not one (expected '(' after "
            "'$')");
  EXPECT_EQ(rule("{}"),
            "position 7: expected a term: $(p), $(p, n), .(p, n), %(p), 'text' or \"text\" (in the "
            "expression '{}')");
  EXPECT_EQ(rule("{$(a) +}"),
            "position 13: expected a term: $(p), $(p, n), .(p, n), %(p), 'text' or \"text\" (in "
            "the expression '{$(a) +}')");
  EXPECT_EQ(rule("{$(a) $(b)}"),
            "position 12: expected '+' or '}' after a term (in the expression '{$(a) $(b)}')");
  EXPECT_EQ(rule("{$(a)"),
            "position 11: '{' is not closed: expected '+' or '}' (in the expression '{$(a)')");
  EXPECT_EQ(rule("{'abc}"),
            "position 7: a literal is not closed (a quote inside one is written twice) (in the "
            "expression '{'abc}')");
  EXPECT_EQ(rule("{$x}"), "position 8: expected '(' after '$' (in the expression '{$x}')");
  EXPECT_EQ(rule("{x}"),
            "position 7: expected a term: $(p), $(p, n), .(p, n), %(p), 'text' or \"text\" (in the "
            "expression '{x}')");
  std::string name120(120, 'p'), name121(121, 'p');
  EXPECT_TRUE(CompiledTemplate::compile("{\"a\":\"$(" + name120 + ")\"}", TemplateFormat::kJson));
  EXPECT_EQ(rule("$(" + name121 + ")"),
            "position 8: a property name is at most 120 characters (in the expression '$(" +
                std::string(38, 'p') + "...')");
  EXPECT_TRUE(CompiledTemplate::compile("{\"a\":\"$(b,2147483647)\"}", TemplateFormat::kJson));
  EXPECT_TRUE(CompiledTemplate::compile("{\"a\":\"$(b,+0)\"}", TemplateFormat::kJson));
}

// ---- XML documents ------------------------------------------------------------------------------

TEST(XmlTemplate, ConstantBodyRendersByteForByte) {
  std::string body =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- toast -->\n"
      "<toast launch='a&amp;b'><visual><binding template=\"ToastGeneric\">"
      "<text id=\"1\">Hello $(name)</text><text>\n$(a)</text><text> &#36;5</text>"
      "<![CDATA[<not markup>]]><?pi data?><empty/></binding></visual></toast>\n<!-- end -->";
  CompiledTemplate t = compiled(body, TemplateFormat::kXml);
  EXPECT_TRUE(t.isConstant());
  EXPECT_EQ(render(t, props({{"name", "Ann"}, {"a", "x"}})), body);
}

TEST(XmlTemplate, ExpressionsInTextAndAttributes) {
  Properties p = props({{"title", "Tom & Jerry"}, {"img", "a b.png"}, {"n", "5"}});
  CompiledTemplate t = compiled(
      "<toast><visual><binding template=\"ToastGeneric\"><text id=\"1\">$(title)</text>"
      "<text>{'New: ' + .(title, 6)}</text><image src=\"{'http://x/' + %(img)}\" "
      "alt='$(title)'/><badge value=\"#(n)\"/></binding></visual></toast>",
      TemplateFormat::kXml);
  EXPECT_FALSE(t.isConstant());
  EXPECT_EQ(render(t, p),
            "<toast><visual><binding template=\"ToastGeneric\"><text id=\"1\">Tom &amp; "
            "Jerry</text><text>New: Tom...</text><image src=\"http://x/a%20b.png\" "
            "alt='Tom &amp; Jerry'/><badge value=\"5\"/></binding></visual></toast>");
}

TEST(XmlTemplate, TextIsAnExpressionOnlyWhenItIsTheWholeContentOfALeaf) {
  Properties p = props({{"x", "X"}});
  EXPECT_EQ(xml("<a>$(x)</a>", p), "<a>X</a>");
  EXPECT_EQ(xml("<a>\n$(x)</a>", p), "<a>\n$(x)</a>");
  EXPECT_EQ(xml("<a>Hi $(x)</a>", p), "<a>Hi $(x)</a>");
  // Text beside child elements, comments or processing instructions is plain, even "$5".
  EXPECT_EQ(xml("<a>$(x)<b/></a>", p), "<a>$(x)<b/></a>");
  EXPECT_EQ(xml("<a><b/>$(x)</a>", p), "<a><b/>$(x)</a>");
  EXPECT_EQ(xml("<a>$5<b>$(x)</b>$(x)</a>", p), "<a>$5<b>X</b>$(x)</a>");
  EXPECT_EQ(xml("<a>$(x)<!--c--></a>", p), "<a>$(x)<!--c--></a>");
  EXPECT_EQ(xml("<a><?p?>$(x)</a>", p), "<a><?p?>$(x)</a>");
  EXPECT_EQ(xml("<a>$(x)<![CDATA[y]]></a>", p), "<a>$(x)<![CDATA[y]]></a>");
  // Detection is on the decoded text.
  EXPECT_EQ(xml("<a>&#36;(x)</a>", p), "<a>X</a>");
  EXPECT_EQ(xml("<a b=\"&#x24;(x)\"/>", p), "<a b=\"X\"/>");
  EXPECT_EQ(xml("<a>&amp;$(x)</a>", p), "<a>&amp;$(x)</a>");
  // A literal's whitespace in an attribute is normalized as an XML parser would.
  EXPECT_EQ(xml("<a b=\"{'1\t2\r\n3' + $(x)}\"/>", p), "<a b=\"1 2 3X\"/>");
  EXPECT_EQ(xml("<a b=\"{'1&#9;2' + $(x)}\"/>", p), "<a b=\"1&#9;2X\"/>");
  EXPECT_EQ(xml("<a>{'1\r\n2' + $(x)}</a>", p), "<a>1\n2X</a>");
}

TEST(XmlTemplate, CdataHoldingAnExpressionRendersAsEscapedText) {
  Properties p = props({{"x", "<b>&]]>"}});
  EXPECT_EQ(xml("<a><![CDATA[$(x)]]></a>", p), "<a>&lt;b&gt;&amp;]]&gt;</a>");
  EXPECT_EQ(xml("<a><![CDATA[{'<' + $(x, 1)}]]></a>", p), "<a>&lt;&lt;</a>");
  EXPECT_EQ(xml("<a><![CDATA[ $(x)]]></a>", p), "<a><![CDATA[ $(x)]]></a>");
  EXPECT_EQ(xmlRefusal("<a><![CDATA[$(x) ]]></a>"),
            "position 16: nothing may follow a complete expression, not even whitespace (in the "
            "expression '$(x) ')");
}

TEST(XmlTemplate, RefusesMalformedExpressions) {
  EXPECT_EQ(xmlRefusal("<text>$(a)\n</text>"),
            "position 10: nothing may follow a complete expression, not even whitespace (in the "
            "expression '$(a) ')");
  EXPECT_EQ(xmlRefusal("<a>$5 off</a>"),
            "position 4: '$5 off' starts like an expression but is not one (expected '(' after "
            "'$')");
  EXPECT_EQ(xmlRefusal("<a b='#1'/>"),
            "position 7: '#1' starts like an expression but is not one (expected '(' after '#')");
  EXPECT_EQ(xmlRefusal("<a b=\"{$(a) + #(b)}\"/>"),
            "position 14: #(p) cannot be part of a concatenation (in the expression '{$(a) + "
            "#(b)}')");
  // Positions are exact through references: &#36; is '$'.
  EXPECT_EQ(xmlRefusal("<a>&#36;(x)&#32;</a>"),
            "position 11: nothing may follow a complete expression, not even whitespace (in the "
            "expression '$(x) ')");
  // An expression cannot be an attribute or element name: it is not an XML name.
  EXPECT_EQ(xmlRefusal("<a $(x)=\"1\"/>"), "position 3: expected an attribute name, '>' or '/>'");
  EXPECT_EQ(xmlRefusal("<$(x)/>"), "position 1: expected an element name after '<'");
}

TEST(XmlTemplate, NamespacePrefixesMustBeDeclared) {
  EXPECT_EQ(xml("<a xmlns:p=\"urn:p\" p:x=\"1\"><p:b p:c=\"$(v)\"/></a>", props({{"v", "V"}})),
            "<a xmlns:p=\"urn:p\" p:x=\"1\"><p:b p:c=\"V\"/></a>");
  EXPECT_EQ(xml("<p:a xmlns:p=\"urn:p\"/>"), "<p:a xmlns:p=\"urn:p\"/>");
  EXPECT_EQ(xml("<a xml:lang=\"en\" xmlns=\"urn:d\"/>"), "<a xml:lang=\"en\" xmlns=\"urn:d\"/>");
  EXPECT_EQ(xml("<a xmlns=\"$(x)\"/>"), "<a xmlns=\"$(x)\"/>");
  EXPECT_EQ(xmlRefusal("<a><p:b/></a>"), "position 4: the namespace prefix 'p' is not declared");
  EXPECT_EQ(xmlRefusal("<a q:x=\"1\"/>"), "position 3: the namespace prefix 'q' is not declared");
  EXPECT_EQ(xmlRefusal("<a><b xmlns:p=\"u\"/><p:c/></a>"),
            "position 20: the namespace prefix 'p' is not declared");
  EXPECT_EQ(xmlRefusal("<a xmlns:p=\"\"/>"),
            "position 12: a namespace prefix cannot be bound to an empty name");
  EXPECT_EQ(xmlRefusal("<xmlns:a/>"), "position 1: an element cannot have the prefix xmlns");
  EXPECT_EQ(xmlRefusal("<a:b:c xmlns:a=\"u\"/>"),
            "position 1: 'a:b:c' is not a valid prefix:local name");
  EXPECT_EQ(xmlRefusal("<:a/>"), "position 1: ':a' is not a valid prefix:local name");
}

TEST(XmlTemplate, RefusesMalformedXmlWithThePosition) {
  EXPECT_EQ(xmlRefusal(""), "position 0: an XML template needs a root element");
  EXPECT_EQ(xmlRefusal("<!-- only -->"), "position 13: an XML template needs a root element");
  EXPECT_EQ(xmlRefusal("<!DOCTYPE a><a/>"), "position 0: a DOCTYPE is not allowed in a template");
  EXPECT_EQ(xmlRefusal("<a><!DOCTYPE a></a>"),
            "position 3: a DOCTYPE is not allowed in a template");
  EXPECT_EQ(xmlRefusal("<a/><!DOCTYPE a>"), "position 4: a DOCTYPE is not allowed in a template");
  EXPECT_EQ(xmlRefusal("<a><b></a></b>"),
            "position 8: end tag 'a' does not match 'b' opened at position 3");
  EXPECT_EQ(xmlRefusal("<a><b>"), "position 3: element 'b' is not closed");
  EXPECT_EQ(xmlRefusal("<a/><b/>"),
            "position 4: only comments, processing instructions and whitespace may follow the "
            "root element");
  EXPECT_EQ(xmlRefusal("<a/>x"),
            "position 4: only comments, processing instructions and whitespace may follow the "
            "root element");
  EXPECT_EQ(xmlRefusal("x<a/>"), "position 0: text cannot stand outside the root element");
  EXPECT_EQ(xmlRefusal("<a b=\"1\" b=\"2\"/>"), "position 9: attribute 'b' appears twice");
  EXPECT_EQ(xmlRefusal("<a b=1/>"), "position 5: an attribute value must be quoted with \" or '");
  EXPECT_EQ(xmlRefusal("<a b/>"), "position 4: expected '=' after the attribute name");
  EXPECT_EQ(xmlRefusal("<a b=\"1\"c=\"2\"/>"),
            "position 8: expected whitespace, '>' or '/>' in a start tag");
  EXPECT_EQ(xmlRefusal("<a b=\"<\"/>"), "position 6: '<' is not allowed in an attribute value");
  EXPECT_EQ(xmlRefusal("<a b=\"1/>"), "position 5: an attribute value is not closed");
  EXPECT_EQ(xmlRefusal("<a>&nbsp;</a>"),
            "position 3: '&' must start &lt; &gt; &amp; &quot; &apos; or a character reference "
            "(a template has no DTD)");
  EXPECT_EQ(xmlRefusal("<a>a & b</a>"),
            "position 5: '&' must start &lt; &gt; &amp; &quot; &apos; or a character reference "
            "(a template has no DTD)");
  EXPECT_EQ(xmlRefusal("<a>&#0;</a>"),
            "position 3: a character reference must name a character XML allows");
  EXPECT_EQ(xmlRefusal("<a>&#x110000;</a>"),
            "position 3: a character reference must name a character XML allows");
  EXPECT_EQ(xmlRefusal("<a>&#;</a>"),
            "position 3: a character reference is &#digits; or &#xhex-digits;");
  EXPECT_EQ(xmlRefusal("<a>]]></a>"), "position 3: ']]>' is not allowed in text");
  EXPECT_EQ(xmlRefusal("<a>\x01</a>"), "position 3: a character XML does not allow");
  EXPECT_EQ(xmlRefusal("<a>\xC3</a>"), "position 3: the body is not valid UTF-8");
  EXPECT_EQ(xmlRefusal("<a><!-- a -- b --></a>"),
            "position 10: '--' is not allowed inside a comment");
  EXPECT_EQ(xmlRefusal("<a><!-- a </a>"), "position 3: a comment is not closed with '-->'");
  EXPECT_EQ(xmlRefusal("<a><![CDATA[x</a>"),
            "position 3: a CDATA section is not closed with ']]>'");
  EXPECT_EQ(xmlRefusal("<![CDATA[x]]>"), "position 0: expected the root element");
  EXPECT_EQ(xmlRefusal("<a><!ELEMENT a></a>"),
            "position 3: expected '<!--' or '<![CDATA[' after '<!'");
  EXPECT_EQ(xmlRefusal(" <?xml version=\"1.0\"?><a/>"),
            "position 1: the XML declaration '<?xml' may only stand at the very start");
  EXPECT_EQ(xmlRefusal("<a><?XML x?></a>"),
            "position 3: the XML declaration '<?xml' may only stand at the very start");
  EXPECT_EQ(xmlRefusal("<?xml encoding=\"utf-8\"?><a/>"),
            "position 6: the XML declaration must start with version=\"1.0\"");
  EXPECT_EQ(xmlRefusal("<?xml version=[1.0\"?><a/>"),
            "position 6: the XML declaration must start with version=\"1.0\"");
  EXPECT_EQ(xmlRefusal("<?xml version='2.0'?><a/>"),
            "position 6: the XML declaration must start with version=\"1.0\"");
  EXPECT_EQ(xmlRefusal("<?xmlversion='1.0'?><a/>"),
            "position 12: expected whitespace or '?>' after the target");
  EXPECT_EQ(xmlRefusal("<?xml version='1.0' encoding='latin1'?><a/>"),
            "position 20: a template is UTF-8: the XML declaration may only say "
            "encoding=\"utf-8\"");
  EXPECT_EQ(xmlRefusal("<?xml version='1.0' standalone='maybe'?><a/>"),
            "position 20: standalone in the XML declaration is \"yes\" or \"no\"");
  EXPECT_EQ(xmlRefusal("<?xml version='1.0' foo='1'?><a/>"),
            "position 20: expected '?>' to end the XML declaration");
  EXPECT_EQ(xmlRefusal("<?xml version='1.0'encoding='utf-8'?><a/>"),
            "position 19: expected '?>' to end the XML declaration");
  EXPECT_EQ(xmlRefusal("<a><?p:q x?></a>"),
            "position 5: a processing instruction's target cannot contain ':'");
  EXPECT_TRUE(CompiledTemplate::compile(
      "<?xml version = '1.1'  encoding=\"UTF-8\" standalone='yes' ?><a/>", TemplateFormat::kXml));
  EXPECT_TRUE(CompiledTemplate::compile("<?xml version=\"1.0\"?><?xml-stylesheet href='s'?><a/>",
                                        TemplateFormat::kXml));
  EXPECT_EQ(xmlRefusal("<a><? x?></a>"), "position 5: expected a target name after '<?'");
  EXPECT_EQ(xmlRefusal("<a><?p"), "position 3: a processing instruction is not closed with '?>'");
  EXPECT_EQ(xmlRefusal("<a></>"), "position 5: expected an element name after '</'");
  EXPECT_EQ(xmlRefusal("<a></a x>"), "position 7: expected '>' after '</name'");
  EXPECT_EQ(xmlRefusal("<a"), "position 0: the start tag of 'a' is not closed");
  EXPECT_TRUE(CompiledTemplate::compile("<a></a >", TemplateFormat::kXml));
  EXPECT_TRUE(CompiledTemplate::compile("<a\n b = '1' ></a>", TemplateFormat::kXml));
  EXPECT_TRUE(CompiledTemplate::compile("<\xC3\xA9l\xC3\xA9ment/>", TemplateFormat::kXml));
}

TEST(XmlTemplate, NestingIsAtMost64) {
  auto nested = [](int levels) {
    std::string open, close;
    for (int i = 0; i < levels; ++i) {
      open += "<e>";
      close += "</e>";
    }
    return open + close;
  };
  EXPECT_TRUE(CompiledTemplate::compile(nested(64), TemplateFormat::kXml));
  EXPECT_EQ(xmlRefusal(nested(65)), "position 192: XML elements nest deeper than 64 levels");
  EXPECT_EQ(xmlRefusal(std::string(100000, '<')), "position 1: expected an element name after '<'");
}

// ---- Raw (WNS raw) ------------------------------------------------------------------------------

TEST(RawTemplate, IsXmlWhenItStartsWithATagElseAJsonObject) {
  Properties p = props({{"x", "<&>"}});
  CompiledTemplate t = compiled(" \n<a>$(x)</a>", TemplateFormat::kRaw);
  EXPECT_EQ(render(t, p), " \n<a>&lt;&amp;&gt;</a>");
  EXPECT_EQ(t, compiled(" \n<a>$(x)</a>", TemplateFormat::kXml));
  CompiledTemplate j = compiled("\t{\"a\":\"$(x)\"}", TemplateFormat::kRaw);
  EXPECT_EQ(render(j, p), "\t{\"a\":\"<&>\"}");
  EXPECT_EQ(j, compiled("\t{\"a\":\"$(x)\"}", TemplateFormat::kJson));
  EXPECT_EQ(refusal("hello", TemplateFormat::kRaw),
            "position 0: the top level of a JSON template must be an object");
  EXPECT_EQ(refusal("[\"$(x)\"]", TemplateFormat::kRaw),
            "position 0: the top level of a JSON template must be an object");
  EXPECT_EQ(refusal("<a>", TemplateFormat::kRaw), "position 0: element 'a' is not closed");
  EXPECT_EQ(refusal("", TemplateFormat::kRaw),
            "position 0: the body is empty: expected a JSON object");
}

// ---- compileValue -------------------------------------------------------------------------------

TEST(CompileValue, PlainUnlessItStartsWithASigil) {
  Properties p = props({{"a", "<\"&'>"}, {"when", "2030-01-01T00:00:00Z"}});
  EXPECT_EQ(value("Hello $(a)", p), "Hello $(a)");
  EXPECT_EQ(value(" $(a)", p), " $(a)");
  EXPECT_EQ(value("'$(a)'", p), "'$(a)'");
  EXPECT_EQ(value("", p), "");
  EXPECT_EQ(value("$(a)", p), "<\"&'>");
  EXPECT_EQ(value("$(when)", p), "2030-01-01T00:00:00Z");
  EXPECT_EQ(value("{'x' + $(a)}", p), "x<\"&'>");
  EXPECT_TRUE(CompiledTemplate::compileValue("plain")->isConstant());
  EXPECT_TRUE(CompiledTemplate::compileValue("")->isConstant());
  EXPECT_FALSE(CompiledTemplate::compileValue("$(a)")->isConstant());
  EXPECT_EQ(valueRefusal("$5"),
            "position 1: '$5' starts like an expression but is not one (expected '(' after '$')");
  EXPECT_EQ(valueRefusal("$(a) "),
            "position 4: nothing may follow a complete expression, not even whitespace (in the "
            "expression '$(a) ')");
  EXPECT_EQ(valueRefusal("{$(a) + #(b)}"),
            "position 8: #(p) cannot be part of a concatenation (in the expression '{$(a) + "
            "#(b)}')");
  EXPECT_EQ(valueRefusal("$\xFF\n"),
            "position 1: '$? ' starts like an expression but is not one (expected '(' after '$')");
  EXPECT_EQ(valueRefusal("$(a) + $(b)"),
            "position 4: a concatenation must be written in braces: {e1 + e2} (in the expression "
            "'$(a) + $(b)')");
}

// ---- Rendering limits ---------------------------------------------------------------------------

TEST(Render, StopsAtMaxBytes) {
  Properties p = props({{"x", "0123456789"}, {"q", "\"\"\""}});
  CompiledTemplate t = compiled("{\"a\":\"$(x)\"}", TemplateFormat::kJson);
  std::string full = "{\"a\":\"0123456789\"}";
  ASSERT_EQ(t.render(p, 1000), full);
  EXPECT_EQ(t.render(p, full.size()), full);
  EXPECT_EQ(t.render(p, full.size() - 1), std::nullopt);
  EXPECT_EQ(t.render(p, 7), std::nullopt);
  EXPECT_EQ(t.render(p, 0), std::nullopt);
  // Escapes count: three quotes are six bytes.
  CompiledTemplate q = compiled("{\"a\":\"$(q)\"}", TemplateFormat::kJson);
  EXPECT_EQ(q.render(p, 14), "{\"a\":\"\\\"\\\"\\\"\"}");
  EXPECT_EQ(q.render(p, 13), std::nullopt);
  // A constant body longer than the limit.
  CompiledTemplate c = compiled("<a>hello</a>", TemplateFormat::kXml);
  EXPECT_EQ(c.render(p, 12), "<a>hello</a>");
  EXPECT_EQ(c.render(p, 11), std::nullopt);
  EXPECT_EQ(CompiledTemplate().render(p, 0), "");
}

TEST(Render, LargeValuesStopEarly) {
  Properties p = props({{"big", std::string(1 << 20, '&')}});
  CompiledTemplate t = compiled("<a>$(big)</a>", TemplateFormat::kXml);
  EXPECT_EQ(t.render(p, 4096), std::nullopt);
  auto full = t.render(p, 7 + (5u << 20));
  EXPECT_EQ(t.render(p, 6 + (5u << 20)), std::nullopt);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->size(), 7u + 5u * (1u << 20));
  std::string encoded;
  for (int i = 0; i < (1 << 20); ++i) encoded += "%26";
  CompiledTemplate percent = *CompiledTemplate::compileValue("%(big)");
  EXPECT_EQ(percent.render(p, encoded.size()), encoded);
  EXPECT_EQ(percent.render(p, encoded.size() - 1), std::nullopt);
}

TEST(Render, SameTemplateDifferentProperties) {
  CompiledTemplate t = compiled("{\"t\":\"{$(a) + '/' + $(b)}\"}", TemplateFormat::kJson);
  EXPECT_EQ(render(t, props({{"a", "1"}, {"b", "2"}})), "{\"t\":\"1/2\"}");
  EXPECT_EQ(render(t, props({{"A", "x"}})), "{\"t\":\"x/\"}");
  EXPECT_EQ(render(t, Properties()), "{\"t\":\"/\"}");
}

}  // namespace
}  // namespace pushhub::expr
