#include "gateway/hub_service.h"

#include <google/protobuf/util/time_util.h>
#include <openssl/rand.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

#include "base/sas.h"
#include "gateway/notification.h"
#include "providers/wns/wns_provider.h"
#include "registry/installation_patch.h"

namespace pushhub::gateway {
namespace {

using google::protobuf::util::TimeUtil;

Result<registry::Installation> fromProto(const v1::Installation& in) {
  registry::Installation out;
  out.id = in.installation_id();
  auto platform = gateway::fromProto(in.platform(), "platform");
  if (!platform) return platform.error();
  out.platform = *platform;
  out.push_channel = in.push_channel();
  out.tags.assign(in.tags().begin(), in.tags().end());
  out.user_id = in.user_id();
  for (const auto& [name, tpl] : in.templates()) {
    registry::InstallationTemplate t;
    t.body = tpl.body();
    t.headers.insert(tpl.headers().begin(), tpl.headers().end());
    t.tags.assign(tpl.tags().begin(), tpl.tags().end());
    t.expiry = tpl.expiry();
    out.templates.emplace(name, std::move(t));
  }
  if (in.has_expiration_time()) {
    out.expiration_unix = TimeUtil::TimestampToSeconds(in.expiration_time());
  }
  if (in.has_registration()) {
    out.id = std::string(registry::kRegistrationIdPrefix) + out.id;
    out.registration =
        registry::RegistrationInfo{in.registration().gcm(), in.registration().push_variables()};
  }
  return out;
}

void toProto(const registry::Installation& in, v1::Installation& out) {
  out.set_installation_id(in.id);
  if (in.registration) {
    out.set_installation_id(in.id.substr(registry::kRegistrationIdPrefix.size()));
    out.mutable_registration()->set_gcm(in.registration->gcm);
    out.mutable_registration()->set_push_variables(in.registration->push_variables);
  }
  out.set_platform(gateway::toProto(in.platform));
  out.set_push_channel(in.push_channel);
  for (const auto& tag : in.tags) out.add_tags(tag);
  out.set_user_id(in.user_id);
  for (const auto& [name, tpl] : in.templates) {
    auto& t = (*out.mutable_templates())[name];
    t.set_body(tpl.body);
    t.mutable_headers()->insert(tpl.headers.begin(), tpl.headers.end());
    for (const auto& tag : tpl.tags) t.add_tags(tag);
    t.set_expiry(tpl.expiry);
  }
  if (in.expiration_unix > 0) {
    *out.mutable_expiration_time() = TimeUtil::SecondsToTimestamp(in.expiration_unix);
  }
  *out.mutable_last_update() = TimeUtil::MillisecondsToTimestamp(in.last_update_ms);
  out.set_push_channel_expired(in.push_channel_expired);
  out.set_expired(in.expiration_unix > 0 &&
                  in.expiration_unix <= TimeUtil::TimestampToSeconds(TimeUtil::GetCurrentTime()));
}

registry::Hub hubOf(const HubSettings& hub) { return registry::Hub{hub.name, hub.buckets}; }

// Everything the registry checks, plus what only the hub knows: a WNS channel URI comes from a
// device, so its host must be one the hub allows before pushhub ever connects to it.
Result<void> validateForHub(const HubSettings& hub, const registry::Installation& installation) {
  if (auto ok = registry::validateInstallation(installation); !ok) return ok;
  if (installation.platform == registry::Platform::kWns) {
    static const providers::wns::WnsConfig kDefaults;
    const auto& allowed = hub.wns ? hub.wns->allowed_hosts : kDefaults.allowed_hosts;
    auto channel = providers::wns::WnsProvider::parseChannelUri(installation.push_channel, allowed);
    if (!channel) return Error::invalidArgument("pushChannel: " + channel.error().message);
  }
  return {};
}

void toDeviceOutcome(const registry::DeliveryFailure& f,
                     v1::NotificationStatus::DeviceOutcome& out) {
  if (auto platform = registry::parsePlatform(f.platform)) {
    out.set_platform(gateway::toProto(*platform));
  }
  out.set_installation_id(f.installation_id);
  out.set_push_handle(f.handle);
  out.set_http_status(f.http_status);
  out.set_outcome(f.outcome);
  out.set_reason(f.reason);
}

constexpr auto kTestSendWait = std::chrono::seconds(30);
constexpr auto kTestSendPoll = std::chrono::milliseconds(20);

// Answers a test send once its record is final, or with what finished when `until` comes.
void answerTestSend(Worker& worker, HubService::Done done, v1::SendNotificationResponse* response,
                    std::string id, std::chrono::steady_clock::time_point until) {
  worker.queue().state(id, [&worker, done = std::move(done), response, id,
                            until](Result<std::optional<registry::NotificationState>> state) {
    bool final = state && *state && (*state)->state != "enqueued" && (*state)->state != "running";
    if (!final && std::chrono::steady_clock::now() < until) {
      auto timer = std::make_shared<boost::asio::steady_timer>(worker.ioc(), kTestSendPoll);
      timer->async_wait([&worker, done, response, id, until, timer](boost::system::error_code) {
        answerTestSend(worker, done, response, id, until);
      });
      return;
    }
    response->set_test_completed(final);
    if (state && *state) {
      for (const auto& f : (*state)->failures) toDeviceOutcome(f, *response->add_test_results());
    }
    done({});
  });
}

// What only the hub can check of a send: a direct send's WNS channel URIs come from devices, so
// their hosts must be ones the hub allows before pushhub ever connects to them.
Result<void> validateSendForHub(const HubSettings& hub,
                                const v1::SendNotificationRequest& request) {
  const auto& targets = request.direct().targets();
  for (int i = 0; i < targets.size(); ++i) {
    if (targets[i].platform() != v1::PLATFORM_WNS) continue;
    static const providers::wns::WnsConfig kDefaults;
    const auto& allowed = hub.wns ? hub.wns->allowed_hosts : kDefaults.allowed_hosts;
    auto channel = providers::wns::WnsProvider::parseChannelUri(targets[i].push_handle(), allowed);
    if (!channel) {
      return Error::invalidArgument("direct.targets[" + std::to_string(i) +
                                    "].push_handle: " + channel.error().message);
    }
  }
  return {};
}

Result<void> validateNotificationId(const std::string& id) {
  if (id.size() != 32 || id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Error::invalidArgument("notification_id: must be 32 lower-case hex characters");
  }
  return {};
}

std::string audienceOf(const v1::SendNotificationRequest& send) {
  using Send = v1::SendNotificationRequest;
  switch (send.audience_case()) {
    case Send::kTag:
      return "tag:" + send.tag();
    case Send::kInstallationId:
      return "installation:" + send.installation_id();
    case Send::kBroadcast:
      return "broadcast";
    case Send::kTagExpression:
      return "expression:" + send.tag_expression();
    case Send::kDirect:
      return "direct:" + std::to_string(send.direct().targets_size()) + " handles";
    case Send::AUDIENCE_NOT_SET:
      break;
  }
  return "";
}

void toStatusProto(const std::string& id, const registry::NotificationState& s,
                   v1::NotificationStatus& out) {
  using Status = v1::NotificationStatus;
  static const std::map<std::string, Status::State, std::less<>> kStates{
      {"enqueued", Status::STATE_ENQUEUED},
      {"running", Status::STATE_PROCESSING},
      {"completed", Status::STATE_COMPLETED},
      {"abandoned", Status::STATE_ABANDONED},
      {"notargetfound", Status::STATE_NO_TARGET_FOUND},
      {"scheduled", Status::STATE_SCHEDULED},
      {"cancelled", Status::STATE_CANCELLED}};
  out.set_notification_id(id);
  auto state = kStates.find(s.state);
  out.set_state(state != kStates.end() ? state->second : Status::STATE_UNSPECIFIED);
  *out.mutable_enqueue_time() = TimeUtil::MillisecondsToTimestamp(s.created_ms);
  if (s.start_ms > 0) *out.mutable_start_time() = TimeUtil::MillisecondsToTimestamp(s.start_ms);
  if (s.end_ms > 0) *out.mutable_end_time() = TimeUtil::MillisecondsToTimestamp(s.end_ms);
  out.set_jobs_total(s.jobs_total);
  out.set_jobs_done(s.jobs_done);
  out.set_abandoned_reason(s.abandoned);
  if (s.scheduled_ms > 0) {
    *out.mutable_scheduled_time() = TimeUtil::MillisecondsToTimestamp(s.scheduled_ms);
  }
  for (const auto& [key, count] : s.outcome_counts) {
    auto colon = key.find(':');
    auto platform = registry::parsePlatform(key.substr(0, colon));
    if (!platform || colon == std::string::npos) continue;
    auto* outcome = out.add_outcomes();
    outcome->set_platform(gateway::toProto(*platform));
    outcome->set_outcome(key.substr(colon + 1));
    outcome->set_count(count);
  }
  v1::SendNotificationRequest request;
  if (request.ParseFromString(s.body)) {
    if (request.template_properties_size() > 0) {
      for (auto p : {v1::PLATFORM_APNS, v1::PLATFORM_FCM, v1::PLATFORM_WNS}) {
        out.add_target_platforms(p);
      }
    }
    for (const auto& native : request.native()) out.add_target_platforms(native.platform());
    out.set_audience(audienceOf(request));
    out.set_test(request.test());
  }
  for (const auto& f : s.failures) toDeviceOutcome(f, *out.add_failures());
}

std::string storeId(const std::string& registration_id) {
  return std::string(registry::kRegistrationIdPrefix) + registration_id;
}

Error registrationNotFound(const std::string& id) {
  return Error::notFound("registration '" + id + "' not found");
}

// Fills one page of a listing (HubService::listRegistrations, listInstallations): walks the
// candidate buckets in order from the page token's, each bucket's records in id order, and stops
// at the first record past the page, whose predecessor becomes the next token
// ("<bucket>:<store id>"). `every_record`: installations and registrations alike (an export),
// else registrations only.
class RecordLister : public std::enable_shared_from_this<RecordLister> {
 public:
  using Query = HubService::RegistrationQuery;

  RecordLister(Worker& worker, registry::Hub hub, Query query, bool every_record,
               HubService::RegistrationPage* page, HubService::Done done)
      : worker_(worker),
        hub_(std::move(hub)),
        query_(std::move(query)),
        every_record_(every_record),
        page_(page),
        done_(std::move(done)) {}

  // "<bucket>:<store id>" -> where to resume; "" -> the start.
  static Result<std::pair<uint32_t, std::string>> parseToken(std::string_view field,
                                                             const std::string& token,
                                                             uint32_t buckets) {
    if (token.empty()) return std::pair<uint32_t, std::string>(0, "");
    uint32_t bucket = 0;
    size_t colon = token.find(':');
    auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), bucket);
    if (colon == std::string::npos || ec != std::errc() || end != token.data() + colon ||
        bucket >= buckets || colon + 1 == token.size()) {
      return Error::invalidArgument(std::string(field) + ": not a token this hub gave");
    }
    return std::pair<uint32_t, std::string>(bucket, token.substr(colon + 1));
  }

  void start(uint32_t first_bucket, std::string after) {
    after_ = std::move(after);
    first_bucket_ = first_bucket;
    if (query_.kind == Query::Kind::kAll) return walk(std::nullopt);
    tag_ = query_.kind == Query::Kind::kTag ? query_.tag
                                            : registry::channelTag(query_.platform, query_.channel);
    worker_.registry().bucketsOfTag(
        hub_, tag_,
        [self = shared_from_this()](Result<std::optional<std::vector<uint32_t>>> buckets) {
          if (!buckets) return self->done_(buckets.error());
          self->walk(std::move(*buckets));
        });
  }

 private:
  // `listed`: the buckets the index gives, nullopt for all of them.
  void walk(std::optional<std::vector<uint32_t>> listed) {
    if (listed) {
      buckets_ = std::move(*listed);
    } else {
      for (uint32_t b = 0; b < hub_.buckets; ++b) buckets_.push_back(b);
    }
    std::erase_if(buckets_, [this](uint32_t b) { return b < first_bucket_; });
    visit();
  }

  void visit() {
    if (next_ == buckets_.size()) return done_({});
    uint32_t bucket = buckets_[next_++];
    auto self = shared_from_this();
    if (query_.kind == Query::Kind::kAll) {
      return worker_.registry().idsWithPrefix(hub_, bucket,
                                              every_record_ ? "" : registry::kRegistrationIdPrefix,
                                              [self, bucket](Result<std::vector<std::string>> ids) {
                                                if (!ids) return self->done_(ids.error());
                                                self->fetch(bucket, std::move(*ids));
                                              });
    }
    worker_.registry().resolve(
        hub_, bucket, registry::Selector::tag(tag_),
        [self, bucket](Result<std::vector<registry::ResolvedTarget>> targets) {
          if (!targets) return self->done_(targets.error());
          std::vector<std::string> ids;
          for (auto& t : *targets) {
            // A channel tag is a hash: another channel may share it.
            bool wanted =
                self->query_.kind != Query::Kind::kChannel ||
                (t.platform == self->query_.platform && t.push_channel == self->query_.channel);
            if (wanted && t.installation_id.starts_with(registry::kRegistrationIdPrefix)) {
              ids.push_back(std::move(t.installation_id));
            }
          }
          std::sort(ids.begin(), ids.end());
          self->fetch(bucket, std::move(ids));
        });
  }

  void fetch(uint32_t bucket, std::vector<std::string> ids) {
    if (bucket == first_bucket_ && !after_.empty()) {
      std::erase_if(ids, [this](const std::string& id) { return id <= after_; });
    }
    if (ids.empty()) return visit();
    // Read no more than the page can take, and one to tell whether more follow: a bucket of a
    // few hundred records costs a page of one only what it shows.
    size_t room = query_.top - page_->registrations.size();
    bool cut = ids.size() > room + 1;
    if (cut) ids.resize(room + 1);
    auto found = std::make_shared<std::vector<std::optional<registry::Installation>>>(ids.size());
    auto left = std::make_shared<size_t>(ids.size());
    auto failed = std::make_shared<std::optional<Error>>();
    auto shared_ids = std::make_shared<std::vector<std::string>>(std::move(ids));
    for (size_t i = 0; i < shared_ids->size(); ++i) {
      worker_.registry().get(hub_, (*shared_ids)[i],
                             [self = shared_from_this(), bucket, shared_ids, found, left, failed,
                              cut, i](const Result<std::optional<registry::Installation>>& r) {
                               if (!r) {
                                 failed->emplace(r.error());
                               } else {
                                 (*found)[i] = *r;
                               }
                               if (--*left > 0) return;
                               if (*failed) return self->done_(**failed);
                               self->take(bucket, *shared_ids, std::move(*found), cut);
                             });
    }
  }

  // `found[i]` is `ids[i]`'s record, absent when it was deleted meanwhile; `cut`: the bucket has
  // more ids after these.
  void take(uint32_t bucket, const std::vector<std::string>& ids,
            std::vector<std::optional<registry::Installation>> found, bool cut) {
    for (size_t i = 0; i < found.size(); ++i) {
      auto& r = found[i];
      if (!r || (!every_record_ && !r->registration)) continue;
      if (page_->registrations.size() == query_.top) return finish(last_bucket_, last_id_);
      last_bucket_ = bucket;
      last_id_ = ids[i];
      page_->registrations.push_back(std::move(*r));
    }
    // Records deleted meanwhile left the page short: the next one resumes after what was read.
    if (cut) return finish(bucket, ids.back());
    visit();
  }

  // Ends the page with a token that resumes after `id` of `bucket`.
  void finish(uint32_t bucket, const std::string& id) {
    page_->continuation = std::to_string(bucket) + ":" + id;
    done_({});
  }

  Worker& worker_;
  registry::Hub hub_;
  Query query_;
  bool every_record_;
  HubService::RegistrationPage* page_;
  HubService::Done done_;
  std::string tag_;
  std::vector<uint32_t> buckets_;
  size_t next_ = 0;
  uint32_t first_bucket_ = 0;
  std::string after_;         // in first_bucket_, only ids after this one
  uint32_t last_bucket_ = 0;  // where the page's last record is
  std::string last_id_;
};

}  // namespace

int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::string> verifySignature(
    std::string_view authorization, std::string_view resource_path,
    const std::function<std::vector<std::string>(std::string_view key_name)>& secrets_of) {
  if (authorization.empty()) {
    return Error{Error::Code::kUnauthenticated,
                 "authorization: missing (a SharedAccessSignature sr=..&sig=..&se=..&skn=..)"};
  }
  auto verified =
      sas::verifyToken(authorization, secrets_of, std::chrono::system_clock::now(), resource_path);
  if (!verified) return verified.error();
  return verified->key_name;
}

HubService::HubService(const Config& config, const HubCatalog& catalog,
                       std::vector<std::unique_ptr<Worker>>& workers)
    : config_(config), catalog_(catalog), workers_(workers) {}

template <typename Work>
void HubService::onWorker(Work work) {
  // A call from a worker's own thread (the REST front end's connections live on the workers)
  // stays there: no hop to another core and back.
  for (auto& worker : workers_) {
    if (worker->ioc().get_executor().running_in_this_thread()) return work(*worker);
  }
  Worker& worker =
      *workers_[next_worker_.fetch_add(1, std::memory_order_relaxed) % workers_.size()];
  boost::asio::post(worker.ioc(), [&worker, work = std::move(work)]() mutable { work(worker); });
}

Result<HubPtr> HubService::authorize(std::string_view authorization, const std::string& hub_name,
                                     Right right) const {
  HubPtr runtime = catalog_.find(hub_name);
  if (!runtime) {
    if (hub_name.empty()) return Error::invalidArgument("hub: is required");
    return Error::notFound("hub: no hub named '" + hub_name + "'");
  }
  const HubSettings& hub = runtime->settings;
  // The token's sr must cover the hub: one signed for another hub's path is refused even when
  // both hubs have a key of that name and secret.
  auto verified = verifySignature(authorization, "/" + hub_name, [&hub](std::string_view name) {
    std::vector<std::string> secrets;
    if (const AccessKey* key = hub.findKey(name)) {
      secrets.push_back(key->secret);
      // A rotated key's old secret, during its grace period.
      if (!key->previous_secret.empty() && key->previous_valid_until > unixNow()) {
        secrets.push_back(key->previous_secret);
      }
    }
    return secrets;
  });
  if (!verified) return verified.error();
  const AccessKey* key = hub.findKey(*verified);
  if (!key->allows(right)) {
    static constexpr const char* kNames[] = {"", "Listen", "Send", "", "Manage"};
    return Error{Error::Code::kPermissionDenied,
                 "key '" + key->name + "' lacks the " + kNames[right] + " right"};
  }
  return runtime;
}

Result<HubPtr> HubService::authorizeRecord(std::string_view authorization, const std::string& hub,
                                           const std::string& id, std::string_view id_field,
                                           Right right) const {
  auto settings = authorize(authorization, hub, right);
  if (!settings) return settings;
  if (auto ok = registry::validateInstallationId(id, id_field); !ok) return ok.error();
  return settings;
}

void HubService::createOrUpdateInstallation(std::string_view authorization,
                                            const v1::CreateOrUpdateInstallationRequest& request,
                                            Done done) {
  auto hub = authorize(authorization, request.hub(), kListen);
  if (!hub) return done(hub.error());
  if (!request.has_installation()) return done(Error::invalidArgument("installation: is required"));
  auto installation = fromProto(request.installation());
  if (!installation) return done(installation.error());
  if (auto ok = validateForHub((*hub)->settings, *installation); !ok) return done(ok.error());
  onWorker([hub = hubOf((*hub)->settings), installation = std::move(*installation),
            done = std::move(done)](Worker& worker) {
    worker.registry().upsert(hub, installation, done);
  });
}

void HubService::batchCreateOrUpdateInstallations(
    std::string_view authorization, const v1::BatchCreateOrUpdateInstallationsRequest& request,
    v1::BatchCreateOrUpdateInstallationsResponse* response, Done done) {
  auto hub = authorize(authorization, request.hub(), kManage);
  if (!hub) return done(hub.error());
  int count = request.installations_size();
  if (count < 1 || count > kMaxBatchInstallations) {
    return done(Error::invalidArgument("installations: give 1 to " +
                                       std::to_string(kMaxBatchInstallations) + ", got " +
                                       std::to_string(count)));
  }
  auto installations = std::make_shared<std::vector<registry::Installation>>();
  installations->reserve(count);
  std::unordered_set<std::string> ids;
  for (int i = 0; i < count; ++i) {
    std::string field = "installations[" + std::to_string(i) + "]";
    auto installation = fromProto(request.installations(i));
    if (installation) {
      if (auto ok = validateForHub((*hub)->settings, *installation); !ok) installation = ok.error();
    }
    if (!installation) {
      return done(Error::invalidArgument(field + "." + installation.error().message));
    }
    if (!ids.insert(installation->id).second) {
      return done(Error::invalidArgument(field + ".installationId: '" + installation->id +
                                         "' given twice"));
    }
    installations->push_back(std::move(*installation));
  }
  onWorker([response, hub = hubOf((*hub)->settings), installations,
            done = std::move(done)](Worker& worker) {
    // All writes go out pipelined on the worker's connection; answer when the last returns.
    struct Progress {
      size_t left = 0;
      size_t stored = 0;
      std::optional<Error> error;
    };
    auto progress = std::make_shared<Progress>();
    progress->left = installations->size();
    for (const auto& installation : *installations) {
      worker.registry().upsert(
          hub, installation, [done, response, progress, installations](Result<void> ok) {
            if (ok) {
              ++progress->stored;
            } else if (!progress->error) {
              progress->error = ok.error();
            }
            if (--progress->left > 0) return;
            if (progress->error) {
              return done(
                  Error{progress->error->code, "stored " + std::to_string(progress->stored) +
                                                   " of " + std::to_string(installations->size()) +
                                                   ": " + progress->error->message});
            }
            response->set_stored(static_cast<int32_t>(progress->stored));
            done({});
          });
    }
  });
}

void HubService::getInstallation(std::string_view authorization,
                                 const v1::GetInstallationRequest& request,
                                 v1::Installation* response, Done done) {
  auto hub = authorizeRecord(authorization, request.hub(), request.installation_id(),
                             "installation_id", kListen);
  if (!hub) return done(hub.error());
  onWorker([response, hub = hubOf((*hub)->settings), id = request.installation_id(),
            done = std::move(done)](Worker& worker) {
    worker.registry().get(
        hub, id, [done, response, id](Result<std::optional<registry::Installation>> found) {
          if (!found) return done(found.error());
          if (!*found) return done(Error::notFound("installation '" + id + "' not found"));
          toProto(**found, *response);
          done({});
        });
  });
}

void HubService::patchInstallation(std::string_view authorization,
                                   const v1::PatchInstallationRequest& request,
                                   v1::Installation* response, Done done) {
  auto hub = authorizeRecord(authorization, request.hub(), request.installation_id(),
                             "installation_id", kListen);
  if (!hub) return done(hub.error());
  if (request.operations_size() == 0) {
    return done(Error::invalidArgument("operations: give at least one operation"));
  }
  std::vector<registry::PatchOperation> operations;
  for (const auto& op : request.operations()) {
    operations.push_back({op.op(), op.path(),
                          op.has_value() ? std::optional<std::string>(op.value()) : std::nullopt});
  }
  auto change = [runtime = *hub, operations = std::move(operations)](
                    const registry::Installation& current) -> Result<registry::Installation> {
    auto patched = registry::applyPatch(current, operations);
    if (!patched) return patched;
    if (auto ok = validateForHub(runtime->settings, *patched); !ok) return ok.error();
    return patched;
  };
  onWorker([response, hub = hubOf((*hub)->settings), id = request.installation_id(),
            change = std::move(change), done = std::move(done)](Worker& worker) {
    worker.registry().update(hub, id, change,
                             [done, response](Result<registry::Installation> stored) {
                               if (!stored) return done(stored.error());
                               toProto(*stored, *response);
                               done({});
                             });
  });
}

void HubService::deleteInstallation(std::string_view authorization,
                                    const v1::DeleteInstallationRequest& request,
                                    v1::DeleteInstallationResponse* response, Done done) {
  auto hub = authorizeRecord(authorization, request.hub(), request.installation_id(),
                             "installation_id", kListen);
  if (!hub) return done(hub.error());
  onWorker([response, hub = hubOf((*hub)->settings), id = request.installation_id(),
            done = std::move(done)](Worker& worker) {
    worker.registry().remove(hub, id, [done, response](Result<bool> existed) {
      if (!existed) return done(existed.error());
      response->set_existed(*existed);
      done({});
    });
  });
}

void HubService::sendNotification(std::string_view authorization,
                                  const v1::SendNotificationRequest& request,
                                  v1::SendNotificationResponse* response, Done done) {
  auto hub = authorize(authorization, request.hub(), kSend);
  if (!hub) return done(hub.error());
  if (auto ok = validateSendRequest(request, std::chrono::system_clock::now(),
                                    std::chrono::hours(config_.max_schedule_ahead_hours));
      !ok) {
    return done(ok.error());
  }
  if (auto ok = validateSendForHub((*hub)->settings, request); !ok) return done(ok.error());
  // Store the hub's canonical name, so jobs find it whatever case the caller used.
  auto stored = std::make_shared<v1::SendNotificationRequest>(request);
  stored->set_hub((*hub)->settings.name);
  // The deadline counts from when the send goes out: now, or its scheduled time.
  int64_t now_ms = TimeUtil::TimestampToMilliseconds(TimeUtil::GetCurrentTime());
  int64_t at_ms =
      request.has_scheduled_time()
          ? std::max(now_ms, TimeUtil::TimestampToMilliseconds(request.scheduled_time()))
          : now_ms;
  auto deadline = request.has_deadline() ? TimeUtil::DurationToMilliseconds(request.deadline())
                                         : int64_t{config_.default_deadline_s} * 1000;
  *stored->mutable_deliver_by() = TimeUtil::MillisecondsToTimestamp(at_ms + deadline);
  onWorker([this, response, hub = hubOf((*hub)->settings), stored, at_ms,
            done = std::move(done)](Worker& worker) {
    const std::string id = newNotificationId();
    const std::string& key = stored->idempotency_key();
    // Refuses the send, freeing its idempotency key for a retry.
    auto fail = [&worker, done, hub, key](const Error& error) {
      if (!key.empty()) worker.queue().releaseIdempotencyKey(lowerName(hub.name), key);
      done(error);
    };
    auto accepted = [&worker, done, response, id, fail, test = stored->test()](Result<void> ok) {
      if (!ok) return fail(ok.error());
      WorkerMetrics::add(worker.metrics().notifications_accepted);
      response->set_notification_id(id);
      if (test) {
        return answerTestSend(worker, done, response, id,
                              std::chrono::steady_clock::now() + kTestSendWait);
      }
      done({});
    };
    auto store = [this, &worker, hub, stored, id, at_ms, fail, accepted] {
      if (stored->has_scheduled_time()) {
        // Planned when it fires, against the registry as it is then.
        return worker.queue().schedule(id, hub.name, stored->SerializeAsString(), at_ms, accepted);
      }
      planSend(worker.registry(), hub, stored, config_.buckets_per_job,
               [&worker, hub, stored, id, fail, accepted](Result<std::vector<std::string>> jobs) {
                 if (!jobs) return fail(jobs.error());
                 worker.queue().enqueue(id, hub.name, stored->SerializeAsString(), std::move(*jobs),
                                        accepted);
               });
    };
    if (key.empty()) return store();
    worker.queue().reserveIdempotencyKey(
        lowerName(hub.name), key, id, std::chrono::hours(config_.idempotency_window_hours),
        [done, response, store](Result<std::string> tied) {
          if (!tied) return done(tied.error());
          if (tied->empty()) return store();
          response->set_notification_id(*tied);  // a retry: the first send's id, nothing sent
          done({});
        });
  });
}

void HubService::cancelNotification(std::string_view authorization,
                                    const v1::CancelNotificationRequest& request, Done done) {
  auto hub = authorize(authorization, request.hub(), kSend);
  if (!hub) return done(hub.error());
  if (auto ok = validateNotificationId(request.notification_id()); !ok) return done(ok.error());
  onWorker([name = (*hub)->settings.name, id = request.notification_id(),
            done = std::move(done)](Worker& worker) {
    worker.queue().cancel(name, id, [&worker, done](Result<void> ok) {
      if (ok) WorkerMetrics::add(worker.metrics().notifications_cancelled);
      done(std::move(ok));
    });
  });
}

void HubService::listScheduledNotifications(std::string_view authorization,
                                            const v1::ListScheduledNotificationsRequest& request,
                                            v1::ListScheduledNotificationsResponse* response,
                                            Done done) {
  auto hub = authorize(authorization, request.hub(), kManage);
  if (!hub) return done(hub.error());
  if (request.max() < 0 || request.max() > kMaxScheduledListed) {
    return done(Error::invalidArgument("max: must be 1.." + std::to_string(kMaxScheduledListed) +
                                       " (0 = 100); got " + std::to_string(request.max())));
  }
  size_t max = request.max() == 0 ? 100 : static_cast<size_t>(request.max());
  onWorker([name = (*hub)->settings.name, max, response, done = std::move(done)](Worker& worker) {
    worker.queue().listScheduled(
        name, max, [done, response](Result<std::vector<registry::ScheduledSend>> sends) {
          if (!sends) return done(sends.error());
          for (const auto& send : *sends) {
            auto* out = response->add_notifications();
            out->set_notification_id(send.id);
            *out->mutable_scheduled_time() = TimeUtil::MillisecondsToTimestamp(send.at_ms);
            *out->mutable_enqueue_time() = TimeUtil::MillisecondsToTimestamp(send.created_ms);
          }
          done({});
        });
  });
}

void HubService::getNotification(std::string_view authorization,
                                 const v1::GetNotificationRequest& request,
                                 v1::NotificationStatus* response, Done done) {
  auto hub = authorize(authorization, request.hub(), kSend);
  if (!hub) return done(hub.error());
  const std::string& id = request.notification_id();
  if (auto ok = validateNotificationId(id); !ok) return done(ok.error());
  onWorker([response, id, hub = (*hub)->settings.name, done = std::move(done)](Worker& worker) {
    worker.queue().state(
        id, [done, response, id, hub](Result<std::optional<registry::NotificationState>> state) {
          if (!state) return done(state.error());
          if (!*state || (*state)->hub != hub) {
            return done(Error::notFound("notification '" + id + "' not found"));
          }
          toStatusProto(id, **state, *response);
          done({});
        });
  });
}

void HubService::listNotifications(std::string_view authorization,
                                   const v1::ListNotificationsRequest& request,
                                   v1::ListNotificationsResponse* response, Done done) {
  auto hub = authorize(authorization, request.hub(), kManage);
  if (!hub) return done(hub.error());
  if (request.max() < 0 || request.max() > kMaxNotificationsListed) {
    return done(Error::invalidArgument("max: must be 1.." +
                                       std::to_string(kMaxNotificationsListed) + " (0 = 20); got " +
                                       std::to_string(request.max())));
  }
  size_t max = request.max() == 0 ? 20 : static_cast<size_t>(request.max());
  onWorker([name = (*hub)->settings.name, max, response, done = std::move(done)](Worker& worker) {
    worker.queue().recent(
        name, max,
        [done,
         response](const Result<std::vector<std::pair<std::string, registry::NotificationState>>>&
                       listed) {
          if (!listed) return done(listed.error());
          for (const auto& [id, state] : *listed) {
            toStatusProto(id, state, *response->add_notifications());
          }
          done({});
        });
  });
}

void HubService::putRegistration(std::string_view authorization, const std::string& hub_name,
                                 registry::Installation registration,
                                 std::optional<std::string> if_match,
                                 registry::Installation* stored, Done done) {
  auto hub = authorize(authorization, hub_name, kListen);
  if (!hub) return done(hub.error());
  if (!registration.registration) {
    return done(Error::invalidArgument("registration: not a registration"));
  }
  if (auto ok = validateForHub((*hub)->settings, registration); !ok) return done(ok.error());
  onWorker([hub = hubOf((*hub)->settings), registration = std::move(registration),
            if_match = std::move(if_match), stored, done = std::move(done)](Worker& worker) {
    std::string id(registration.id.substr(registry::kRegistrationIdPrefix.size()));
    if (if_match) {
      // Compare-and-set on the ETag (the last update): nobody's write in between is lost.
      return worker.registry().update(
          hub, registration.id,
          [registration, if_match,
           id](const registry::Installation& current) -> Result<registry::Installation> {
            if (!registry::etagMatches(*if_match, registry::registrationEtag(current))) {
              return Error{Error::Code::kFailedPrecondition,
                           "If-Match: registration '" + id + "' has ETag \"" +
                               registry::registrationEtag(current) + "\""};
            }
            return registration;
          },
          [stored, done, id](const Result<registry::Installation>& updated) {
            if (updated) {
              *stored = *updated;
              return done({});
            }
            bool missing = updated.error().code == Error::Code::kNotFound;
            done(missing ? registrationNotFound(id) : updated.error());
          });
    }
    worker.registry().upsert(
        hub, registration,
        [&worker, hub, key = registration.id, stored, done, id](Result<void> ok) {
          if (!ok) return done(ok.error());
          // Read back for the ETag the store gave it.
          worker.registry().get(
              hub, key, [stored, done, id](Result<std::optional<registry::Installation>> r) {
                if (!r) return done(r.error());
                if (!*r) return done(registrationNotFound(id));  // deleted already
                *stored = std::move(**r);
                done({});
              });
        });
  });
}

void HubService::getRegistration(std::string_view authorization, const std::string& hub_name,
                                 const std::string& id, registry::Installation* found, Done done) {
  auto hub = authorizeRecord(authorization, hub_name, id, "registrationId", kListen);
  if (!hub) return done(hub.error());
  onWorker([hub = hubOf((*hub)->settings), id, found, done = std::move(done)](Worker& worker) {
    worker.registry().get(hub, storeId(id),
                          [id, found, done](Result<std::optional<registry::Installation>> r) {
                            if (!r) return done(r.error());
                            if (!*r) return done(registrationNotFound(id));
                            *found = std::move(**r);
                            done({});
                          });
  });
}

void HubService::deleteRegistration(std::string_view authorization, const std::string& hub_name,
                                    const std::string& id, std::optional<std::string> if_match,
                                    Done done) {
  auto hub = authorizeRecord(authorization, hub_name, id, "registrationId", kListen);
  if (!hub) return done(hub.error());
  onWorker([hub = hubOf((*hub)->settings), id, if_match = std::move(if_match),
            done = std::move(done)](Worker& worker) {
    auto remove = [&worker, hub, id, done] {
      worker.registry().remove(hub, storeId(id), [id, done](Result<bool> existed) {
        if (!existed) return done(existed.error());
        if (!*existed) return done(registrationNotFound(id));
        done({});
      });
    };
    if (!if_match || registry::etagMatches(*if_match, "*")) return remove();
    // A conditional delete reads the ETag first; a write landing between the read and the
    // delete is deleted with it (Registry::remove has no compare).
    worker.registry().get(
        hub, storeId(id),
        [id, if_match, remove, done](Result<std::optional<registry::Installation>> r) {
          if (!r) return done(r.error());
          if (!*r) return done(registrationNotFound(id));
          if (!registry::etagMatches(*if_match, registry::registrationEtag(**r))) {
            return done(Error{Error::Code::kFailedPrecondition,
                              "If-Match: registration '" + id + "' has ETag \"" +
                                  registry::registrationEtag(**r) + "\""});
          }
          remove();
        });
  });
}

void HubService::createRegistrationId(std::string_view authorization, const std::string& hub_name,
                                      std::string* id, Done done) {
  auto hub = authorize(authorization, hub_name, kListen);
  if (!hub) return done(hub.error());
  *id = newRegistrationId();
  done({});
}

std::string newRegistrationId() {
  uint64_t parts[2];
  RAND_bytes(reinterpret_cast<unsigned char*>(parts), sizeof parts);
  // Azure's shape: two 19-digit numbers and a digit.
  constexpr uint64_t kNineteenDigits = 10'000'000'000'000'000'000ull;
  return fmt::format("{:019}-{:019}-1", parts[0] % kNineteenDigits, parts[1] % kNineteenDigits);
}

void HubService::listRegistrations(std::string_view authorization, const std::string& hub_name,
                                   RegistrationQuery query, RegistrationPage* page, Done done) {
  bool by_channel = query.kind == RegistrationQuery::Kind::kChannel;
  auto hub = authorize(authorization, hub_name, by_channel ? kListen : kManage);
  if (!hub) return done(hub.error());
  if (query.top < 1 || query.top > kMaxRegistrationsListed) {
    return done(Error::invalidArgument(
        fmt::format("$top: give 1 to {}, got {}", kMaxRegistrationsListed, query.top)));
  }
  if (query.kind == RegistrationQuery::Kind::kTag) {
    if (auto ok = registry::validateTag(query.tag); !ok) return done(ok.error());
  }
  if (by_channel) {
    if (auto ok = registry::validatePushChannel(query.platform, query.channel); !ok) {
      return done(ok.error());
    }
  }
  registry::Hub target = hubOf((*hub)->settings);
  auto resume = RecordLister::parseToken("continuationtoken", query.continuation, target.buckets);
  if (!resume) return done(resume.error());
  onWorker([target, query = std::move(query), page, resume = std::move(*resume),
            done = std::move(done)](Worker& worker) mutable {
    std::make_shared<RecordLister>(worker, target, std::move(query), false, page, std::move(done))
        ->start(resume.first, std::move(resume.second));
  });
}

void HubService::listInstallations(std::string_view authorization,
                                   const v1::ListInstallationsRequest& request,
                                   v1::ListInstallationsResponse* response, Done done) {
  auto hub = authorize(authorization, request.hub(), kManage);
  if (!hub) return done(hub.error());
  if (request.page_size() < 0 || request.page_size() > kMaxInstallationsListed) {
    return done(Error::invalidArgument(fmt::format("page_size: give 1 to {} (0 for {}), got {}",
                                                   kMaxInstallationsListed, kMaxInstallationsListed,
                                                   request.page_size())));
  }
  registry::Hub target = hubOf((*hub)->settings);
  auto resume = RecordLister::parseToken("page_token", request.page_token(), target.buckets);
  if (!resume) return done(resume.error());
  RegistrationQuery query;
  query.top = request.page_size() == 0 ? kMaxInstallationsListed : request.page_size();
  onWorker([target, query = std::move(query), response, resume = std::move(*resume),
            done = std::move(done)](Worker& worker) mutable {
    auto page = std::make_shared<RegistrationPage>();
    auto convert = [page, response, done = std::move(done)](Result<void> ok) {
      if (!ok) return done(ok);
      for (const auto& record : page->registrations)
        toProto(record, *response->add_installations());
      response->set_next_page_token(std::move(page->continuation));
      done({});
    };
    std::make_shared<RecordLister>(worker, target, std::move(query), true, page.get(),
                                   std::move(convert))
        ->start(resume.first, std::move(resume.second));
  });
}

}  // namespace pushhub::gateway
