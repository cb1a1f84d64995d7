#include "tools/pns-mock/wns_service.h"

namespace pushhub::mock {
namespace {

// A WNS-looking message id: 16 hex digits (X-WNS-Msg-ID is at most 16 characters).
void messageId(std::mt19937_64& rng, char out[16]) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  uint64_t r = rng();
  for (int i = 0; i < 16; ++i) {
    out[i] = kHex[(r >> (i * 4)) & 0xF];
  }
}

// WNS's rules and checks on one worker thread.
struct WnsWorker final : CloudWorker {
  WnsWorker(WnsRules r, CloudSettings s)
      : CloudWorker(s, "/accesstoken.srf", "bearer"), rules(std::move(r)) {}

  OAuthVerdict checkTokenRequest(const H2Request& request, int64_t) const override {
    return checkWnsTokenRequest(request, rules);
  }

  CloudSendResult handleSend(const H2Request& request, BearerCache& bearer, int64_t now_ms,
                             std::string& token, H2Response& response) override {
    WnsVerdict v = checkWnsSend(request, rules, bearer, revoked_below, now_ms);
    const Fault* fault = v.status == 200 ? faultFor({}, now_ms) : nullptr;
    if (fault) {
      faultWns(*fault, v);
    } else if (v.status == 200 && throttleThisSend()) {
      throttleWns(v);
    } else {
      applyWnsChannelRules(v, rules);
    }
    token.assign(v.channel_token);
    char id[16];
    messageId(rng, id);
    buildWnsResponse(v, request, std::string_view(id, sizeof id),
                     fault ? fault->retry_after_s : settings.retry_after_s, response);
    return {v.status, v.reason(), fault};
  }

  void addTokens(const std::vector<std::string>& dead,
                 const std::vector<std::string>& bad) override {
    rules.dead_tokens.insert(dead.begin(), dead.end());
    rules.bad_tokens.insert(bad.begin(), bad.end());
  }

  WnsRules rules;
};

}  // namespace

std::unique_ptr<CloudService> makeWnsService(WorkerPool& workers, WnsRules rules,
                                             CloudSettings settings) {
  return makeCloudService<WnsWorker>(workers, "wns", "EwA", std::move(rules), settings);
}

}  // namespace pushhub::mock
