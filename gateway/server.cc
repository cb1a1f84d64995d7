#include "gateway/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <boost/asio/post.hpp>

#include <fstream>
#include <future>
#include <sstream>

#include <fmt/format.h>

#include "base/log.h"

namespace pushhub::gateway {
namespace {

bool readFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

std::pair<std::string, uint16_t> splitHostPort(const std::string& address) {
  auto colon = address.rfind(':');
  return {address.substr(0, colon), static_cast<uint16_t>(std::stoi(address.substr(colon + 1)))};
}

}  // namespace

Server::Server(Config config) : config_(std::move(config)) {
  if (config_.workers == 0) config_.workers = std::max(1u, std::thread::hardware_concurrency());
}

Server::~Server() { stop(std::chrono::milliseconds(0)); }

Result<void> Server::start() {
  auto logger = log::get("gateway");
  // The config's hubs are served from the start, before Redis answers; HubSync then writes them
  // to Redis and serves whatever Redis holds.
  auto initial = std::make_shared<HubMap>();
  std::vector<HubSettings> config_hubs;
  for (const auto& [key, hub] : config_.hubs) {
    auto runtime = buildRuntime(hub, hubToProto(hub, true).SerializeAsString());
    if (!runtime) return runtime.error();
    initial->emplace(key, std::move(*runtime));
    config_hubs.push_back(hub);
  }
  catalog_.replace(std::move(initial));

  for (size_t i = 0; i < config_.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, config_.workers, config_, catalog_));
  }
  Worker& first = *workers_.front();
  hub_sync_ =
      std::make_unique<HubSync>(first.ioc(), first.hubStore(), catalog_, std::move(config_hubs));
  for (auto& worker : workers_) worker->start();
  boost::asio::post(first.ioc(), [this] { hub_sync_->start(); });
  started_ = true;

  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!config_.tls_cert_file.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!readFile(config_.tls_key_file, pair.private_key) ||
        !readFile(config_.tls_cert_file, pair.cert_chain)) {
      return Error::invalidArgument("server.tls_cert / server.tls_key: cannot read the files");
    }
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    creds = grpc::SslServerCredentials(ssl);
  }
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  stats_ = std::make_unique<StatsCollector>(admin_ioc_, workers_);
  hubs_ = std::make_unique<HubService>(config_, catalog_, workers_);
  service_ = std::make_unique<ApiService>(*hubs_);
  admin_service_ = std::make_unique<HubAdminService>(config_, workers_, *stats_, [this] {
    boost::asio::post(workers_.front()->ioc(), [this] { hub_sync_->poke(); });
  });
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.grpc_listen, creds, &grpc_port_);
  builder.RegisterService(service_.get());
  builder.RegisterService(admin_service_.get());
  grpc_ = builder.BuildAndStart();
  if (!grpc_ || grpc_port_ == 0) {
    return Error::unavailable("server.grpc_listen: cannot listen on " + config_.grpc_listen);
  }

  auto [admin_host, admin_port] = splitHostPort(config_.admin_listen);
  std::shared_ptr<boost::asio::ssl::context> admin_tls;
  if (!config_.admin_tls_cert_file.empty()) {
    auto context = http::serverTlsContext(config_.admin_tls_cert_file, config_.admin_tls_key_file,
                                          "server.admin_tls_cert / server.admin_tls_key");
    if (!context) return context.error();
    admin_tls = std::move(*context);
  }
  if (config_.console) {
    console_ = std::make_unique<console::Console>(
        admin_ioc_, catalog_, *hubs_, *stats_,
        console::Console::Options{std::chrono::minutes(config_.console_session_minutes),
                                  config_.console_max_live_pages, admin_tls != nullptr});
  }
  try {
    admin_ = std::make_unique<http::HttpServer>(
        admin_ioc_, admin_host, admin_port,
        [this](const http::HttpRequest& request, std::function<void(http::HttpResponse)> respond) {
          handleAdmin(request, std::move(respond));
        },
        admin_tls);
  } catch (const std::exception& e) {
    return Error::unavailable("server.admin_listen: cannot listen on " + config_.admin_listen +
                              ": " + e.what());
  }
  if (console_) boost::asio::post(admin_ioc_, [this] { console_->start(); });
  admin_thread_ = std::thread([this] { admin_ioc_.run(); });

  std::string rest = "rest off";
  if (!config_.rest_listen.empty()) {
    rest_api_ = std::make_unique<RestApi>(*hubs_);
    std::vector<boost::asio::io_context*> contexts;
    for (auto& worker : workers_) contexts.push_back(&worker->ioc());
    RestServer::Options options{config_.rest_listen, config_.rest_plain_http, config_.tls_cert_file,
                                config_.tls_key_file, config_.rest_max_connections};
    auto started =
        RestServer::start(contexts, options,
                          [api = rest_api_.get()](const RestRequest& request,
                                                  std::function<void(RestResponse &&)> respond) {
                            api->handle(request, std::move(respond));
                          });
    if (!started) return started.error();
    rest_ = std::move(*started);
    rest = fmt::format("rest {}://{}:{}", rest_->tls() ? "https" : "http",
                       splitHostPort(config_.rest_listen).first, rest_->port());
  }

  logger->info("pushhubd listening: grpc {}:{} ({}), admin {}://{}:{}{}, {}, {} workers, {} hubs",
               splitHostPort(config_.grpc_listen).first, grpc_port_,
               config_.tls_cert_file.empty() ? "plaintext" : "TLS",
               admin_->tls() ? "https" : "http", admin_host, admin_->port(),
               console_ ? " (console at /)" : "", rest, workers_.size(),
               catalog_.snapshot()->size());
  return {};
}

void Server::handleAdmin(const http::HttpRequest& request,
                         std::function<void(http::HttpResponse)> respond) {
  bool metrics = request.path == "/metrics";
  // Live: every worker answers and reaches Redis. Ready: live, and not stopping (a load
  // balancer stops sending calls while a stopping instance drains).
  bool ready = request.path == "/readyz";
  bool health = ready || request.path == "/healthz";
  if ((metrics || health) && request.method != "GET") {
    return respond({405, "application/json", R"({"error":"GET only"})"});
  }
  if (metrics) {
    return stats_->collect(true, [respond = std::move(respond)](auto snapshot) {
      respond({200, "text/plain; version=0.0.4", renderPrometheus(*snapshot)});
    });
  }
  if (health) {
    return stats_->collect(false, [this, ready, respond = std::move(respond)](auto snapshot) {
      std::string status = "ok";
      if (snapshot->workers_answered < snapshot->workers) {
        status = "workers not answering";
      } else if (!snapshot->healthy()) {
        status = "redis unavailable";
      } else if (ready && stopping_) {
        status = "stopping";
      }
      respond({status == "ok" ? 200 : 503, "application/json",
               fmt::format(R"({{"status":"{}","workers":{},"workers_answered":{},)"
                           R"("workers_with_redis":{}}})",
                           status, snapshot->workers, snapshot->workers_answered,
                           snapshot->workers_connected)});
    });
  }
  if (console_ && console_->handle(request, respond)) return;
  respond({404, "application/json",
           console_ ? R"({"error":"unknown path; try /, /metrics, /healthz or /readyz"})"
                    : R"({"error":"unknown path; try /metrics, /healthz or /readyz"})"});
}

void Server::stop(std::optional<std::chrono::milliseconds> grace) {
  if (!started_) return;
  started_ = false;
  stopping_ = true;
  auto deadline = std::chrono::steady_clock::now() +
                  grace.value_or(std::chrono::milliseconds(config_.shutdown_grace_ms));
  // Jobs stop first (their release should not wait for gRPC calls to drain); the workers keep
  // running until the deadline, so calls still in progress are answered.
  for (auto& worker : workers_) worker->beginStop();
  if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (rest_) rest_->stop();
  boost::asio::post(workers_.front()->ioc(), [this] { hub_sync_->stop(); });
  for (auto& worker : workers_) worker->stop(deadline);
  // The console's live pages close and its timers stop on the admin thread, where they run
  // (the thread is joined below, so `console_stopped` outlives the handler).
  std::promise<void> console_stopped;
  if (console_) {
    boost::asio::post(admin_ioc_, [this, &console_stopped] {
      console_->stop();
      console_stopped.set_value();
    });
    console_stopped.get_future().wait_for(std::chrono::seconds(2));
  }
  if (admin_) admin_->stop();
  admin_ioc_.stop();
  if (admin_thread_.joinable()) admin_thread_.join();
  log::get("gateway")->info("pushhubd stopped");
}

}  // namespace pushhub::gateway
