#include "gateway/store/sql.h"

#include "absl/strings/ascii.h"

namespace fhirgw::gateway {

std::string RenderPlaceholders(absl::string_view sql, char prefix) {
  std::string out(sql);
  for (size_t i = 0; i + 1 < out.size(); ++i) {
    if (out[i] == '?' && absl::ascii_isdigit(static_cast<unsigned char>(out[i + 1]))) {
      out[i] = prefix;
    }
  }
  return out;
}

}  // namespace fhirgw::gateway
