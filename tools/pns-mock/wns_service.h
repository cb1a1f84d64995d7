#pragma once
// The WNS emulation of pns-mock: the pure checks (wns_handler.h) on the shared OAuth-provider
// plumbing (cloud_service.h; HTTP/1.1 like real WNS, or HTTP/2 when offered and picked). Serves
// the token endpoint (POST /accesstoken.srf) and the channel URIs (/?token=T, /w/?token=T) on the
// same port.

#include <memory>

#include "tools/pns-mock/cloud_service.h"
#include "tools/pns-mock/wns_handler.h"

namespace pushhub::mock {

// Makes the WNS service; `rules.minter` is created when null. Main thread, before the workers
// start; see CloudService for threads.
std::unique_ptr<CloudService> makeWnsService(WorkerPool& workers, WnsRules rules,
                                             CloudSettings settings);

}  // namespace pushhub::mock
