#include "core/graph/bytes_elements.h"

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
    const uint32_t length =
        GetBytesLength(reinterpret_cast<const unsigned char*>(data.data() + offset));
    offset += 4;
    if (length > data.size() - offset) {
      return absl::InvalidArgumentError(
          absl::StrCat("BYTES tensor '", tensor_name, "': element ", elements.size(), " claims ",
                       length, " bytes but only ", data.size() - offset, " remain"));
    }
    elements.push_back(data.substr(offset, length));
    offset += length;
  }
  return elements;
}

void AppendBytesElement(absl::string_view element, std::string* data) {
  unsigned char prefix[4];
  PutBytesLength(static_cast<uint32_t>(element.size()), prefix);
  data->append(reinterpret_cast<const char*>(prefix), 4);
  data->append(element.data(), element.size());
}

void PutBytesLength(uint32_t length, unsigned char* bytes) {
  for (int b = 0; b < 4; ++b) bytes[b] = static_cast<unsigned char>(length >> (8 * b) & 0xff);
}

uint32_t GetBytesLength(const unsigned char* bytes) {
  uint32_t length = 0;
  for (int b = 0; b < 4; ++b) length |= static_cast<uint32_t>(bytes[b]) << (8 * b);
  return length;
}

}  // namespace torchbricks
