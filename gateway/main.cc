// pushhubd: the pushhub daemon. Usage: pushhubd --config FILE
#include <csignal>
#include <cstring>
#include <iostream>

#include "base/log.h"
#include "gateway/config.h"
#include "gateway/server.h"
#include "providers/common/tls.h"

int main(int argc, char** argv) {
  // Before anything allocates through OpenSSL (see tls.h); without it TLS only costs more.
  const bool lean_openssl_frees = pushhub::providers::skipNullFreesInOpenSsl();
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    if ((!std::strcmp(argv[i], "--config") || !std::strcmp(argv[i], "-c")) && i + 1 < argc) {
      config_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::cout << "usage: pushhubd --config FILE\n"
                   "  Runs the pushhub daemon; see docs/CONFIG.md for the file's keys.\n"
                   "  PUSHHUB_LOG_LEVEL=debug|info|warn sets the log level.\n";
      return 0;
    } else {
      std::cerr << "pushhubd: unknown argument '" << argv[i] << "' (try --help)\n";
      return 2;
    }
  }
  if (config_path.empty()) {
    std::cerr << "pushhubd: --config FILE is required\n";
    return 2;
  }
  auto config = pushhub::gateway::loadConfig(config_path);
  if (!config) {
    std::cerr << "pushhubd: " << config.error().message << "\n";
    return 2;
  }

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  if (!lean_openssl_frees) {
    pushhub::log::get("gateway")->debug(
        "OpenSSL allocated before main(): its default allocator stays");
  }

  pushhub::gateway::Server server(std::move(*config));
  if (auto ok = server.start(); !ok) {
    std::cerr << "pushhubd: " << ok.error().message << "\n";
    server.stop(std::chrono::milliseconds(0));
    return 1;
  }
  int received = 0;
  sigwait(&signals, &received);
  pushhub::log::get("gateway")->info("received {}, shutting down", strsignal(received));
  server.stop();
  return 0;
}
