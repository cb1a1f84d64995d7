#include "base/xml.h"

#include <gtest/gtest.h>

namespace pushhub::xml {
namespace {

TEST(XmlTest, ReadsElementsAttributesTextCdataAndEntities) {
  auto doc = parse(
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
      "<!-- a comment --><a:root xmlns:a='urn:x' b = \"1 &amp; 2\">"
      "<t>x &lt;y&gt; &#65;&#x42;&quot;&apos;<![CDATA[<raw> & ]]]></t><e/><t>second</t>"
      "</a:root>\n");
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_EQ(doc->prefix, "a");
  EXPECT_EQ(doc->name, "root");
  ASSERT_EQ(doc->attributes.size(), 2u);
  EXPECT_EQ(doc->attributes[1], (std::pair<std::string, std::string>{"b", "1 & 2"}));
  ASSERT_EQ(doc->children.size(), 3u);
  EXPECT_EQ(doc->child("t")->text, "x <y> AB\"'<raw> & ]");
  EXPECT_TRUE(doc->child("e")->text.empty());
  EXPECT_EQ(doc->child("missing"), nullptr);
  EXPECT_EQ(doc->children[2].text, "second");
}

TEST(XmlTest, MultiByteCharacterReferencesBecomeUtf8) {
  auto doc = parse("<a>&#xE9;&#x20AC;&#x1F600;</a>");
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_EQ(doc->text, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST(XmlTest, RefusesWhatIsNotWellFormedSayingWhere) {
  for (const char* bad :
       {"", "text", "<a>", "<a></b>", "<a><b></a></b>", "<a b='1' b='2'/>", "<a b=1/>",
        "<a>&nbsp;</a>", "<a>&#0;</a>", "<a>&#x110000;</a>", "<a>&amp</a>", "<a/><b/>", "<a/>tail",
        "<a><![CDATA[x</a>", "<a><!-- x</a>", "<a>]]></a>", "<1a/>", "<a b='<'/>"}) {
    auto doc = parse(bad);
    ASSERT_FALSE(doc) << bad;
    EXPECT_EQ(doc.error().code, Error::Code::kInvalidArgument);
    EXPECT_NE(doc.error().message.find("at byte"), std::string::npos) << doc.error().message;
  }
}

TEST(XmlTest, RefusesDoctypesSoNoEntityIsEverExpanded) {
  auto doc = parse("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><a>&lol;</a>");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().message.find("DOCTYPE"), std::string::npos);
  EXPECT_FALSE(parse("<a><!DOCTYPE x></a>"));
}

TEST(XmlTest, DepthAndElementCountAreBounded) {
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "<a>";
  for (int i = 0; i < 40; ++i) deep += "</a>";
  auto refused = parse(deep);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("deeper than 32"), std::string::npos);
  EXPECT_TRUE(parse(deep, Limits{40, 100}));

  std::string wide = "<r>";
  for (int i = 0; i < 20; ++i) wide += "<e/>";
  wide += "</r>";
  EXPECT_TRUE(parse(wide, Limits{4, 21}));
  auto many = parse(wide, Limits{4, 20});
  ASSERT_FALSE(many);
  EXPECT_NE(many.error().message.find("more than 20 elements"), std::string::npos);
}

TEST(XmlTest, EscapeRoundTripsThroughParse) {
  std::string text = "a<b>&\"c'\td";
  EXPECT_EQ(escape(text), "a&lt;b&gt;&amp;\"c'\td");
  EXPECT_EQ(escapeAttribute(text), "a&lt;b&gt;&amp;&quot;c'\td");
  EXPECT_EQ(escape(std::string("x\x01y", 3)), "x?y");
  auto doc = parse("<v a=\"" + escapeAttribute(text) + "\">" + escape(text) + "</v>");
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_EQ(doc->text, text);
  EXPECT_EQ(doc->attributes[0].second, text);
}

}  // namespace
}  // namespace pushhub::xml
