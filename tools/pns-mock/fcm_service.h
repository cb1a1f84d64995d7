#pragma once
// The FCM HTTP v1 emulation of pns-mock: the pure checks (fcm_handler.h) on the shared
// OAuth-provider plumbing (cloud_service.h; HTTP/2 or HTTP/1.1 per ALPN). Serves the OAuth token
// endpoint (POST /token) and POST /v1/projects/{project}/messages:send on the same port.

#include <memory>

#include "tools/pns-mock/cloud_service.h"
#include "tools/pns-mock/fcm_handler.h"

namespace pushhub::mock {

// Makes the FCM service; `rules.minter` is created when null. Main thread, before the workers
// start; see CloudService for threads.
std::unique_ptr<CloudService> makeFcmService(WorkerPool& workers, FcmRules rules,
                                             CloudSettings settings);

}  // namespace pushhub::mock
