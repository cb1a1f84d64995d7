#include "tools/pns-mock/fcm_service.h"

#include <charconv>

namespace pushhub::mock {
namespace {

// Room for an FCM-looking message id: "0:" + up to 20 digits + "%" + 16 hex digits.
constexpr size_t kMessageIdBytes = 2 + 20 + 1 + 16;

// An FCM-looking message id ("0:<ms>%<16 hex>"; the real ones are opaque), written into `out`
// (no allocation: this runs for every send). Returns its length.
size_t messageId(std::mt19937_64& rng, int64_t now_ms, char (&out)[kMessageIdBytes]) {
  static constexpr char kHex[] = "0123456789abcdef";
  out[0] = '0';
  out[1] = ':';
  char* p = std::to_chars(out + 2, out + kMessageIdBytes, now_ms).ptr;
  *p++ = '%';
  uint64_t r = rng();
  for (int i = 0; i < 16; ++i) {
    *p++ = kHex[(r >> (i * 4)) & 0xF];
  }
  return static_cast<size_t>(p - out);
}

// FCM's rules and checks on one worker thread.
struct FcmWorker final : CloudWorker {
  FcmWorker(FcmRules r, CloudSettings s)
      : CloudWorker(s, "/token", "Bearer"), rules(std::move(r)) {}

  OAuthVerdict checkTokenRequest(const H2Request& request, int64_t now_ms) const override {
    return checkFcmTokenRequest(request, rules, now_ms / 1000);
  }

  CloudSendResult handleSend(const H2Request& request, BearerCache& bearer, int64_t now_ms,
                             std::string& token, H2Response& response) override {
    FcmVerdict& v = verdict;
    checkFcmSend(request, rules, bearer, revoked_below, now_ms, v);
    const Fault* fault = v.status == 200 ? faultFor(v.project, now_ms) : nullptr;
    if (fault) {
      faultFcm(*fault, v);
    } else if (v.status == 200 && throttleThisSend()) {
      throttleFcm(v);
    } else {
      applyFcmTokenRules(v, rules);
    }
    token.assign(v.registration_token);
    char id[kMessageIdBytes];
    std::string_view message_id = v.validate_only
                                      ? std::string_view("fake_message_id")
                                      : std::string_view(id, messageId(rng, now_ms, id));
    buildFcmResponse(v, message_id, fault ? fault->retry_after_s : settings.retry_after_s,
                     response);
    return {v.status, v.reason(), fault};
  }

  void addTokens(const std::vector<std::string>& dead,
                 const std::vector<std::string>& bad) override {
    rules.dead_tokens.insert(dead.begin(), dead.end());
    rules.bad_tokens.insert(bad.begin(), bad.end());
  }

  FcmRules rules;
  // The verdict of the current send, reused so that its strings (the registration token above
  // all, longer than std::string's inline buffer) are not allocated for every send.
  FcmVerdict verdict;
};

}  // namespace

std::unique_ptr<CloudService> makeFcmService(WorkerPool& workers, FcmRules rules,
                                             CloudSettings settings) {
  return makeCloudService<FcmWorker>(workers, "fcm", "ya29.m", std::move(rules), settings);
}

}  // namespace pushhub::mock
