#include "gateway/notification.h"

#include "providers/apns/apns_provider.h"
#include "providers/fcm/fcm_provider.h"
#include "providers/wns/wns_provider.h"
#include "registry/installation_patch.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <charconv>
#include <random>
#include <set>

namespace pushhub::gateway {
namespace {

using google::protobuf::util::TimeUtil;

std::chrono::system_clock::time_point toTimePoint(const google::protobuf::Timestamp& ts) {
  return std::chrono::system_clock::time_point(
      std::chrono::milliseconds(TimeUtil::TimestampToMilliseconds(ts)));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<providers::Header> headersOf(const v1::NativePayload& native) {
  std::vector<providers::Header> headers;
  for (const auto& [name, value] : native.headers()) headers.push_back({name, value});
  return headers;
}

// A native APNs payload is checked with the provider's own rules, so a send is refused up front
// for exactly what would fail every device later; names outside apns-* are refused too, since
// a native APNs payload has no other headers to give.
Result<void> validateApnsPayload(const v1::NativePayload& native, const std::string& field) {
  for (const auto& [name, value] : native.headers()) {
    if (lower(name).rfind("apns-", 0) != 0) {
      return Error::invalidArgument(field + ".headers[" + name + "]: not an APNs header");
    }
  }
  auto parsed =
      providers::apns::ApnsProvider::parseHeaders(headersOf(native), native.body().size());
  if (!parsed) return Error::invalidArgument(field + ": " + parsed.error().message);
  return {};
}

// Checks a native payload with its provider's own rules (see validateApnsPayload).
Result<void> validateNativePayload(registry::Platform platform, const v1::NativePayload& native,
                                   const std::string& field) {
  switch (platform) {
    case registry::Platform::kApns:
      return validateApnsPayload(native, field);
    case registry::Platform::kFcm:
      if (native.headers_size() > 0) {
        return Error::invalidArgument(field +
                                      ".headers: FCM payloads take no headers; put "
                                      "options in the message (android, apns, webpush)");
      }
      if (auto ok = providers::fcm::FcmProvider::validatePayload(native.body()); !ok) {
        return Error::invalidArgument(field + ".body: " + ok.error().message);
      }
      return {};
    case registry::Platform::kWns:
      if (auto ok =
              providers::wns::WnsProvider::parseHeaders(headersOf(native), native.body().size());
          !ok) {
        return Error::invalidArgument(field + ": " + ok.error().message);
      }
      return {};
  }
  return {};
}

// A direct send names its handles: each valid for its platform, none twice, and a native
// payload for every platform among them (there are no templates without installations).
Result<void> validateDirectTargets(const v1::SendNotificationRequest& request) {
  const auto& targets = request.direct().targets();
  if (targets.empty() || targets.size() > static_cast<int>(kMaxDirectTargets)) {
    return Error::invalidArgument("direct.targets: 1 to " + std::to_string(kMaxDirectTargets) +
                                  " handles");
  }
  if (request.template_properties_size() > 0) {
    return Error::invalidArgument(
        "template_properties: a direct send has no installations, so no templates; give native "
        "payloads");
  }
  std::set<std::pair<int, std::string_view>> seen;
  for (int i = 0; i < targets.size(); ++i) {
    std::string field = "direct.targets[" + std::to_string(i) + "]";
    auto platform = fromProto(targets[i].platform(), field + ".platform");
    if (!platform) return platform.error();
    if (auto ok = registry::validatePushChannel(*platform, targets[i].push_handle()); !ok) {
      // The registry's rule, named by this request's field.
      std::string_view rule = ok.error().message;
      if (rule.rfind("pushChannel: ", 0) == 0) rule.remove_prefix(13);
      return Error::invalidArgument(field + ".push_handle: " + std::string(rule));
    }
    if (!seen.insert({targets[i].platform(), targets[i].push_handle()}).second) {
      return Error::invalidArgument(field + ": listed twice");
    }
    bool has_payload =
        std::any_of(request.native().begin(), request.native().end(),
                    [&](const auto& n) { return n.platform() == targets[i].platform(); });
    if (!has_payload) {
      return Error::invalidArgument(field + ": no native payload with platform " +
                                    v1::Platform_Name(targets[i].platform()).substr(9));
    }
  }
  return {};
}

Result<expr::Properties> propertiesOf(const v1::SendNotificationRequest& request) {
  return expr::Properties::make(
      {request.template_properties().begin(), request.template_properties().end()});
}

}  // namespace

Result<registry::Platform> fromProto(v1::Platform platform, std::string_view field) {
  switch (platform) {
    case v1::PLATFORM_APNS:
      return registry::Platform::kApns;
    case v1::PLATFORM_FCM:
      return registry::Platform::kFcm;
    case v1::PLATFORM_WNS:
      return registry::Platform::kWns;
    default:
      return Error::invalidArgument(std::string(field) + ": must be APNS, FCM or WNS");
  }
}

v1::Platform toProto(registry::Platform platform) {
  switch (platform) {
    case registry::Platform::kApns:
      return v1::PLATFORM_APNS;
    case registry::Platform::kFcm:
      return v1::PLATFORM_FCM;
    case registry::Platform::kWns:
      return v1::PLATFORM_WNS;
  }
  return v1::PLATFORM_UNSPECIFIED;
}

Result<void> validateSendRequest(const v1::SendNotificationRequest& request,
                                 std::chrono::system_clock::time_point now,
                                 std::chrono::seconds max_schedule_ahead) {
  switch (request.audience_case()) {
    case v1::SendNotificationRequest::kTag:
      if (auto ok = registry::validateTag(request.tag(), "tag"); !ok) return ok;
      break;
    case v1::SendNotificationRequest::kTagExpression:
      if (auto e = expr::TagExpression::parse(request.tag_expression()); !e) {
        return Error::invalidArgument("tag_expression: " + e.error().message);
      }
      break;
    case v1::SendNotificationRequest::kInstallationId:
      if (auto ok = registry::validateInstallationId(request.installation_id(), "installation_id");
          !ok) {
        return ok;
      }
      break;
    case v1::SendNotificationRequest::kBroadcast:
      if (!request.broadcast()) return Error::invalidArgument("broadcast: must be true when set");
      break;
    case v1::SendNotificationRequest::kDirect:
      if (auto ok = validateDirectTargets(request); !ok) return ok;
      break;
    default:
      return Error::invalidArgument(
          "audience: set one of tag, tag_expression, installation_id, broadcast or direct");
  }

  bool has_native = request.native_size() > 0;
  bool has_template = request.template_properties_size() > 0;
  if (has_native == has_template) {
    return Error::invalidArgument(
        "native, template_properties: give native payloads or template properties, not both");
  }
  bool seen[4] = {};
  for (int i = 0; i < request.native_size(); ++i) {
    const auto& native = request.native(i);
    std::string field = "native[" + std::to_string(i) + "]";
    auto platform = fromProto(native.platform(), field + ".platform");
    if (!platform) return platform.error();
    if (seen[static_cast<int>(*platform)]) {
      return Error::invalidArgument(field + ".platform: one payload per platform");
    }
    seen[static_cast<int>(*platform)] = true;
    if (native.body().empty()) return Error::invalidArgument(field + ".body: must not be empty");
    if (auto ok = validateNativePayload(*platform, native, field); !ok) return ok;
  }
  if (request.template_properties_size() > static_cast<int>(kMaxTemplateProperties)) {
    return Error::invalidArgument("template_properties: at most " +
                                  std::to_string(kMaxTemplateProperties) + " properties");
  }
  for (const auto& [name, value] : request.template_properties()) {
    std::string field = "template_properties[" + name + "]";
    if (name.empty() || name.size() > kMaxTemplatePropertyNameLength ||
        name.find_first_of("()$") != std::string::npos) {
      return Error::invalidArgument(field + ": names are 1 to 120 characters without ( ) $");
    }
    if (value.size() > kMaxTemplatePropertyValueBytes) {
      return Error::invalidArgument(field + ": values are at most 4096 bytes");
    }
  }
  // Names differing only by case, and values that are not UTF-8 (clipping counts characters).
  if (auto properties = propertiesOf(request); !properties) {
    return Error::invalidArgument("template_properties: " + properties.error().message);
  }
  if (request.has_expiry() && toTimePoint(request.expiry()) <= now) {
    return Error::invalidArgument("expiry: is in the past");
  }
  const std::string& key = request.idempotency_key();
  if (key.size() > kMaxIdempotencyKeyLength ||
      std::any_of(key.begin(), key.end(), [](char c) { return c < 0x21 || c > 0x7e; })) {
    return Error::invalidArgument(
        "idempotency_key: must be 1 to 128 printable ASCII characters (no spaces)");
  }
  if (request.has_scheduled_time()) {
    if (request.test()) return Error::invalidArgument("scheduled_time: a test send is sent now");
    auto at = toTimePoint(request.scheduled_time());
    if (at < now - kScheduleSlack) return Error::invalidArgument("scheduled_time: is in the past");
    if (at > now + max_schedule_ahead) {
      return Error::invalidArgument(
          "scheduled_time: at most " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::hours>(max_schedule_ahead).count()) +
          " hours ahead");
    }
    if (request.has_expiry() && toTimePoint(request.expiry()) <= at) {
      return Error::invalidArgument("expiry: is before scheduled_time");
    }
  }
  if (request.has_deadline()) {
    const auto& d = request.deadline();
    if (d.seconds() < 1 || d.seconds() > kMaxDeadline.count() ||
        (d.seconds() == kMaxDeadline.count() && d.nanos() != 0) || d.nanos() < 0) {
      return Error::invalidArgument("deadline: must be 1 second to 7 days");
    }
  }
  return {};
}

std::string newNotificationId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(a >> (i * 4)) & 15];
    id[16 + i] = kHex[(b >> (i * 4)) & 15];
  }
  return id;
}

void appendBucket(JobBuckets& buckets, uint32_t b) {
  if (!buckets.empty() && buckets.back().last == b) {
    ++buckets.back().last;
  } else {
    buckets.push_back({b, b + 1});
  }
}

std::string encodeJob(const JobBuckets& buckets, std::optional<registry::Platform> only) {
  std::string out;
  for (const auto& range : buckets) {
    if (!out.empty()) out += ',';
    out += std::to_string(range.first) + "-" + std::to_string(range.last);
  }
  if (only) (out += '/') += registry::toString(*only);
  return out;
}

Result<JobWork> decodeJob(std::string_view payload) {
  JobWork work;
  if (auto slash = payload.find('/'); slash != std::string_view::npos) {
    auto platform = registry::parsePlatform(payload.substr(slash + 1));
    if (!platform) return Error::internal("job: malformed payload");
    work.only = *platform;
    payload = payload.substr(0, slash);
  }
  JobBuckets& buckets = work.buckets;
  if (payload.empty() || payload.back() == ',') return Error::internal("job: malformed payload");
  while (!payload.empty()) {
    auto comma = payload.find(',');
    std::string_view run = payload.substr(0, comma);
    payload = comma == std::string_view::npos ? std::string_view() : payload.substr(comma + 1);
    BucketRange range;
    auto dash = run.find('-');
    if (dash == std::string_view::npos) return Error::internal("job: malformed payload");
    auto a = std::from_chars(run.data(), run.data() + dash, range.first);
    auto b = std::from_chars(run.data() + dash + 1, run.data() + run.size(), range.last);
    if (a.ec != std::errc() || b.ec != std::errc() || a.ptr != run.data() + dash ||
        b.ptr != run.data() + run.size() || range.first >= range.last) {
      return Error::internal("job: malformed payload");
    }
    buckets.push_back(range);
  }
  if (buckets.empty()) return Error::internal("job: malformed payload");
  return work;
}

std::string encodeProgress(const JobProgress& progress) {
  const auto& lanes = progress.lanes;
  bool uniform = std::all_of(lanes.begin(), lanes.end(), [&](const JobProgress::Lane& lane) {
    return lane.done == lanes[0].done && !lane.split_at;
  });
  if (uniform) return std::to_string(lanes[0].done);
  std::string out;
  for (const auto& lane : lanes) {
    if (!out.empty()) out += ',';
    out += std::to_string(lane.done);
    if (lane.split_at) (out += '@') += std::to_string(*lane.split_at);
  }
  return out;
}

Result<JobProgress> decodeProgress(std::string_view token) {
  auto number = [](std::string_view text, uint32_t& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && !text.empty();
  };
  auto bad = [&] {
    return Error::internal("job progress '" + std::string(token) + "' is malformed");
  };
  JobProgress progress;
  if (token.find(',') == std::string_view::npos) {
    uint32_t done = 0;
    if (!number(token, done)) return bad();
    for (auto& lane : progress.lanes) lane.done = done;
    return progress;
  }
  std::string_view rest = token;
  for (size_t p = 0; p < progress.lanes.size(); ++p) {
    auto comma = rest.find(',');
    if ((comma == std::string_view::npos) != (p + 1 == progress.lanes.size())) return bad();
    std::string_view entry = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    auto& lane = progress.lanes[p];
    auto at = entry.find('@');
    if (!number(entry.substr(0, at), lane.done)) return bad();
    if (at != std::string_view::npos) {
      uint32_t split_at = 0;
      if (!number(entry.substr(at + 1), split_at) || split_at < lane.done) return bad();
      lane.split_at = split_at;
    }
  }
  return progress;
}

std::shared_ptr<const expr::TagExpression> expressionOf(
    const v1::SendNotificationRequest& request) {
  std::string_view text;
  if (request.audience_case() == v1::SendNotificationRequest::kTag) text = request.tag();
  if (request.audience_case() == v1::SendNotificationRequest::kTagExpression) {
    text = request.tag_expression();
  }
  if (text.empty()) return nullptr;
  auto e = expr::TagExpression::parse(text);
  return e ? std::make_shared<const expr::TagExpression>(std::move(*e)) : nullptr;
}

std::vector<JobBuckets> planJobs(const v1::SendNotificationRequest& request, uint32_t buckets,
                                 uint32_t buckets_per_job,
                                 const std::optional<std::vector<uint32_t>>& candidates) {
  if (request.audience_case() == v1::SendNotificationRequest::kInstallationId) {
    uint32_t bucket = registry::Registry::bucketOf(request.installation_id(), buckets);
    return {{BucketRange{bucket, bucket + 1}}};
  }
  if (request.audience_case() == v1::SendNotificationRequest::kDirect) {
    buckets = directUnits(static_cast<size_t>(request.direct().targets_size()));
  }
  if (request.test()) buckets_per_job = buckets;
  std::vector<JobBuckets> jobs;
  if (!candidates) {
    for (uint32_t first = 0; first < buckets; first += buckets_per_job) {
      jobs.push_back({{first, std::min(buckets, first + buckets_per_job)}});
    }
    return jobs;
  }
  // Candidates in order, buckets_per_job to a job, consecutive ones joined into one run.
  uint32_t in_job = 0;
  for (uint32_t b : *candidates) {
    if (b >= buckets) continue;
    if (jobs.empty() || in_job == buckets_per_job) {
      jobs.emplace_back();
      in_job = 0;
    }
    appendBucket(jobs.back(), b);
    ++in_job;
  }
  return jobs;
}

void planSend(registry::Registry& registry, const registry::Hub& hub,
              std::shared_ptr<const v1::SendNotificationRequest> request, uint32_t buckets_per_job,
              std::function<void(Result<std::vector<std::string>>)> cb) {
  auto encode = [buckets = hub.buckets, buckets_per_job, request,
                 cb](const std::optional<std::vector<uint32_t>>& candidates) {
    std::vector<std::string> jobs;
    for (const auto& job : planJobs(*request, buckets, buckets_per_job, candidates)) {
      jobs.push_back(encodeJob(job));
    }
    cb(std::move(jobs));
  };
  auto expression = expressionOf(*request);
  if (!expression) return encode(std::nullopt);
  // The tag index names the buckets that may hold the audience; only those get jobs.
  registry.candidateBuckets(hub, *expression,
                            [encode, cb](Result<std::optional<std::vector<uint32_t>>> candidates) {
                              if (!candidates) return cb(candidates.error());
                              encode(*candidates);
                            });
}

registry::Selector selectorOf(const v1::SendNotificationRequest& request) {
  switch (request.audience_case()) {
    case v1::SendNotificationRequest::kTag:
    case v1::SendNotificationRequest::kTagExpression:
      return registry::Selector::matching(expressionOf(request),
                                          request.template_properties_size() > 0);
    case v1::SendNotificationRequest::kInstallationId:
      return registry::Selector::installation(request.installation_id());
    default:
      return registry::Selector::all();
  }
}

size_t payloadLimit(registry::Platform platform, const std::vector<providers::Header>& headers) {
  switch (platform) {
    case registry::Platform::kApns:
      for (const auto& h : headers) {
        if (h.name == "apns-push-type" && h.value == "voip") return 5120;
      }
      return 4096;
    case registry::Platform::kFcm:
      return 4096;
    case registry::Platform::kWns:
      return 5000;
  }
  return 4096;
}

PreparedNotification::Rendered PreparedNotification::render(
    registry::Platform platform, const registry::InstallationTemplate& tpl) const {
  constexpr std::string_view kFormat = "InvalidNotificationFormat";
  auto n = std::make_shared<providers::Notification>();
  for (const auto& [name, value] : tpl.headers) {
    auto compiled = expr::CompiledTemplate::compileValue(value);
    auto rendered =
        compiled ? compiled->render(properties, registry::kMaxHeaderValueBytes) : std::nullopt;
    if (!rendered) return {nullptr, kFormat};
    n->headers.push_back({lower(name), std::move(*rendered)});
  }
  auto compiled =
      expr::CompiledTemplate::compile(tpl.body, registry::templateFormat(platform, tpl.headers));
  if (!compiled) return {nullptr, kFormat};
  auto body = compiled->render(properties, payloadLimit(platform, n->headers));
  if (!body) return {nullptr, "InvalidNotificationSize"};
  n->body = std::move(*body);
  n->expiry = expiry;
  if (platform == registry::Platform::kApns && !tpl.expiry.empty()) {
    auto when = expr::CompiledTemplate::compileValue(tpl.expiry);
    auto text = when ? when->render(properties, registry::kMaxTemplateExpiryBytes) : std::nullopt;
    std::optional<std::chrono::system_clock::time_point> at;
    int64_t seconds = 0;
    if (text &&
        std::from_chars(text->data(), text->data() + text->size(), seconds).ptr ==
            text->data() + text->size() &&
        !text->empty()) {
      at = std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
    } else if (text) {
      if (auto parsed = registry::parseIsoTime(*text, "expiry")) {
        at = std::chrono::system_clock::time_point(std::chrono::seconds(*parsed));
      }
    }
    if (at && (!n->expiry || *at < *n->expiry)) n->expiry = at;
  }
  return {std::move(n), {}};
}

Result<std::shared_ptr<const PreparedNotification>> prepareNotification(std::string id,
                                                                        std::string_view stored) {
  v1::SendNotificationRequest request;
  if (!request.ParseFromArray(stored.data(), static_cast<int>(stored.size()))) {
    return Error::internal("notification " + id + ": stored body does not parse");
  }
  auto prepared = std::make_shared<PreparedNotification>();
  prepared->id = std::move(id);
  prepared->hub = request.hub();
  prepared->selector = selectorOf(request);
  prepared->test = request.test();
  for (const auto& target : request.direct().targets()) {
    auto platform = fromProto(target.platform(), "platform");
    if (platform) prepared->direct.push_back({*platform, target.push_handle()});
  }
  if (request.has_expiry()) prepared->expiry = toTimePoint(request.expiry());
  if (request.has_deliver_by()) prepared->deliver_by = toTimePoint(request.deliver_by());
  for (const auto& native : request.native()) {
    auto platform = fromProto(native.platform(), "platform");
    if (!platform) continue;
    auto n = std::make_shared<providers::Notification>();
    n->body = native.body();
    for (const auto& [name, value] : native.headers()) n->headers.push_back({lower(name), value});
    n->expiry = prepared->expiry;
    prepared->native[static_cast<size_t>(*platform)] = std::move(n);
  }
  if (request.template_properties_size() > 0) {
    prepared->uses_templates = true;
    auto properties = propertiesOf(request);
    if (!properties)
      return Error::internal("notification " + prepared->id + ": " + properties.error().message);
    prepared->properties = std::move(*properties);
  }
  return std::shared_ptr<const PreparedNotification>(std::move(prepared));
}

}  // namespace pushhub::gateway
