#pragma once
// The WNS emulation of pns-mock: joins the pure checks (wns_handler.h) to the server core
// (h2_server.h; HTTP/1.1 like real WNS, or HTTP/2 when offered and picked) and the shared
// OAuth-provider plumbing (cloud_service.h). Serves the token endpoint (POST /accesstoken.srf)
// and the channel URIs (/?token=T, /w/?token=T) on the same port.

#include <memory>
#include <vector>

#include "tools/pns-mock/cloud_service.h"
#include "tools/pns-mock/wns_handler.h"

namespace pushhub::mock {

// Constructed on the main thread before the workers start; see CloudService for threads.
class WnsService : public CloudService {
 public:
  // `rules.minter` is created here when null.
  WnsService(WorkerPool& workers, WnsRules rules, CloudSettings settings);

  void addTokens(std::vector<std::string> dead, std::vector<std::string> bad,
                 std::function<void()> done) override;

  // Everything one worker thread owns for WNS. Public for the connection handler.
  struct Worker : CloudWorker {
    Worker(WnsRules r, CloudSettings s) : CloudWorker(s), rules(std::move(r)) {}
    WnsRules rules;
  };

 protected:
  std::unique_ptr<H2Handler> makeHandler(size_t worker) override;
  uint64_t nextTokenSerial() const override { return minter_->nextSerial(); }

 private:
  std::shared_ptr<AccessTokenMinter> minter_;
  std::vector<std::shared_ptr<Worker>> per_worker_;
};

}  // namespace pushhub::mock
