#pragma once
// One named spdlog logger per component ("gateway", "h2", "apns", "registry", ...), created on
// first use and sharing one sink, so `PUSHHUB_LOG_LEVEL` and the format apply to all of them.
// Never pass a secret (key, token, JWT, SAS signature) to a log call.

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace pushhub::log {

// Returns the logger for `component`; safe to call from any thread.
std::shared_ptr<spdlog::logger> get(const std::string& component);

// Sets the level of every logger from a name ("debug", "info", "warn", ...).
void setLevel(const std::string& level);

}  // namespace pushhub::log
