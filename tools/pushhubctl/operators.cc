// Operator commands: what is queued, flowing and failing, in tables for people (or --json).
#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "pushhub/v1/names.h"
#include "tools/pushhubctl/cli.h"

namespace pushhubctl {
namespace {

using google::protobuf::util::TimeUtil;

int64_t toMs(const google::protobuf::Timestamp& t) { return TimeUtil::TimestampToMilliseconds(t); }

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "3.2 s", "4 min 10 s", "2 h 5 min": a duration for people.
std::string span(int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 60'000) return fmt::format("{:.1f} s", ms / 1000.0);
  int64_t s = ms / 1000;
  if (s < 3600) return fmt::format("{} min {} s", s / 60, s % 60);
  return fmt::format("{} h {} min", s / 3600, (s % 3600) / 60);
}

std::string ago(const google::protobuf::Timestamp& t) {
  return toMs(t) == 0 ? "-" : span(nowMs() - toMs(t)) + " ago";
}

std::string when(const google::protobuf::Timestamp& t) {
  return toMs(t) == 0 ? "-" : TimeUtil::ToString(t);
}

std::string platformName(int platform) {
  switch (platform) {
    case v1::PLATFORM_APNS:
      return "apns";
    case v1::PLATFORM_FCM:
      return "fcm";
    case v1::PLATFORM_WNS:
      return "wns";
    default:
      return "?";
  }
}

v1::Stats getStats(AdminClient& admin, const std::string& hub) {
  v1::GetStatsRequest request;
  request.set_hub(hub);
  grpc::ClientContext context;
  admin.prepare(context);
  v1::Stats stats;
  check(admin.stub().GetStats(&context, request, &stats));
  return stats;
}

std::string queueSummary(const v1::Stats::Queue& q) {
  if (!q.error().empty()) return "queue: unknown (" + q.error() + ")\n";
  std::string out = fmt::format("queue: {} jobs ({} running, {} waiting)", q.jobs(), q.running(),
                                q.jobs() - std::min(q.jobs(), q.running()));
  if (q.has_oldest_job_time()) out += ", oldest queued " + ago(q.oldest_job_time());
  out += fmt::format("\nscheduled: {}", q.scheduled());
  if (q.has_next_scheduled_time()) {
    out += ", next in " + span(toMs(q.next_scheduled_time()) - nowMs());
  }
  if (q.partial()) out += "\n(more jobs than were read: the per-hub counts cover the oldest ones)";
  return out + "\n";
}

uint64_t total(const google::protobuf::Map<std::string, uint64_t>& counts) {
  uint64_t sum = 0;
  for (const auto& [name, n] : counts) sum += n;
  return sum;
}

// The smallest bucket bound under which at least `q` of the answers fall ("<= 5 ms").
std::string quantile(const v1::Stats::Latency& l, double q) {
  if (l.count() == 0) return "-";
  uint64_t seen = 0;
  for (int i = 0; i < l.counts_size(); ++i) {
    seen += l.counts(i);
    if (seen >= q * static_cast<double>(l.count())) {
      if (i >= l.upper_bounds_size()) return fmt::format("> {} s", l.upper_bounds(i - 1));
      double bound = l.upper_bounds(i);
      return bound < 1 ? fmt::format("<= {} ms", bound * 1000) : fmt::format("<= {} s", bound);
    }
  }
  return "-";
}

std::string routeKey(const std::string& hub, const std::string& platform) {
  return hub + "/" + platform;
}

void printStats(const v1::Stats& stats, const std::map<std::string, uint64_t>* previous,
                double interval_s) {
  std::cout << fmt::format("{}  workers {} ({} responsive)\n", TimeUtil::ToString(stats.time()),
                           stats.workers(), stats.workers_responsive());
  std::cout << queueSummary(stats.queue()) << "\n";
  std::cout << fmt::format("{:<20} {:<8} {:>9} {:>6} {:>10} {:>10} {:>8} {:>8}", "HUB", "PLATFORM",
                           "IN-FLIGHT", "CONNS", "DELIVERED", "SUCCESS", "FAILED", "RETRIES");
  if (previous) std::cout << fmt::format(" {:>9}", "PER-S");
  std::cout << "\n";
  for (const auto& hub : stats.hubs()) {
    for (const auto& route : hub.routes()) {
      uint64_t delivered = total(route.deliveries());
      auto success = route.deliveries().find("Success");
      uint64_t ok = success == route.deliveries().end() ? 0 : success->second;
      std::cout << fmt::format("{:<20} {:<8} {:>9} {:>6} {:>10} {:>10} {:>8} {:>8}", hub.hub(),
                               route.platform(), route.in_flight(), route.connections(), delivered,
                               ok, delivered - ok, total(route.retries()));
      if (previous) {
        auto before = previous->find(routeKey(hub.hub(), route.platform()));
        uint64_t then = before == previous->end() ? 0 : before->second;
        std::cout << fmt::format(" {:>9.0f}", (delivered - std::min(delivered, then)) / interval_s);
      }
      std::cout << "\n";
      for (const auto& [reason, n] : route.retries()) {
        std::cout << fmt::format("{:<20} {:<8}   retried {}: {}\n", "", "", reason, n);
      }
    }
  }
  std::cout << fmt::format("\n{:<8} {:>10} {:>10} {:>12} {:>12}\n", "LATENCY", "ANSWERS", "MEAN",
                           "P50", "P99");
  for (const auto& l : stats.latency()) {
    std::string mean =
        l.count() ? fmt::format("{:.1f} ms", 1000 * l.sum_seconds() / l.count()) : "-";
    std::cout << fmt::format("{:<8} {:>10} {:>10} {:>12} {:>12}\n", l.platform(), l.count(), mean,
                             quantile(l, 0.5), quantile(l, 0.99));
  }
}

}  // namespace

int queuesCommand(const Args& args) {
  AdminClient admin(args);
  v1::Stats stats = getStats(admin, args.get("--hub"));
  if (args.has("--json")) {
    std::cout << toJson(stats.queue()) << "\n";
    return 0;
  }
  std::cout << queueSummary(stats.queue());
  std::cout << fmt::format("\n{:<20} {:>8} {:>16}\n", "HUB", "JOBS", "OLDEST");
  for (const auto& hub : stats.hubs()) {
    if (hub.queued_jobs() == 0) continue;
    std::cout << fmt::format("{:<20} {:>8} {:>16}\n", hub.hub(), hub.queued_jobs(),
                             ago(hub.oldest_job_time()));
  }
  return 0;
}

int statsCommand(const Args& args) {
  AdminClient admin(args);
  long watch = args.number("--watch", 0, 1, 3600);
  long count = args.number("--count", watch ? 0 : 1, 1, 1'000'000);
  bool tty = ::isatty(STDOUT_FILENO) == 1;
  std::map<std::string, uint64_t> previous;
  for (long round = 0; count == 0 || round < count; ++round) {
    if (round > 0) std::this_thread::sleep_for(std::chrono::seconds(watch));
    v1::Stats stats = getStats(admin, args.get("--hub"));
    if (args.has("--json")) {
      std::cout << toJson(stats) << std::endl;
      continue;
    }
    if (watch && tty) std::cout << "\x1b[H\x1b[2J";  // a live view: redraw in place
    if (round > 0 && !tty) std::cout << "\n";
    printStats(stats, round > 0 ? &previous : nullptr, static_cast<double>(watch));
    std::cout.flush();
    previous.clear();
    for (const auto& hub : stats.hubs()) {
      for (const auto& route : hub.routes()) {
        previous[routeKey(hub.hub(), route.platform())] = total(route.deliveries());
      }
    }
  }
  return 0;
}

int hubsCommand(const Args& args) {
  AdminClient admin(args);
  v1::ListHubsResponse hubs;
  {
    grpc::ClientContext context;
    admin.prepare(context);
    check(admin.stub().ListHubs(&context, {}, &hubs));
  }
  v1::Stats stats = getStats(admin, "");
  if (args.has("--json")) {
    std::cout << "{\"hubs\":" << toJson(hubs) << ",\"stats\":" << toJson(stats) << "}\n";
    return 0;
  }
  std::map<std::string, uint64_t> queued;
  for (const auto& hub : stats.hubs()) queued[hub.hub()] = hub.queued_jobs();
  std::cout << fmt::format("{:<20} {:>7} {:<13} {:>6}  {}\n", "HUB", "BUCKETS", "PLATFORMS",
                           "QUEUED", "KEYS");
  for (const auto& hub : hubs.hubs()) {
    std::string platforms;
    if (hub.has_apns()) platforms += "apns ";
    if (hub.has_fcm()) platforms += "fcm ";
    if (hub.has_wns()) platforms += "wns ";
    std::string keys;
    for (const auto& key : hub.keys()) {
      std::string rights;
      for (const auto& right : key.rights()) rights += (rights.empty() ? "" : ",") + right;
      keys += (keys.empty() ? "" : " ") + key.name() + "(" + rights + ")";
    }
    std::cout << fmt::format("{:<20} {:>7} {:<13} {:>6}  {}\n", hub.name(), hub.buckets(),
                             platforms.empty() ? "-" : platforms, queued[hub.name()], keys);
  }
  return 0;
}

int notificationCommand(Client& client, const Args& args, const std::string& id) {
  v1::NotificationStatus s = getNotification(client, id);
  if (args.has("--json")) {
    std::cout << toJson(s) << "\n";
    return 0;
  }
  std::cout << fmt::format("notification {}: {}{}\n", s.notification_id(),
                           v1::azureStateName(s.state()), s.test() ? " (test send)" : "");
  if (!s.audience().empty()) std::cout << "  audience  " << s.audience() << "\n";
  if (!s.abandoned_reason().empty()) std::cout << "  abandoned: " << s.abandoned_reason() << "\n";
  if (s.has_scheduled_time()) std::cout << "  scheduled for " << when(s.scheduled_time()) << "\n";
  std::cout << "  enqueued  " << when(s.enqueue_time()) << "\n";
  std::cout << "  started   " << when(s.start_time()) << "\n";
  std::cout << "  ended     " << when(s.end_time());
  if (s.has_start_time() && s.has_end_time()) {
    std::cout << " (" << span(toMs(s.end_time()) - toMs(s.start_time())) << " of delivery)";
  }
  std::string platforms;
  for (int p : s.target_platforms()) platforms += (platforms.empty() ? "" : ", ") + platformName(p);
  std::cout << fmt::format("\n  jobs      {}/{}\n  platforms {}\n", s.jobs_done(), s.jobs_total(),
                           platforms.empty() ? "-" : platforms);
  if (s.outcomes_size() > 0) std::cout << "outcomes:\n";
  for (const auto& o : s.outcomes()) {
    std::cout << fmt::format("  {:<5} {:<28} {:>10}\n", platformName(o.platform()), o.outcome(),
                             o.count());
  }
  if (s.failures_size() > 0) {
    std::cout << fmt::format("failures (the first {}):\n", s.failures_size());
  }
  for (const auto& f : s.failures()) {
    std::string handle =
        f.push_handle().size() > 24 ? f.push_handle().substr(0, 24) + "..." : f.push_handle();
    std::cout << fmt::format("  {:<5} {:<28} {:>3} {:<24} {}{}\n", platformName(f.platform()),
                             handle, f.http_status(), f.outcome(), f.reason(),
                             f.installation_id().empty() ? "" : " (" + f.installation_id() + ")");
  }
  return 0;
}

int notificationListCommand(Client& client, const Args& args) {
  v1::ListNotificationsRequest request;
  request.set_hub(client.hub());
  request.set_max(static_cast<int32_t>(args.number("--max", 20, 1, 100)));
  grpc::ClientContext context;
  client.prepare(context);
  v1::ListNotificationsResponse response;
  check(client.stub().ListNotifications(&context, request, &response));
  if (args.has("--json")) {
    std::cout << toJson(response) << "\n";
    return 0;
  }
  std::cout << fmt::format("{:<34} {:<20} {:>14} {:>10} {:>8}  {}\n", "NOTIFICATION", "STATE",
                           "ACCEPTED", "DELIVERED", "FAILED", "AUDIENCE");
  for (const auto& n : response.notifications()) {
    int64_t delivered = 0, failed = 0;
    for (const auto& o : n.outcomes()) (o.outcome() == "Success" ? delivered : failed) += o.count();
    std::cout << fmt::format("{:<34} {:<20} {:>14} {:>10} {:>8}  {}\n", n.notification_id(),
                             v1::azureStateName(n.state()), ago(n.enqueue_time()), delivered,
                             failed, n.audience());
  }
  return 0;
}

int scheduleCommand(Client& client, const Args& args) {
  const auto& p = args.positional;
  if (p.size() == 3 && p[1] == "cancel") return cancelCommand(client, p[2]);
  if (p.size() != 2 || p[1] != "list") die("schedule list [--max N] | schedule cancel ID");
  v1::ListScheduledNotificationsRequest request;
  request.set_hub(client.hub());
  request.set_max(static_cast<int32_t>(args.number("--max", 100, 1, 1000)));
  grpc::ClientContext context;
  client.prepare(context);
  v1::ListScheduledNotificationsResponse response;
  check(client.stub().ListScheduledNotifications(&context, request, &response));
  if (args.has("--json")) {
    std::cout << toJson(response) << "\n";
    return 0;
  }
  std::cout << fmt::format("{:<40} {:<32} {}\n", "NOTIFICATION", "SCHEDULED FOR", "IN");
  for (const auto& n : response.notifications()) {
    std::cout << fmt::format("{:<40} {:<32} {}\n", n.notification_id(), when(n.scheduled_time()),
                             span(toMs(n.scheduled_time()) - nowMs()));
  }
  return 0;
}

int cancelCommand(Client& client, const std::string& id) {
  v1::CancelNotificationRequest request;
  request.set_hub(client.hub());
  request.set_notification_id(id);
  grpc::ClientContext context;
  client.prepare(context);
  v1::CancelNotificationResponse response;
  check(client.stub().CancelNotification(&context, request, &response));
  std::cout << "cancelled " << id << "\n";
  return 0;
}

}  // namespace pushhubctl
