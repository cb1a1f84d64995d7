#pragma once
// What the tests that start the real pns-mock binary share: running command-line tools (nghttp,
// h2load, pns-mock's helpers), pns-mock itself on ports it picks, and its control API.

#include <gtest/gtest.h>

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace pushhub::mock {

// Runs a shell command and returns its stdout+stderr.
inline std::string runCommand(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    return out;
  }
  std::array<char, 4096> buf;
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) {
    out.append(buf.data(), n);
  }
  ::pclose(p);
  return out;
}

// True when the command `name` is on the PATH.
inline bool haveTool(const std::string& name) {
  return runCommand("command -v " + name + " >/dev/null && echo yes").find("yes") !=
         std::string::npos;
}

// `text` without its trailing line breaks (the one line a helper command prints).
inline std::string trimNewlines(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  return text;
}

// The pns-mock binary on loopback ports it picks, stopped on destruction. Used from the test's
// thread only.
class PnsMockProcess {
 public:
  // Starts pns-mock with `args` (the binary path and --ports-file are added; files go to `dir`,
  // which must outlive this) and waits up to 10 s for it to write its ports file. Check
  // started() before use.
  PnsMockProcess(const std::filesystem::path& dir, std::vector<std::string> args)
      : log_(dir / "mock.log"), process_(argv(dir / "ports.txt", std::move(args)), log_) {
    std::filesystem::path ports = dir / "ports.txt";
    for (int i = 0; i < 500 && !std::filesystem::exists(ports); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::ifstream in(ports);
    std::string line;
    while (std::getline(in, line)) {
      size_t eq = line.find('=');
      if (eq != std::string::npos) {
        ports_[line.substr(0, eq)] = static_cast<uint16_t>(std::stoi(line.substr(eq + 1)));
      }
    }
  }

  // True once pns-mock has written its ports file.
  bool started() const { return !ports_.empty(); }
  // The port written as "<name>_port=N" ("apns", "fcm", "wns", "control"); 0 when none was.
  uint16_t port(const std::string& name) const {
    auto it = ports_.find(name + "_port");
    return it == ports_.end() ? 0 : it->second;
  }
  // What pns-mock logged so far, for failure messages.
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  static std::vector<std::string> argv(const std::filesystem::path& ports,
                                       std::vector<std::string> args) {
    // A ports file left by an earlier process would be read as this one's.
    std::filesystem::remove(ports);
    args.insert(args.begin(), testing::binaryPath("pns-mock").string());
    args.push_back("--ports-file");
    args.push_back(ports.string());
    return args;
  }

  std::filesystem::path log_;
  testing::Subprocess process_;
  std::map<std::string, uint16_t> ports_;
};

// A request to pns-mock's control API on `port` that must answer 200; returns its JSON body
// ({} when empty).
inline boost::json::value controlCall(uint16_t port, const std::string& method,
                                      const std::string& target, const std::string& body = "") {
  testing::HttpResult r = testing::httpRequest(method, port, target, body);
  EXPECT_EQ(r.status, 200) << target << ": " << r.body;
  return boost::json::parse(r.body.empty() ? "{}" : r.body);
}

}  // namespace pushhub::mock
