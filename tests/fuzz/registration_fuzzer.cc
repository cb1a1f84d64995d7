// libFuzzer target for Azure's registrations on the wire (gateway/rest_registration.cc) and the
// XML reader under them (base/xml.cc): the input is a request body, and also a $filter. Besides
// crashes, hangs and unbounded allocation, it aborts when:
// - a refusal is not kInvalidArgument, or its message is empty;
// - a registration that is accepted does not read back the same from the entry we answer with
//   (what a client PUTs after a GET must be what it got).

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/xml.h"
#include "gateway/rest_registration.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

template <typename T>
void checkRefusal(const pushhub::Result<T>& r) {
  if (!r) {
    check(r.error().code == pushhub::Error::Code::kInvalidArgument);
    check(!r.error().message.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  checkRefusal(pushhub::xml::parse(input));
  checkRefusal(pushhub::gateway::rest::parseRegistrationFilter(input));
  auto registration = pushhub::gateway::rest::registrationFromXml(input, "fuzz-1");
  checkRefusal(registration);
  if (registration) {
    registration->last_update_ms = 1700000000000;
    std::string answered = pushhub::gateway::rest::registrationEntryXml(
        *registration, "https://localhost/hub/registrations");
    auto back = pushhub::gateway::rest::registrationFromXml(answered, "fuzz-1");
    check(static_cast<bool>(back));
    back->last_update_ms = registration->last_update_ms;
    check(*back == *registration);
  }
  return 0;
}
