#pragma once
// The console's page and its script and style, compiled into pushhubd from gateway/console/ by
// gateway/console/embed.cmake (nothing is fetched at run time).

#include <string_view>

namespace pushhub::gateway::console {

struct Asset {
  std::string_view name;  // the file's name: "index.html", "console.js", ...
  std::string_view content_type;
  std::string_view body;
};

// The asset of that name; null when there is none.
const Asset* findAsset(std::string_view name);

}  // namespace pushhub::gateway::console
