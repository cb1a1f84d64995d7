// export and import: a hub's installations and registrations as JSON lines (one
// pushhub.v1.Installation per line, proto field names), streamed a page or a batch at a time so
// memory stays constant whatever the hub's size.
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "tools/pushhubctl/cli.h"

namespace pushhubctl {
namespace {

// Calls `call` until it succeeds or fails for good: UNAVAILABLE (Redis or pushhubd restarting)
// and DEADLINE_EXCEEDED are retried 5 times, a second apart. Every write here is
// create-or-replace and every read a page, so a retry is always safe.
template <typename Call>
grpc::Status withRetries(Call call) {
  grpc::Status status;
  for (int attempt = 0; attempt < 6; ++attempt) {
    status = call();
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return status;
}

// "installations[7].tags[0]: ..." -> 7; nullopt when the message names no installation.
std::optional<size_t> refusedIndex(const std::string& message) {
  static const std::string kPrefix = "installations[";
  if (message.rfind(kPrefix, 0) != 0) return std::nullopt;
  size_t end = message.find(']');
  if (end == std::string::npos) return std::nullopt;
  try {
    return std::stoul(message.substr(kPrefix.size(), end - kPrefix.size()));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

struct Line {
  size_t number;
  v1::Installation installation;
};

struct ImportTotals {
  size_t stored = 0;
  size_t refused = 0;
};

// Stores one batch; a line the hub refuses is reported with its reason and left out, and the rest
// go again (a batch is all or nothing).
void storeBatch(Client& client, std::vector<Line>& batch, ImportTotals& totals) {
  while (!batch.empty()) {
    v1::BatchCreateOrUpdateInstallationsRequest request;
    request.set_hub(client.hub());
    for (const auto& line : batch) *request.add_installations() = line.installation;
    v1::BatchCreateOrUpdateInstallationsResponse response;
    grpc::Status status = withRetries([&] {
      grpc::ClientContext context;
      client.prepare(context);
      return client.stub().BatchCreateOrUpdateInstallations(&context, request, &response);
    });
    if (status.ok()) {
      totals.stored += batch.size();
      batch.clear();
      return;
    }
    auto index = refusedIndex(status.error_message());
    if (status.error_code() != grpc::StatusCode::INVALID_ARGUMENT || !index ||
        *index >= batch.size()) {
      check(status);  // not about one line: stop here; a re-run picks up from the start
    }
    const std::string& message = status.error_message();
    std::cerr << "line " << batch[*index].number
              << ": refused: " << message.substr(message.find('.') + 1) << "\n";
    ++totals.refused;
    batch.erase(batch.begin() + static_cast<std::ptrdiff_t>(*index));
  }
}

}  // namespace

int exportCommand(Client& client, const Args& args) {
  long page_size = args.number("--page-size", 1000, 1, 1000);
  std::string token;
  size_t written = 0;
  do {
    v1::ListInstallationsRequest request;
    request.set_hub(client.hub());
    request.set_page_size(static_cast<int>(page_size));
    request.set_page_token(token);
    v1::ListInstallationsResponse page;
    check(withRetries([&] {
      grpc::ClientContext context;
      client.prepare(context);
      return client.stub().ListInstallations(&context, request, &page);
    }));
    for (auto& installation : *page.mutable_installations()) {
      // What the store computes is left out: an import writes the rest.
      installation.clear_last_update();
      installation.clear_expired();
      std::cout << toJson(installation) << "\n";
    }
    written += static_cast<size_t>(page.installations_size());
    token = page.next_page_token();
  } while (!token.empty());
  std::cout.flush();
  std::cerr << "exported " << written << " installations and registrations of " << client.hub()
            << "\n";
  return std::cout.good() ? 0 : 1;
}

int importCommand(Client& client, const Args& args) {
  long batch_size = args.number("--batch", 500, 1, 1000);
  std::ifstream file;
  std::string path = args.get("--file", "-");
  if (path != "-") {
    file.open(path);
    if (!file) die("--file: cannot read " + path);
  }
  std::istream& in = path == "-" ? std::cin : file;
  ImportTotals totals;
  std::vector<Line> batch;
  std::unordered_set<std::string> in_batch;  // a batch takes each id once: a repeat flushes first
  std::string text;
  for (size_t number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    Line line{number, {}};
    google::protobuf::util::JsonParseOptions options;
    auto parsed = google::protobuf::util::JsonStringToMessage(text, &line.installation, options);
    if (!parsed.ok()) {
      std::cerr << "line " << number
                << ": refused: not a pushhub.v1.Installation in JSON: " << parsed.message() << "\n";
      ++totals.refused;
      continue;
    }
    std::string key =
        (line.installation.has_registration() ? "r:" : "i:") + line.installation.installation_id();
    if (!in_batch.insert(key).second || batch.size() == static_cast<size_t>(batch_size)) {
      storeBatch(client, batch, totals);
      in_batch = {key};
    }
    batch.push_back(std::move(line));
  }
  storeBatch(client, batch, totals);
  std::cerr << "imported " << totals.stored << ", refused " << totals.refused << "\n";
  return totals.refused == 0 ? 0 : 1;
}

}  // namespace pushhubctl
