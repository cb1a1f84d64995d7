#pragma once
// Test helpers that start real processes on loopback: a child process owned by an RAII handle,
// a free TCP port, a redis-server on a free port, and the throwaway PKI of scripts/make-certs.sh.
// Every helper here binds only to 127.0.0.1 and cleans up in its destructor.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace pushhub::testing {

// A free TCP port on 127.0.0.1 (bound to port 0 and released; good enough for tests).
uint16_t freePort();

// Blocks until 127.0.0.1:port accepts a TCP connection or `timeout` passes; returns success.
bool waitForPort(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(20));

// A fresh empty directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A child process started with execvp; SIGTERM then SIGKILL on destruction. stdout and stderr go
// to `log_file` when given (kept for post-mortem), else are inherited.
class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, const std::filesystem::path& log_file = {});
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends SIGTERM and waits up to `timeout`; returns the exit status (or -1 if it had to kill).
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

// A real redis-server on a free loopback port, with no persistence, for one test fixture.
// The port is picked free and, as another process may take it before redis-server binds it, a
// start that fails is retried on another port; it is ready when it logs so.
class RedisNode {
 public:
  // `extra` are redis-server options ("--cluster-enabled", "yes", ...).
  explicit RedisNode(std::vector<std::string> extra = {});
  uint16_t port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  bool running() { return process_ && process_->running(); }
  void kill();  // SIGKILL, as a crash
  // SIGKILL, then a new redis-server on the same port and data directory (what it persisted,
  // with "--appendonly yes" among `extra`, is loaded again). Ready when it returns.
  void crashAndRestart();
  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  bool start(uint16_t port);

  TempDir dir_;
  std::vector<std::string> extra_;
  uint16_t port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

// redis-cli -p <port> <args...>; its stdout (trailing newline removed). Throws when it fails.
std::string redisCli(uint16_t port, const std::vector<std::string>& args);

using RedisServer = RedisNode;

// Paths of the test PKI made by scripts/make-certs.sh (CA, 127.0.0.1 leaf, APNs .p8 key, FCM
// service-account RSA key).
struct TestPki {
  std::filesystem::path dir;
  std::filesystem::path ca() const { return dir / "ca.pem"; }
  std::filesystem::path cert() const { return dir / "server.pem"; }
  std::filesystem::path key() const { return dir / "server.key"; }
  std::filesystem::path apnsKey() const { return dir / "apns.p8"; }
  std::filesystem::path apnsPublicKey() const { return dir / "apns-pub.pem"; }
  std::filesystem::path fcmKey() const { return dir / "fcm.key"; }
  std::filesystem::path fcmPublicKey() const { return dir / "fcm-pub.pem"; }
};
TestPki makeTestPki(const std::filesystem::path& dir);

// Absolute path of a built binary (build/bin/<name>) or a source file (repo/<relative>).
std::filesystem::path binaryPath(const std::string& name);
std::filesystem::path sourcePath(const std::string& relative);

}  // namespace pushhub::testing
