#include "core/bytes_elements.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace torchbricks {

absl::StatusOr<std::vector<absl::string_view>> SplitBytesElements(absl::string_view data,
                                                                  absl::string_view tensor_name) {
  std::vector<absl::string_view> elements;
  size_t offset = 0;
  while (offset < data.size()) {
    if (data.size() - offset < 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "BYTES tensor '", tensor_name, "': element ", elements.size(),
          " has a cut-off length prefix (each element needs a 4-byte little-endian length)"));
    }
    const auto* prefix = reinterpret_cast<const unsigned char*>(data.data() + offset);
    const uint32_t length = static_cast<uint32_t>(prefix[0]) |
                            static_cast<uint32_t>(prefix[1]) << 8 |
                            static_cast<uint32_t>(prefix[2]) << 16 |
                            static_cast<uint32_t>(prefix[3]) << 24;
    offset += 4;
    if (length > data.size() - offset) {
      return absl::InvalidArgumentError(absl::StrCat(
          "BYTES tensor '", tensor_name, "': element ", elements.size(), " claims ", length,
          " bytes but only ", data.size() - offset, " remain"));
    }
    elements.push_back(data.substr(offset, length));
    offset += length;
  }
  return elements;
}

void AppendBytesElement(absl::string_view element, std::string* data) {
  const uint32_t length = static_cast<uint32_t>(element.size());
  const char prefix[4] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8 & 0xff),
                          static_cast<char>(length >> 16 & 0xff),
                          static_cast<char>(length >> 24 & 0xff)};
  data->append(prefix, 4);
  data->append(element.data(), element.size());
}

}  // namespace torchbricks
