#include "providers/common/http_message.h"

namespace pushhub::providers {

std::string_view Response::header(std::string_view lowercase_name) const {
  for (const Header& h : headers) {
    if (h.name == lowercase_name) {
      return h.value;
    }
  }
  return {};
}

}  // namespace pushhub::providers
