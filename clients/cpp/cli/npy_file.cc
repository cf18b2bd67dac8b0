#include "clients/cpp/cli/npy_file.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "clients/cpp/infer_tensors.h"

namespace torchbricks::client {
namespace {

constexpr absl::string_view kMagic = "\x93NUMPY";

// numpy's type code (kind + item size, without the byte order) of each datatype.
constexpr std::pair<absl::string_view, absl::string_view> kTypeCodes[] = {
    {"BOOL", "b1"},  {"UINT8", "u1"},  {"INT8", "i1"},   {"UINT16", "u2"},
    {"INT16", "i2"}, {"FP16", "f2"},   {"UINT32", "u4"}, {"INT32", "i4"},
    {"FP32", "f4"},  {"UINT64", "u8"}, {"INT64", "i8"},  {"FP64", "f8"}};

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("not a supported .npy file: ", what));
}

// The value text of `key` in the header dict, up to the next top-level ',' or '}'.
absl::StatusOr<absl::string_view> DictValue(absl::string_view header, absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "'");
  size_t at = header.find(quoted);
  if (at == absl::string_view::npos) return Invalid(absl::StrCat("the header has no ", quoted));
  at = header.find(':', at + quoted.size());
  if (at == absl::string_view::npos) return Invalid(absl::StrCat(quoted, " has no value"));
  size_t end = at + 1;
  int depth = 0;
  while (end < header.size()) {
    const char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
    ++end;
  }
  return absl::StripAsciiWhitespace(header.substr(at + 1, end - at - 1));
}

absl::StatusOr<std::vector<int64_t>> ParseShape(absl::string_view text) {
  if (!absl::ConsumePrefix(&text, "(") || !absl::ConsumeSuffix(&text, ")")) {
    return Invalid(absl::StrCat("shape ", text, " is not a tuple"));
  }
  std::vector<int64_t> shape;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t dim = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &dim) || dim < 0) {
      return Invalid(absl::StrCat("shape entry '", part, "' is not a size"));
    }
    shape.push_back(dim);
  }
  return shape;
}

void SwapEachElement(std::string& data, size_t item_size) {
  for (size_t at = 0; at + item_size <= data.size(); at += item_size) {
    std::reverse(data.begin() + at, data.begin() + at + item_size);
  }
}

// float32 bit patterns of BF16 elements (the BF16 bits are the upper half of a float32).
std::string WidenBf16(absl::string_view data) {
  std::string widened(data.size() * 2, '\0');
  for (size_t i = 0; i + 2 <= data.size(); i += 2) {
    widened[2 * i + 2] = data[i];
    widened[2 * i + 3] = data[i + 1];
  }
  return widened;
}

}  // namespace

absl::StatusOr<NpyArray> ParseNpy(absl::string_view contents) {
  if (contents.substr(0, kMagic.size()) != kMagic || contents.size() < 10) {
    return Invalid("it does not start with numpy's magic string");
  }
  const int major = static_cast<unsigned char>(contents[6]);
  size_t header_length = 0;
  size_t header_start = 0;
  if (major == 1) {
    header_length = static_cast<unsigned char>(contents[8]) |
                    static_cast<size_t>(static_cast<unsigned char>(contents[9])) << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (contents.size() < 12) return Invalid("the header length is cut off");
    for (int i = 3; i >= 0; --i) {
      header_length = header_length << 8 | static_cast<unsigned char>(contents[8 + i]);
    }
    header_start = 12;
  } else {
    return Invalid(absl::StrCat("format version ", major, " is unknown"));
  }
  if (contents.size() - header_start < header_length) return Invalid("the header is cut off");
  const absl::string_view header = contents.substr(header_start, header_length);

  absl::StatusOr<absl::string_view> descr = DictValue(header, "descr");
  if (!descr.ok()) return descr.status();
  absl::string_view type = *descr;
  if (!absl::ConsumePrefix(&type, "'") || !absl::ConsumeSuffix(&type, "'") || type.empty()) {
    return Invalid(absl::StrCat("descr ", *descr, " is not a plain element type"));
  }
  const char order = type[0];
  const absl::string_view code = type.substr(1);
  NpyArray array;
  for (const auto& [datatype, known] : kTypeCodes) {
    if (known == code) array.datatype = std::string(datatype);
  }
  if (array.datatype.empty() || (order != '<' && order != '>' && order != '|' && order != '=')) {
    return Invalid(absl::StrCat("element type ", *descr,
                                " has no protocol datatype (object, string and structured arrays "
                                "cannot be sent)"));
  }

  absl::StatusOr<absl::string_view> fortran = DictValue(header, "fortran_order");
  if (!fortran.ok()) return fortran.status();
  if (*fortran != "False") {
    return Invalid("the array is Fortran-ordered; save np.ascontiguousarray(a) instead");
  }
  absl::StatusOr<absl::string_view> shape_text = DictValue(header, "shape");
  if (!shape_text.ok()) return shape_text.status();
  absl::StatusOr<std::vector<int64_t>> shape = ParseShape(*shape_text);
  if (!shape.ok()) return shape.status();
  array.shape = *std::move(shape);

  const int64_t count = ElementCount(array.shape);
  const int64_t item_size = DatatypeByteSize(array.datatype);
  const absl::string_view data = contents.substr(header_start + header_length);
  // Compared by division: count * item_size could wrap around for a hostile shape.
  if (count < 0 || item_size <= 0 || data.size() % item_size != 0 ||
      static_cast<uint64_t>(count) != data.size() / item_size) {
    return Invalid(absl::StrCat("shape (", absl::StrJoin(array.shape, ", "), ") of ", code,
                                " needs ", count, " elements of ", item_size,
                                " bytes; the file has ", data.size(), " bytes of data"));
  }
  array.data = std::string(data);
  if (order == '>' && item_size > 1) SwapEachElement(array.data, static_cast<size_t>(item_size));
  return array;
}

absl::StatusOr<std::string> SerializeNpy(const NpyArray& array) {
  std::string datatype = array.datatype;
  std::string data_storage;
  const std::string* data = &array.data;
  if (datatype == "BF16") {
    data_storage = WidenBf16(array.data);
    data = &data_storage;
    datatype = "FP32";
  }
  absl::string_view code;
  for (const auto& [name, known] : kTypeCodes) {
    if (name == datatype) code = known;
  }
  if (code.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("datatype ", array.datatype, " cannot be written as a .npy file"));
  }
  const int64_t count = ElementCount(array.shape);
  if (count < 0 || static_cast<uint64_t>(count) * DatatypeByteSize(datatype) != data->size()) {
    return absl::InvalidArgumentError(absl::StrCat(data->size(), " bytes are not a ",
                                                   array.datatype, " array of shape [",
                                                   absl::StrJoin(array.shape, ", "), "]"));
  }
  std::string shape = absl::StrJoin(array.shape, ", ");
  if (array.shape.size() == 1) shape += ",";
  std::string header = absl::StrCat("{'descr': '", code[1] == '1' ? "|" : "<", code,
                                    "', 'fortran_order': False, 'shape': (", shape, "), }");
  // numpy pads the header with spaces and a newline so that the data starts on a multiple
  // of 64 bytes.
  const size_t unpadded = kMagic.size() + 4 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string file(kMagic);
  file.push_back('\x01');
  file.push_back('\x00');
  file.push_back(static_cast<char>(header.size() & 0xff));
  file.push_back(static_cast<char>(header.size() >> 8));
  file += header;
  file += *data;
  return file;
}

}  // namespace torchbricks::client
