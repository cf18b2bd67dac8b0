#include "clients/cpp/cli/cli_files.h"

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "clients/cpp/cli/npy_file.h"

namespace torchbricks::client {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kPngSignature = "\x89PNG\r\n\x1a\n";

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

absl::Status WriteWholeFile(const fs::path& path, absl::string_view contents) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  file.close();
  if (!file) return absl::InternalError(absl::StrCat("cannot write '", path.string(), "'"));
  return absl::OkStatus();
}

bool IsImageFile(const std::string& path) {
  const std::string extension = absl::AsciiStrToLower(fs::path(path).extension().string());
  return extension == ".jpg" || extension == ".jpeg" || extension == ".png";
}

}  // namespace

absl::StatusOr<std::vector<InferInput>> ReadInputFiles(const std::vector<std::string>& specs) {
  std::vector<InferInput> inputs;
  std::map<std::string, std::vector<std::string>> images;  // input name -> encoded files
  for (const std::string& spec : specs) {
    const size_t equals = spec.find('=');
    if (equals == 0 || equals == std::string::npos || equals + 1 == spec.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--input takes NAME=FILE (a .npy, .jpg, .jpeg or .png file), not '", spec, "'"));
    }
    const std::string name = spec.substr(0, equals);
    const std::string path = spec.substr(equals + 1);
    const bool is_npy = absl::AsciiStrToLower(fs::path(path).extension().string()) == ".npy";
    if (!is_npy && !IsImageFile(path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "': '", path,
                       "' is neither a .npy file nor a .jpg, .jpeg or .png image"));
    }
    bool named_before = images.count(name) > 0;
    for (const InferInput& input : inputs) named_before = named_before || input.name == name;
    if (named_before && (is_npy || images.count(name) == 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", name, "' is given twice (only image files may be repeated to make a batch)"));
    }
    absl::StatusOr<std::string> contents = ReadWholeFile(path);
    if (!contents.ok()) return contents.status();
    if (!is_npy) {
      if (images.count(name) == 0) inputs.push_back({.name = name, .datatype = "BYTES"});
      images[name].push_back(*std::move(contents));
      continue;
    }
    absl::StatusOr<NpyArray> array = ParseNpy(*contents);
    if (!array.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "' (", path, "): ", array.status().message()));
    }
    inputs.push_back(InferInput::FromRaw(name, array->datatype, std::move(array->shape),
                                         std::move(array->data)));
  }
  for (InferInput& input : inputs) {
    if (const auto files = images.find(input.name); files != images.end()) {
      input = InferInput::OfElements(input.name, {static_cast<int64_t>(files->second.size())},
                                     files->second);
    }
  }
  return inputs;
}

absl::StatusOr<std::vector<WrittenOutput>> WriteOutputFiles(const InferResult& result,
                                                            const fs::path& directory) {
  std::error_code error;
  fs::create_directories(directory, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create '", directory.string(), "': ", error.message()));
  }
  std::vector<WrittenOutput> written;
  for (const InferOutput& output : result.outputs) {
    const std::string stem = absl::StrReplaceAll(output.name, {{"/", "."}});
    WrittenOutput files{.output = &output};
    if (output.shared_memory.has_value()) {
      written.push_back(std::move(files));  // nothing came back to write
      continue;
    }
    if (output.datatype == "BYTES") {
      absl::StatusOr<std::vector<std::string>> elements = output.Elements();
      if (!elements.ok()) return elements.status();
      for (size_t i = 0; i < elements->size(); ++i) {
        const std::string& element = (*elements)[i];
        const bool png = absl::StartsWith(element, kPngSignature);
        const fs::path path = directory / absl::StrCat(stem, "-", i, png ? ".png" : ".bin");
        if (absl::Status status = WriteWholeFile(path, element); !status.ok()) return status;
        files.files.push_back(path.string());
      }
    } else {
      absl::StatusOr<std::string> npy = SerializeNpy({output.datatype, output.shape, output.data});
      if (!npy.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("output '", output.name, "': ", npy.status().message()));
      }
      const fs::path path = directory / absl::StrCat(stem, ".npy");
      if (absl::Status status = WriteWholeFile(path, *npy); !status.ok()) return status;
      files.files.push_back(path.string());
    }
    written.push_back(std::move(files));
  }
  return written;
}

}  // namespace torchbricks::client
