#pragma once
// Percent-encoding, as browsers and Azure's SDKs write it. Pure functions, any thread.

#include <string>
#include <string_view>

namespace pushhub::url {

// JavaScript's encodeURIComponent: every byte but A-Z a-z 0-9 - _ . ! ~ * ' ( ) as %XX
// (upper-case hex).
std::string encodeComponent(std::string_view text);

// Decodes %XX. A '%' not followed by two hex digits stays as it is, so any input decodes. With
// `plus_is_space` (query strings and forms) '+' is a space; a path segment keeps its '+'.
std::string decode(std::string_view text, bool plus_is_space = true);

}  // namespace pushhub::url
