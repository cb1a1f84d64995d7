#pragma once
// pushhubd as a whole: the hub catalog and its sync with Redis, the workers, the gRPC server
// (PushHub, HubAdmin, reflection), the REST server, and the admin listener (/metrics in
// Prometheus text, /healthz, /readyz, the operators' console at /). Built and driven from the
// main thread.

#include <grpcpp/server.h>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "base/http_server.h"
#include "gateway/api_service.h"
#include "gateway/config.h"
#include "gateway/console.h"
#include "gateway/hub_admin_service.h"
#include "gateway/hub_catalog.h"
#include "gateway/hub_sync.h"
#include "gateway/provider_factory.h"
#include "gateway/rest_api.h"
#include "gateway/rest_server.h"
#include "gateway/stats_collector.h"
#include "gateway/worker.h"

namespace pushhub::gateway {

class Server {
 public:
  explicit Server(Config config);
  ~Server();

  // Loads credentials, starts workers, binds the listeners. Errors name what failed.
  Result<void> start();
  // Stops accepting calls and claiming jobs; running jobs let their in-flight sends answer for up
  // to `grace` (default dispatch.shutdown_grace_ms) and are released to other instances with
  // their progress recorded; then stops everything.
  void stop(std::optional<std::chrono::milliseconds> grace = std::nullopt);

  // The bound ports (useful when the config asked for port 0).
  int grpcPort() const { return grpc_port_; }
  uint16_t adminPort() const { return admin_ ? admin_->port() : 0; }

 private:
  void handleAdmin(const http::HttpRequest& request,
                   std::function<void(http::HttpResponse)> respond);

  Config config_;
  HubCatalog catalog_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<HubSync> hub_sync_;      // on the first worker's thread
  std::unique_ptr<StatsCollector> stats_;  // merges on the admin thread
  std::unique_ptr<HubService> hubs_;       // under every front end
  std::unique_ptr<ApiService> service_;
  std::unique_ptr<HubAdminService> admin_service_;
  std::unique_ptr<RestApi> rest_api_;
  std::unique_ptr<RestServer> rest_;  // on the workers' io_contexts; off when rest_listen is
  std::unique_ptr<grpc::Server> grpc_;
  int grpc_port_ = 0;
  boost::asio::io_context admin_ioc_{1};
  std::unique_ptr<console::Console> console_;  // on the admin thread; off: [console] enabled
  std::unique_ptr<http::HttpServer> admin_;
  std::thread admin_thread_;
  bool started_ = false;
  std::atomic<bool> stopping_{false};  // read by /readyz on the admin thread
};

}  // namespace pushhub::gateway
