#pragma once
// Azure's registrations on the wire (anh-wire.md 7): the Atom entries clients send and get back,
// the feed of a listing, the $filter of a lookup by channel, and ETags. A registration is kept
// as a registry::Installation with `registration` set (installation.h), so it is targeted by
// tags exactly like an installation. Protobuf-free so the fuzzer builds it alone
// (tests/fuzz/registration_fuzzer.cc). Pure functions: no I/O, any thread; every error is
// kInvalidArgument naming the element and the rule.
//
// Kinds served: Apple, Gcm, FcmV1 and Windows, each also as a template. Gcm is FCM's legacy name:
// stored as FCM and answered as Gcm. Adm, Baidu, Browser, Mpns and Xiaomi are refused by name.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "registry/installation.h"

namespace pushhub::gateway::rest {

// The registration an Atom entry (or a bare {Kind}RegistrationDescription) describes, with the
// store id of `registration_id` (the id travels in the URL; one in the body is ignored, as the
// SDK blanks it). Apple device tokens are upper-cased, as Azure stores them. Checked by
// registry::validateInstallation too, so an error names the element it came from.
Result<registry::Installation> registrationFromXml(std::string_view body,
                                                   std::string_view registration_id);

// The id a client knows: the store id without kRegistrationIdPrefix.
std::string_view registrationId(const registry::Installation& registration);

// One registration as an Atom entry (anh-wire.md 7.3). `collection_url`: the absolute URL of
// the hub's registrations, "https://host/hub/registrations".
std::string registrationEntryXml(const registry::Installation& registration,
                                 std::string_view collection_url);
// A listing as an Atom feed; `self_url` is the URL that was asked.
std::string registrationFeedXml(const std::vector<registry::Installation>& registrations,
                                std::string_view collection_url, std::string_view self_url);

// A lookup by channel: the forms listRegistrationsByChannel sends for APNs, FCM v1, GCM and WNS
// (anh-wire.md 7.7), after the query's own decoding. Anything else is refused, as Azure does.
struct ChannelFilter {
  registry::Platform platform = registry::Platform::kApns;
  std::string channel;
};
Result<ChannelFilter> parseRegistrationFilter(std::string_view filter);

}  // namespace pushhub::gateway::rest
