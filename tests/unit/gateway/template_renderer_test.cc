#include "gateway/template_renderer.h"

#include <gtest/gtest.h>

namespace pushhub::gateway {
namespace {

TEST(TemplateRendererTest, SubstitutesCaseInsensitivelyAndEscapesForJson) {
  auto props = normalizeProperties({{"Message", "say \"hi\"\n"}, {"badge", "3"}});
  EXPECT_EQ(renderTemplate(R"j({"aps":{"alert":"$(message)","x":"$( BADGE )"}})j", props,
                           BodyFormat::kJson),
            R"({"aps":{"alert":"say \"hi\"\n","x":"3"}})");
}

TEST(TemplateRendererTest, MissingPropertiesRenderEmptyAndTextIsKept) {
  EXPECT_EQ(renderTemplate("a$(nope)b $(", {}, BodyFormat::kJson), "ab $(");
}

TEST(TemplateRendererTest, EscapesForXmlButNotRaw) {
  auto props = normalizeProperties({{"t", "<b>&"}});
  EXPECT_EQ(renderTemplate("<text>$(t)</text>", props, BodyFormat::kXml),
            "<text>&lt;b&gt;&amp;</text>");
  EXPECT_EQ(renderTemplate("$(t)", props, BodyFormat::kRaw), "<b>&");
}

}  // namespace
}  // namespace pushhub::gateway
