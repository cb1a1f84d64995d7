#pragma once
// Drives an io_context until a condition holds, bounded in time, for tests of asynchronous code
// that runs on the test's own thread.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>

namespace pushhub::testing {

// Runs `ioc` until `done()` or `limit` passes (a bound against hangs, not a timing assertion);
// returns done().
inline bool runUntil(boost::asio::io_context& ioc, const std::function<bool()>& done,
                     std::chrono::seconds limit = std::chrono::seconds(60)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    ioc.run_for(std::chrono::milliseconds(5));
    if (ioc.stopped()) {
      ioc.restart();
    }
  }
  return done();
}

}  // namespace pushhub::testing
