#include "gateway/rest_api.h"

#include <gtest/gtest.h>

#include <optional>

namespace pushhub::gateway {
namespace {

namespace http = boost::beast::http;

// Requests the API refuses or routes before any hub is looked up need no worker: the service
// here has no hub and no worker, so a request that reaches it is answered 404 "no hub named".
class RestApiTest : public ::testing::Test {
 protected:
  RestResponse call(http::verb method, std::string target, std::string body = {}) {
    RestRequest request{method, target, 11};
    request.set(http::field::host, "127.0.0.1:4443");
    request.body() = std::move(body);
    request.prepare_payload();
    std::optional<RestResponse> answer;
    api_.handle(request, [&](RestResponse&& r) { answer = std::move(r); });
    EXPECT_TRUE(answer.has_value()) << "answered at once";
    return answer ? std::move(*answer) : RestResponse{};
  }
  // The Detail of Azure's error body.
  static std::string detail(const RestResponse& r) {
    const std::string& b = r.body();
    auto at = b.find("<Detail>");
    auto end = b.find("TrackingId:");
    if (b.rfind("<Error><Code>", 0) != 0 || at == std::string::npos || end == std::string::npos)
      return "not an Azure error body: " + b;
    return b.substr(at + 8, end - at - 8);
  }

  Config config_;
  HubCatalog catalog_;
  std::vector<std::unique_ptr<Worker>> workers_;
  HubService hubs_{config_, catalog_, workers_};
  RestApi api_{hubs_};
};

TEST_F(RestApiTest, AValidRequestReachesTheHubService) {
  auto r = call(http::verb::get, "/myhub/Installations/i-1/?api-version=2020-06");
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_EQ(detail(r), "hub: no hub named 'myhub'");
  EXPECT_NE(r["TrackingId"], "");
  EXPECT_EQ(r[http::field::content_type], "application/xml; charset=utf-8");
}

TEST_F(RestApiTest, PathsThatCouldNameAnotherResourceAreRefused) {
  for (const char* target :
       {"/myhub/installations/..", "/myhub/installations/%2e%2E", "/myhub/installations/a%2Fb",
        "/myhub/installations/a%5cb", "/myhub//installations/i", "myhub/installations/i"}) {
    auto r = call(http::verb::get, target);
    EXPECT_EQ(r.result_int(), 400) << target;
    EXPECT_EQ(detail(r).rfind("path: ", 0), 0u) << target << ": " << detail(r);
  }
  // A bad escape is kept as it is, not a crash: the id then fails the service's checks.
  EXPECT_EQ(call(http::verb::get, "/myhub/installations/a%zz%").result_int(), 404);
  for (const char* target : {"/myhub/registrationz/i", "/myhub/installations", "/myhub",
                             "/myhub/installations/i/extra"}) {
    EXPECT_EQ(call(http::verb::get, target).result_int(), 404) << target;
  }
}

TEST_F(RestApiTest, BadBodiesAreRefusedNamingTheField) {
  struct Case {
    std::string body, detail;
  };
  const Case cases[] = {
      {"{not json", "body: not JSON"},
      {"[]", "body: must be a JSON object"},
      {R"({"platform":"apns","pushChannel":"ab"})", "installationId: is required"},
      {R"({"installationId":"other","platform":"apns","pushChannel":"ab"})",
       "installationId: 'other' differs from the URL's 'i-1'"},
      {R"({"installationId":"i-1","platform":"mpns","pushChannel":"ab"})", "platform: \"mpns\""},
      {R"({"installationId":"i-1","platform":"apns"})", "pushChannel: is required"},
      {R"({"installationId":"i-1","platform":"browser","pushChannel":{"endpoint":"x"}})",
       "platform: \"browser\""},
      {R"({"installationId":"i-1","platform":"apns","pushChannel":"ab","tags":"x"})",
       "tags: must be an array"},
      {R"({"installationId":"i-1","platform":"apns","pushChannel":"ab","tags":["a",1]})",
       "tags[1]: must be a string"},
      {R"({"installationId":"i-1","platform":"apns","pushChannel":"ab","templates":{"t":{}}})",
       "templates.t.body: is required"},
      {R"({"installationId":"i-1","platform":"apns","pushChannel":"ab",)"
       R"("templates":{"t":{"body":"x","headers":{"h":1}}}})",
       "templates.t.headers.h: must be a string"},
  };
  for (const auto& c : cases) {
    auto r = call(http::verb::put, "/myhub/installations/i-1", c.body);
    EXPECT_EQ(r.result_int(), 400) << c.body;
    EXPECT_EQ(detail(r).rfind(c.detail, 0), 0u) << c.body << " -> " << detail(r);
  }
  auto patch = call(http::verb::patch, "/myhub/installations/i-1", R"([{"op":"add"}])");
  EXPECT_EQ(patch.result_int(), 400);
  EXPECT_EQ(detail(patch), "operations[0]: needs op and path");
  // A well-formed body goes on to the service.
  auto put = call(http::verb::put, "/myhub/installations/i-1",
                  R"({"installationId":"i-1","platform":"APNS","pushChannel":"ab","tags":["a"]})");
  EXPECT_EQ(put.result_int(), 404);
}

TEST_F(RestApiTest, BadRegistrationRequestsAreRefusedBeforeTheService) {
  struct Case {
    http::verb method;
    std::string target, body, detail;
  };
  const std::string fcm =
      "<entry xmlns=\"http://www.w3.org/2005/Atom\"><content type=\"application/xml\">"
      "<FcmV1RegistrationDescription><FcmV1RegistrationId>t</FcmV1RegistrationId>"
      "</FcmV1RegistrationDescription></content></entry>";
  const Case cases[] = {
      {http::verb::post, "/myhub/registrations", "<entry>", "XML: &lt;entry&gt; is not closed"},
      {http::verb::put, "/myhub/registrations/r-1", "", "entry: the body is empty"},
      {http::verb::put, "/myhub/registrations/r-1", "<!DOCTYPE x [<!ENTITY a 'b'>]><entry/>",
       "XML: a DOCTYPE"},
      {http::verb::put, "/myhub/registrations/r-1",
       "<MpnsRegistrationDescription><ChannelUri>https://x</ChannelUri>"
       "</MpnsRegistrationDescription>",
       "MpnsRegistrationDescription: pushhub serves APNs, FCM and WNS"},
      {http::verb::put, "/myhub/registrations/r%20x", fcm, "FcmV1RegistrationDescription."},
      {http::verb::get, "/myhub/registrations?$filter=Endpoint+eq+'x'", "", "$filter: "},
      {http::verb::get, "/myhub/registrations?$top=0", "", "$top: a positive integer"},
      {http::verb::get, "/myhub/registrations?$top=ten", "", "$top: a positive integer"},
  };
  for (const auto& c : cases) {
    auto r = call(c.method, c.target, c.body);
    EXPECT_EQ(r.result_int(), 400) << c.target << " " << c.body;
    EXPECT_EQ(detail(r).rfind(c.detail, 0), 0u) << c.target << " -> " << detail(r);
  }
  // Well-formed, they go on to the service (which has no hub here).
  EXPECT_EQ(call(http::verb::put, "/myhub/registrations/r-1", fcm).result_int(), 404);
  EXPECT_EQ(call(http::verb::post, "/myhub/registrations", fcm).result_int(), 404);
  EXPECT_EQ(call(http::verb::get, "/myhub/registrations?$top=500").result_int(), 404);
  EXPECT_EQ(call(http::verb::get, "/myhub/tags/a/registrations").result_int(), 404);
  EXPECT_EQ(call(http::verb::post, "/myhub/registrationIDs").result_int(), 404);
}

TEST_F(RestApiTest, OtherMethodsAre405WithAllowAndErrorsAreEscaped) {
  auto r = call(http::verb::post, "/myhub/installations/i-1");
  EXPECT_EQ(r.result_int(), 405);
  EXPECT_EQ(r[http::field::allow], "GET, PUT, PATCH, DELETE");
  auto escaped = azureError(400, "a <b> & 'c'\x01");
  EXPECT_NE(escaped.body().find("a &lt;b&gt; &amp; 'c'?"), std::string::npos) << escaped.body();
  auto registration = call(http::verb::patch, "/myhub/registrations/r-1");
  EXPECT_EQ(registration.result_int(), 405);
  EXPECT_EQ(registration[http::field::allow], "GET, PUT, DELETE");
  EXPECT_EQ(call(http::verb::get, "/myhub/registrationIDs").result_int(), 405);
  EXPECT_EQ(call(http::verb::post, "/myhub/tags/t/registrations").result_int(), 405);
  EXPECT_EQ(httpStatusOf(Error::invalidArgument("x")), 400u);
  EXPECT_EQ(httpStatusOf(Error{Error::Code::kUnauthenticated, "x"}), 401u);
  EXPECT_EQ(httpStatusOf(Error{Error::Code::kPermissionDenied, "x"}), 403u);
}

}  // namespace
}  // namespace pushhub::gateway
