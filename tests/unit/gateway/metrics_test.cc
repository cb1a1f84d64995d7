#include "gateway/metrics.h"

#include <gtest/gtest.h>

#include <chrono>

#include "gateway/stats_collector.h"

namespace pushhub::gateway {
namespace {

using namespace std::chrono_literals;

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(LatencyHistogramTest, EachAnswerFallsInTheFirstBucketWhoseBoundItDoesNotExceed) {
  LatencyHistogram h;
  h.observe(500us);  // <= 0.001
  h.observe(1ms);    // <= 0.001 (bounds are inclusive, as Prometheus' le)
  h.observe(3ms);    // <= 0.005
  h.observe(20s);    // beyond every bound
  EXPECT_EQ(h.buckets[0], 2u);
  EXPECT_EQ(h.buckets[1], 0u);
  EXPECT_EQ(h.buckets[2], 1u);
  EXPECT_EQ(h.buckets.back(), 1u);
  EXPECT_EQ(h.count, 4u);
  EXPECT_NEAR(h.sum_seconds, 20.0045, 1e-9);
}

// Two workers' views of the same hub add up; the rendering shows routes, cumulative histogram
// buckets, the queue and whether every worker answered.
TEST(RenderPrometheusTest, SumsWorkersPerRouteAndShowsTheQueue) {
  WorkerMetrics a, b;
  WorkerMetrics::add(a.jobs_started, 2);
  WorkerMetrics::add(b.jobs_started, 3);
  InstanceSnapshot s;
  s.workers = 3;
  s.atomics = {&a, &b};
  WorkerView one;
  one.redis_connected = true;
  one.hubs["shop"][0].deliveries[outcomeIndex("Success")] = 5;
  one.hubs["shop"][0].in_flight = 7;
  one.hubs["shop"][0].connections = 2;
  one.hubs["shop"][2].retries[outcomeIndex("Throttled")] = 4;
  one.latency[0].observe(2ms);
  WorkerView two;
  two.redis_connected = false;
  two.hubs["shop"][0].deliveries[outcomeIndex("Success")] = 6;
  two.hubs["shop"][0].deliveries[outcomeIndex("WrongToken")] = 1;
  two.hubs["we\"ird"][1].deliveries[outcomeIndex("Success")] = 1;
  two.latency[0].observe(30ms);
  s.add(std::move(one));
  s.add(std::move(two));
  EXPECT_EQ(s.workers_answered, 2u);
  EXPECT_EQ(s.workers_connected, 1u);
  EXPECT_FALSE(s.healthy());  // one worker did not answer, one has no Redis

  registry::QueueStats q;
  q.jobs = 5;
  q.running = 2;
  q.oldest_ms = nowMs() - 90'000;
  q.scheduled = 9;
  q.hubs["shop"] = {5, q.oldest_ms};
  s.queue = q;

  std::string text = "\n" + renderPrometheus(s);
  EXPECT_TRUE(has(text, "pushhub_jobs_started_total 5"));
  EXPECT_TRUE(
      has(text, R"(pushhub_deliveries_total{hub="shop",platform="apns",outcome="Success"} 11)"));
  EXPECT_TRUE(
      has(text, R"(pushhub_deliveries_total{hub="shop",platform="apns",outcome="WrongToken"} 1)"));
  EXPECT_TRUE(
      has(text, R"(pushhub_deliveries_total{hub="we\"ird",platform="fcm",outcome="Success"} 1)"));
  EXPECT_EQ(text.find("outcome=\"Throttled\""), std::string::npos);  // nothing counted: no line
  EXPECT_TRUE(
      has(text, R"(pushhub_retries_total{hub="shop",platform="wns",reason="Throttled"} 4)"));
  EXPECT_TRUE(has(text, R"(pushhub_deliveries_in_flight{hub="shop",platform="apns"} 7)"));
  EXPECT_TRUE(has(text, R"(pushhub_provider_connections{hub="shop",platform="apns"} 2)"));
  EXPECT_TRUE(
      has(text, R"(pushhub_provider_latency_seconds_bucket{platform="apns",le="0.001"} 0)"));
  EXPECT_TRUE(
      has(text, R"(pushhub_provider_latency_seconds_bucket{platform="apns",le="0.0025"} 1)"));
  EXPECT_TRUE(has(text, R"(pushhub_provider_latency_seconds_bucket{platform="apns",le="0.05"} 2)"));
  EXPECT_TRUE(has(text, R"(pushhub_provider_latency_seconds_bucket{platform="apns",le="+Inf"} 2)"));
  EXPECT_TRUE(has(text, R"(pushhub_provider_latency_seconds_count{platform="apns"} 2)"));
  EXPECT_TRUE(has(text, "pushhub_workers 3"));
  EXPECT_TRUE(has(text, "pushhub_workers_responsive 1"));
  EXPECT_TRUE(has(text, R"(pushhub_queue_jobs{state="running"} 2)"));
  EXPECT_TRUE(has(text, R"(pushhub_queue_jobs{state="waiting"} 3)"));
  EXPECT_TRUE(has(text, R"(pushhub_queue_hub_jobs{hub="shop"} 5)"));
  EXPECT_TRUE(has(text, "pushhub_queue_scheduled 9"));
  auto age = text.find("\npushhub_queue_oldest_job_age_seconds ");
  ASSERT_NE(age, std::string::npos);
  double seconds = std::stod(text.substr(age + 38));
  EXPECT_GE(seconds, 90.0);
  EXPECT_LT(seconds, 3600.0);

  // Without the queue (Redis did not answer) the counters are still there.
  s.queue.reset();
  text = renderPrometheus(s);
  EXPECT_EQ(text.find("pushhub_queue_jobs"), std::string::npos);
  EXPECT_NE(text.find("pushhub_jobs_started_total 5"), std::string::npos);
}

TEST(StatsProtoTest, KeepsOneHubWhenAskedAndMergesItsQueue) {
  InstanceSnapshot s;
  s.workers = 1;
  WorkerView view;
  view.redis_connected = true;
  view.hubs["Shop"][1].deliveries[outcomeIndex("Success")] = 3;
  view.hubs["Shop"][1].retries[outcomeIndex("PnsUnavailable")] = 2;
  view.hubs["other"][0].deliveries[outcomeIndex("Success")] = 1;
  view.hubs["idle"][0] = RouteCounters{};  // nothing happened: no route listed
  s.add(std::move(view));
  registry::QueueStats q;
  q.jobs = 2;
  q.hubs["Shop"] = {2, 1000};
  s.queue = q;

  v1::Stats all = toProto(s, "");
  EXPECT_EQ(all.workers_responsive(), 1u);
  EXPECT_EQ(all.queue().jobs(), 2u);
  ASSERT_EQ(all.hubs_size(), 3);
  v1::Stats shop = toProto(s, "shop");  // hub names match case-insensitively
  ASSERT_EQ(shop.hubs_size(), 1);
  EXPECT_EQ(shop.hubs(0).hub(), "Shop");
  EXPECT_EQ(shop.hubs(0).queued_jobs(), 2u);
  ASSERT_EQ(shop.hubs(0).routes_size(), 1);
  EXPECT_EQ(shop.hubs(0).routes(0).platform(), "fcm");
  EXPECT_EQ(shop.hubs(0).routes(0).deliveries().at("Success"), 3u);
  EXPECT_EQ(shop.hubs(0).routes(0).retries().at("PnsUnavailable"), 2u);
  ASSERT_EQ(shop.latency_size(), 3);
  EXPECT_EQ(shop.latency(0).counts_size(), shop.latency(0).upper_bounds_size() + 1);

  s.queue.reset();
  s.queue_error = "Redis did not answer within 2 s";
  EXPECT_EQ(toProto(s, "").queue().error(), "Redis did not answer within 2 s");
}

}  // namespace
}  // namespace pushhub::gateway
