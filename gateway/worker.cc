#include "gateway/worker.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cassert>
#include <future>

#include "base/log.h"

namespace pushhub::gateway {
namespace {

registry::RedisClient::Options redisOptions(const Config& config, WorkerMetrics& metrics,
                                            bool connect_to_all) {
  registry::RedisClient::Options options;
  options.stats = &metrics.redis;
  options.seeds = config.redis_nodes;
  options.password = config.redis_password;
  options.connect_to_all = connect_to_all;
  return options;
}

std::vector<std::unique_ptr<registry::RedisClient>> makeReaders(boost::asio::io_context& ioc,
                                                                const Config& config,
                                                                WorkerMetrics& metrics) {
  std::vector<std::unique_ptr<registry::RedisClient>> readers;
  for (uint32_t p = 0; p < config.queue_partitions; ++p) {
    readers.push_back(
        std::make_unique<registry::RedisClient>(ioc, redisOptions(config, metrics, false)));
  }
  return readers;
}

std::vector<registry::RedisClient*> borrow(
    const std::vector<std::unique_ptr<registry::RedisClient>>& clients) {
  std::vector<registry::RedisClient*> out;
  for (const auto& c : clients) out.push_back(c.get());
  return out;
}

// The queue partitions worker `index` of `workers` waits on: each partition has a worker of
// every instance, and a worker waits on no more partitions than it has free job slots (so it
// never claims more jobs than max_jobs_per_worker).
std::vector<uint32_t> homePartitions(uint32_t partitions, size_t index, size_t workers) {
  std::vector<uint32_t> home;
  if (workers >= partitions) {
    home.push_back(static_cast<uint32_t>(index % partitions));
    return home;
  }
  for (uint32_t p = 0; p < partitions; ++p) {
    if (p % workers == index) home.push_back(p);
  }
  return home;
}

registry::NotificationQueue::Options queueOptions(const Config& config, size_t index) {
  registry::NotificationQueue::Options options;
  options.partitions = config.queue_partitions;
  options.record_ttl = std::chrono::hours(config.outcome_retention_hours);
  // A test send lists every device's outcome, whatever the limit for failures.
  options.failures_per_notification =
      std::max<uint32_t>(config.failures_per_notification, kMaxTestTargets);
  // Unique per process and worker, so a restarted daemon's pending jobs are visible as another
  // consumer's (and can be reclaimed) rather than silently re-read as its own.
  options.consumer = "w" + std::to_string(index) + "-" + std::to_string(::getpid()) + "-" +
                     newNotificationId().substr(0, 8);
  return options;
}

}  // namespace

Worker::Worker(size_t index, size_t workers, const Config& config, const HubCatalog& catalog)
    : index_(index),
      work_(boost::asio::make_work_guard(ioc_)),
      commands_(ioc_, redisOptions(config, metrics_, true)),
      readers_(makeReaders(ioc_, config, metrics_)),
      registry_(commands_),
      queue_(commands_, borrow(readers_), queueOptions(config, index)),
      hub_store_(commands_),
      dispatcher_(ioc_, config, catalog, registry_, queue_, metrics_,
                  homePartitions(config.queue_partitions, index, workers)),
      sweeper_(ioc_, config, catalog, registry_, metrics_, index, workers) {}

Worker::~Worker() {
  if (thread_.joinable()) stop(std::chrono::steady_clock::now());
}

void Worker::start() {
  boost::asio::post(ioc_, [this] {
    commands_.connect();
    for (auto& reader : readers_) reader->connect();
    dispatcher_.start();
    sweeper_.start();
  });
  thread_ = std::thread([this] {
    try {
      ioc_.run();
    } catch (const std::exception& e) {
      // Nothing on the data path throws by design; reaching here is a bug worth a loud exit.
      log::get("gateway")->critical("worker {} died: {}", index_, e.what());
      std::abort();
    }
  });
}

void Worker::beginStop() {
  if (!thread_.joinable() || stopping_) return;
  stopping_ = true;
  boost::asio::post(ioc_, [this] {
    dispatcher_.stop();
    sweeper_.stop();
  });
}

void Worker::stop(std::chrono::steady_clock::time_point deadline) {
  if (!thread_.joinable()) return;
  beginStop();
  while (std::chrono::steady_clock::now() < deadline) {
    std::promise<bool> idle;
    auto answer = idle.get_future();
    boost::asio::post(ioc_, [this, &idle] { idle.set_value(dispatcher_.idle()); });
    if (answer.get()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  boost::asio::post(ioc_, [this] {
    commands_.close();
    for (auto& reader : readers_) reader->close();
    work_.reset();
    ioc_.stop();
  });
  thread_.join();
}

WorkerView Worker::view() const {
  assert(std::this_thread::get_id() == thread_.get_id());
  WorkerView view;
  view.redis_connected = commands_.connected();
  view.hubs = metrics_.hubs;
  view.latency = metrics_.latency;
  dispatcher_.countConnections(view.hubs);
  return view;
}

}  // namespace pushhub::gateway
