#include "gateway/stats_collector.h"

#include <google/protobuf/util/time_util.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace pushhub::gateway {
namespace {

using google::protobuf::util::TimeUtil;

// One collection in progress; used on `home` only. Handlers queued on a worker may keep it past
// the admin io_context's life, so it holds its timer weakly.
struct Collection {
  InstanceSnapshot snapshot;
  size_t waiting = 0;
  StatsCollector::Done done;  // empty once called
  std::weak_ptr<boost::asio::steady_timer> timer;

  void finish(const std::shared_ptr<Collection>& self) {
    if (!done) return;
    if (auto t = timer.lock()) t->cancel();
    auto call = std::move(done);
    done = nullptr;
    call(std::shared_ptr<const InstanceSnapshot>(self, &snapshot));
  }
  void partDone(const std::shared_ptr<Collection>& self) {
    if (--waiting == 0) finish(self);
  }
};

}  // namespace

StatsCollector::StatsCollector(boost::asio::io_context& home,
                               std::vector<std::unique_ptr<Worker>>& workers)
    : home_(home), workers_(workers) {}

void StatsCollector::collect(bool with_queue, Done done) {
  boost::asio::post(home_, [this, with_queue, done = std::move(done)]() mutable {
    auto c = std::make_shared<Collection>();
    auto timer = std::make_shared<boost::asio::steady_timer>(home_, kTimeout);
    c->timer = timer;
    c->snapshot.workers = workers_.size();
    for (const auto& worker : workers_) c->snapshot.atomics.push_back(&worker->metrics());
    c->waiting = workers_.size() + (with_queue ? 1 : 0);
    c->done = std::move(done);
    timer->async_wait([c, timer](boost::system::error_code ec) {
      if (ec) return;
      if (!c->snapshot.queue && c->snapshot.queue_error.empty()) {
        c->snapshot.queue_error = "Redis did not answer within 2 s";
      }
      c->finish(c);
    });
    for (const auto& worker : workers_) {
      boost::asio::post(worker->ioc(), [this, c, w = worker.get()] {
        boost::asio::post(home_, [c, view = w->view()]() mutable {
          if (!c->done) return;  // too late: already answered
          c->snapshot.add(std::move(view));
          c->partDone(c);
        });
      });
    }
    if (!with_queue) return;
    Worker& first = *workers_.front();
    boost::asio::post(first.ioc(), [this, c, &first] {
      first.queue().inspect(kQueueScan, [this, c](Result<registry::QueueStats> stats) {
        boost::asio::post(home_, [c, stats = std::move(stats)]() mutable {
          if (!c->done) return;
          if (stats) {
            c->snapshot.queue = std::move(*stats);
          } else {
            c->snapshot.queue_error = stats.error().message;
          }
          c->partDone(c);
        });
      });
    });
  });
}

v1::Stats toProto(const InstanceSnapshot& snapshot, const std::string& hub) {
  v1::Stats out;
  *out.mutable_time() = TimeUtil::GetCurrentTime();
  out.set_workers(static_cast<uint32_t>(snapshot.workers));
  out.set_workers_responsive(static_cast<uint32_t>(snapshot.workers_connected));
  auto wanted = [&](const std::string& name) {
    return hub.empty() || lowerName(name) == lowerName(hub);
  };

  auto* queue = out.mutable_queue();
  if (snapshot.queue) {
    const auto& q = *snapshot.queue;
    queue->set_jobs(q.jobs);
    queue->set_running(q.running);
    if (q.oldest_ms)
      *queue->mutable_oldest_job_time() = TimeUtil::MillisecondsToTimestamp(q.oldest_ms);
    queue->set_scheduled(q.scheduled);
    if (q.next_scheduled_ms) {
      *queue->mutable_next_scheduled_time() =
          TimeUtil::MillisecondsToTimestamp(q.next_scheduled_ms);
    }
    queue->set_partial(q.partial);
  } else {
    queue->set_error(snapshot.queue_error);
  }

  // Every hub with counters here or jobs in the queue.
  std::map<std::string, v1::Stats::HubStats> hubs;
  for (const auto& [name, routes] : snapshot.hubs) {
    if (!wanted(name)) continue;
    auto& h = hubs[name];
    h.set_hub(name);
    for (size_t p = 0; p < kPlatforms; ++p) {
      const RouteCounters& r = routes[p];
      if (!r.active()) continue;
      auto* route = h.add_routes();
      route->set_platform(std::string(kPlatformNames[p]));
      route->set_in_flight(r.in_flight);
      route->set_connections(r.connections);
      for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
        if (r.deliveries[o])
          (*route->mutable_deliveries())[std::string(kOutcomeNames[o])] = r.deliveries[o];
        if (r.retries[o]) (*route->mutable_retries())[std::string(kOutcomeNames[o])] = r.retries[o];
      }
    }
  }
  if (snapshot.queue) {
    for (const auto& [name, q] : snapshot.queue->hubs) {
      if (!wanted(name)) continue;
      auto& h = hubs[name];
      h.set_hub(name);
      h.set_queued_jobs(q.jobs);
      if (q.oldest_ms)
        *h.mutable_oldest_job_time() = TimeUtil::MillisecondsToTimestamp(q.oldest_ms);
    }
  }
  for (auto& [name, h] : hubs) *out.add_hubs() = std::move(h);

  for (size_t p = 0; p < kPlatforms; ++p) {
    const auto& l = snapshot.latency[p];
    auto* latency = out.add_latency();
    latency->set_platform(std::string(kPlatformNames[p]));
    latency->set_count(l.count);
    latency->set_sum_seconds(l.sum_seconds);
    for (double bound : kLatencyBounds) latency->add_upper_bounds(bound);
    for (uint64_t n : l.buckets) latency->add_counts(n);
  }
  return out;
}

}  // namespace pushhub::gateway
