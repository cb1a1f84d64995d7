#pragma once
// The FCM HTTP v1 emulation of pns-mock: joins the pure checks (fcm_handler.h) to the server
// core (h2_server.h; HTTP/2 or HTTP/1.1 per ALPN) and the shared OAuth-provider plumbing
// (cloud_service.h). Serves the OAuth token endpoint (POST /token) and
// POST /v1/projects/{project}/messages:send on the same port.

#include <memory>
#include <vector>

#include "tools/pns-mock/cloud_service.h"
#include "tools/pns-mock/fcm_handler.h"

namespace pushhub::mock {

// Constructed on the main thread before the workers start; see CloudService for threads.
class FcmService : public CloudService {
 public:
  // `rules.minter` is created here when null.
  FcmService(WorkerPool& workers, FcmRules rules, CloudSettings settings);

  void addTokens(std::vector<std::string> dead, std::vector<std::string> bad,
                 std::function<void()> done) override;

  // Everything one worker thread owns for FCM. Public for the connection handler.
  struct Worker : CloudWorker {
    Worker(FcmRules r, CloudSettings s) : CloudWorker(s), rules(std::move(r)) {}
    FcmRules rules;
  };

 protected:
  std::unique_ptr<H2Handler> makeHandler(size_t worker) override;
  uint64_t nextTokenSerial() const override { return minter_->nextSerial(); }

 private:
  std::shared_ptr<AccessTokenMinter> minter_;
  std::vector<std::shared_ptr<Worker>> per_worker_;
};

}  // namespace pushhub::mock
