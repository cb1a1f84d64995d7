#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef PUSHHUB_BINARY_DIR
#error "PUSHHUB_BINARY_DIR must be defined by the build"
#endif

namespace pushhub::testing {
namespace fs = std::filesystem;

uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("freePort: bind failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool waitForPort(uint16_t port, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/pushhub-test-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

Subprocess::Subprocess(std::vector<std::string> argv, const fs::path& log_file) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    if (!log_file.empty()) {
      int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
    }
    ::setpgid(0, 0);
    // Dies with the test, even when the test is killed and never runs its destructors.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
}

bool Subprocess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
    return false;
  }
  return true;
}

int Subprocess::stop(std::chrono::milliseconds timeout) {
  if (!running()) return exit_status_;
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running()) return exit_status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return -1;
}

Subprocess::~Subprocess() { stop(std::chrono::seconds(5)); }

namespace {
std::string quote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

RedisNode::RedisNode(std::vector<std::string> extra) : extra_(std::move(extra)) {
  // A cluster node also binds port + 10000 (its bus), so the port must be at most 55535.
  for (int attempt = 0; attempt < 20; ++attempt) {
    uint16_t port = freePort();
    if (port > 55535) continue;
    // Exited: most likely the port (or its bus port) was taken meanwhile; try another.
    if (start(port)) return;
  }
  throw std::runtime_error("redis-server did not start on any port");
}

bool RedisNode::start(uint16_t port) {
  std::vector<std::string> argv{"redis-server",
                                "--port",
                                std::to_string(port),
                                "--bind",
                                "127.0.0.1",
                                "--save",
                                "",
                                "--appendonly",
                                "no",
                                "--dir",
                                dir_.path().string()};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  auto log = dir_.path() / ("redis-" + std::to_string(port) + ".log");
  std::filesystem::remove(log);
  auto process = std::make_unique<Subprocess>(argv, log);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && process->running() &&
         slurp(log).find("Ready to accept connections") == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!process->running() || slurp(log).find("Ready to accept connections") == std::string::npos) {
    return false;
  }
  port_ = port;
  process_ = std::move(process);
  return true;
}

void RedisNode::kill() {
  if (process_ && process_->running()) ::kill(process_->pid(), SIGKILL);
  process_.reset();
}

void RedisNode::crashAndRestart() {
  kill();
  // The port was ours a moment ago; another process taking it in between is retried for a while.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (start(port_)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("redis-server did not restart on port " + std::to_string(port_));
}

std::string redisCli(uint16_t port, const std::vector<std::string>& args) {
  std::string cmd = "redis-cli -h 127.0.0.1 -p " + std::to_string(port);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  int status = ::pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("redis-cli " + std::to_string(port) + " failed: " + out);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

TestPki makeTestPki(const fs::path& dir) {
  std::string cmd = sourcePath("scripts/make-certs.sh").string() + " '" + dir.string() + "'";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make-certs.sh failed");
  return TestPki{dir};
}

fs::path binaryPath(const std::string& name) { return fs::path(PUSHHUB_BINARY_DIR) / "bin" / name; }
fs::path sourcePath(const std::string& relative) { return fs::path(PUSHHUB_SOURCE_DIR) / relative; }

}  // namespace pushhub::testing
