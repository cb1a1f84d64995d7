#include "tools/pns-mock/fcm_service.h"

namespace pushhub::mock {
namespace {

// An FCM-looking message id ("0:<ms>%<16 hex>"; the real ones are opaque).
std::string messageId(std::mt19937_64& rng, int64_t now_ms) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "0:" + std::to_string(now_ms) + "%";
  uint64_t r = rng();
  for (int i = 0; i < 16; ++i) {
    id.push_back(kHex[(r >> (i * 4)) & 0xF]);
  }
  return id;
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
    FcmVerdict v = checkFcmSend(request, rules, bearer, revoked_below, now_ms);
    if (v.status == 200 && throttleThisSend()) {
      throttleFcm(v);
    } else {
      applyFcmTokenRules(v, rules);
    }
    token.assign(v.registration_token);
    std::string id = v.validate_only ? std::string("fake_message_id") : messageId(rng, now_ms);
    buildFcmResponse(v, id, settings.retry_after_s, response);
    return {v.status, v.reason()};
  }

  void addTokens(const std::vector<std::string>& dead,
                 const std::vector<std::string>& bad) override {
    rules.dead_tokens.insert(dead.begin(), dead.end());
    rules.bad_tokens.insert(bad.begin(), bad.end());
  }

  FcmRules rules;
};

}  // namespace

std::unique_ptr<CloudService> makeFcmService(WorkerPool& workers, FcmRules rules,
                                             CloudSettings settings) {
  return makeCloudService<FcmWorker>(workers, "fcm", "ya29.m", std::move(rules), settings);
}

}  // namespace pushhub::mock
