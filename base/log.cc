#include "base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <mutex>

namespace pushhub::log {
namespace {

spdlog::level::level_enum initialLevel() {
  const char* env = std::getenv("PUSHHUB_LOG_LEVEL");
  return env ? spdlog::level::from_str(env) : spdlog::level::info;
}

}  // namespace

std::shared_ptr<spdlog::logger> get(const std::string& component) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (auto existing = spdlog::get(component)) return existing;
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(component, sink);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  logger->set_level(initialLevel());
  spdlog::register_logger(logger);
  return logger;
}

void setLevel(const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); }

}  // namespace pushhub::log
