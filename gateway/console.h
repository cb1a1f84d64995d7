#pragma once
// The operators' console (docs/OPERATIONS.md, "Console"): one page, served by the admin listener
// at `/` from assets compiled into the binary, and the JSON and Server-Sent Events it reads
// under /console/api/.
//
// Sign-in takes a hub's Manage key (a connection string, or key name and key) and answers with
// a session cookie (console_session.h: HttpOnly, SameSite=Strict, Secure over TLS; signed with
// that key, so rotating the key ends the session) and nothing secret. Every call after it is
// made through HubService with a SharedAccessSignature of the session's key, so it has exactly
// the rights the APIs give that key. A state-changing request must come from the page's own
// origin (Origin) and carry the session's CSRF token (X-Pushhub-Csrf). A signed-out session's
// cookie is refused until it expires.
//
// Live view: /console/api/live streams one JSON overview a second (the hub's counters as
// HubAdmin.GetStats and /metrics tell them, the queue, Redis health, the deliveries chart, the
// latest sends, the scheduled ones) while at least one page watches; at most
// `max_live_pages` pages at once. With nobody watching it only samples this instance's delivery
// counters every kChartStep for the chart (a read of each worker's counters, no Redis).
//
// Threads: everything runs on `home` (the admin listener's io_context). HubService and the
// stats collector answer on their own threads; their answers are posted back to `home`.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/http_server.h"
#include "gateway/console_session.h"
#include "gateway/hub_catalog.h"
#include "gateway/hub_service.h"
#include "gateway/stats_collector.h"

namespace pushhub::gateway::console {

class Console {
 public:
  struct Options {
    std::chrono::minutes session_lifetime{30};
    size_t max_live_pages = 16;
    bool secure_cookie = false;  // the admin listener serves HTTPS
  };
  static constexpr std::chrono::seconds kChartStep{5};
  static constexpr std::chrono::minutes kChartSpan{15};
  static constexpr std::chrono::seconds kLiveInterval{1};
  static constexpr int kLatestListed = 20;
  static constexpr std::chrono::seconds kStuckGather{5};  // then the next tick gathers anew

  // Every argument must outlive the console.
  Console(boost::asio::io_context& home, const HubCatalog& catalog, HubService& hubs,
          StatsCollector& stats, Options options);
  ~Console();

  // Starts the chart's sampling. On `home`'s thread.
  void start();
  // Ends sampling and every live page. On `home`'s thread.
  void stop();

  // Serves `request` when its path is the console's (`/` and under /console/), calling
  // `respond`; false otherwise (respond untouched). On `home`'s thread.
  bool handle(const http::HttpRequest& request, std::function<void(http::HttpResponse)>& respond);

 private:
  struct Signed;  // a verified session, with the secret to act with
  struct LivePage;
  using Respond = std::function<void(http::HttpResponse)>;

  bool serveAsset(const http::HttpRequest& request, Respond& respond);
  void signIn(const http::HttpRequest& request, Respond& respond);
  void signOut(const Signed& session, Respond& respond);
  void openLive(const Signed& session, Respond& respond);
  void overview(const Signed& session, std::function<void(std::string)> done);
  void notification(const Signed& session, const std::string& id, Respond& respond);
  void cancel(const Signed& session, const std::string& id, Respond& respond);
  void installation(const Signed& session, const std::string& id, Respond& respond);

  // The session the request's cookie holds, verified against the hub's key as it is now.
  std::optional<Signed> sessionOf(const http::HttpRequest& request) const;
  std::optional<Signed> verifyCookie(const std::string& value) const;
  // Origin (or Sec-Fetch-Site) says the request comes from this page.
  static bool sameOrigin(const http::HttpRequest& request);

  void sample();
  void scheduleSample();
  void tick();
  void scheduleTick();
  std::string chartJson(const std::string& hub) const;

  boost::asio::io_context& home_;
  const HubCatalog& catalog_;
  HubService& hubs_;
  StatsCollector& stats_;
  Options options_;
  boost::asio::steady_timer sample_timer_;
  boost::asio::steady_timer tick_timer_;
  bool stopped_ = false;
  bool ticking_ = false;  // a live update is being gathered, since tick_started_
  std::chrono::steady_clock::time_point tick_started_;

  // Cumulative deliveries of each hub by platform, every kChartStep, oldest first.
  struct Sample {
    int64_t unix_ms = 0;
    std::map<std::string, std::array<uint64_t, 3>> hubs;  // by hub name
  };
  std::deque<Sample> samples_;

  std::vector<std::shared_ptr<LivePage>> live_;
  // Nonces of signed-out sessions, with their expiry (unix s), refused until then.
  std::map<std::string, int64_t> revoked_;
};

}  // namespace pushhub::gateway::console
