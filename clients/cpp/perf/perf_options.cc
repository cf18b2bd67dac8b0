#include "clients/cpp/perf/perf_options.h"

#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/command_line.h"
#include "base/status_macros.h"

namespace torchbricks::perf {

const char kPerfUsage[] =
    "usage: torchbricks-perf -m MODEL [flags]\n"
    "Measures throughput and latency of a TorchBricks Serve model (or any Open Inference\n"
    "Protocol v2 gRPC server with Triton's statistics) at a sweep of load levels.\n"
    "\n"
    "  -m, --model NAME                 the model (required)\n"
    "  -x, --model-version V            a version folder (default: the newest ready one)\n"
    "  -u, --url HOST:PORT              the server (default 127.0.0.1:8001)\n"
    "  -i, --protocol grpc              the only protocol spoken\n"
    "  -a, --async                      accepted: requests are always asynchronous\n"
    "  --stage INFERENCE|EXPORT         the stage requests run (default: the server's, "
    "INFERENCE)\n"
    "  --output NAME                    ask for this output (repeatable; default: the stage's\n"
    "                                   terminal outputs); runs only the bricks it needs\n"
    "  --concurrency-range S[:E[:T]]    closed loop: S, S+T, ... <= E requests outstanding\n"
    "                                   (default 1)\n"
    "  --request-rate-range S[:E[:T]]   open loop: S, S+T, ... <= E requests per second\n"
    "  --request-distribution constant|poisson   gaps between requests in open loop\n"
    "  --max-threads N                  client threads (default 4)\n"
    "  -b, --batch-size N               batch dimension of each request (default 1)\n"
    "  --input-data random|zero|FILE    input values; FILE is perf_analyzer's JSON format\n"
    "  -z                               the same as --input-data zero\n"
    "  --shape NAME:D1,D2,...           shape of an input with variable dimensions (no batch\n"
    "                                   dimension when the model batches); repeatable\n"
    "  --shared-memory none|system      send inputs and receive outputs through system\n"
    "                                   shared memory (server: --allow-client-shm true)\n"
    "  --output-shared-memory-size B    bytes reserved per output (default 102400)\n"
    "  -p, --measurement-interval MS    length of a measurement window (default 5000)\n"
    "  -s, --stability-percentage P     the last 3 windows agree within P% (default 10)\n"
    "  -r, --max-trials N               windows per level at most (default 10)\n"
    "  --request-timeout-ms MS          deadline of each request (default 60000)\n"
    "  -H NAME:VALUE                    request header (repeatable)\n"
    "  --ssl-grpc-use-ssl               TLS (implied by the files below)\n"
    "  --ssl-grpc-root-certifications-file FILE   PEM roots of the server's certificate\n"
    "  --ssl-grpc-private-key-file FILE           client key (mutual TLS)\n"
    "  --ssl-grpc-certificate-chain-file FILE     client certificate chain (mutual TLS)\n"
    "  -f, --latency-report-file FILE   write perf_analyzer's CSV, one row per level\n"
    "  --brick-csv FILE                 write the per-brick breakdown as CSV\n"
    "  --json FILE                      write a JSON summary (\"-\": stdout)\n"
    "  -v                               print every measurement window\n"
    "  -h, --help                       this text\n"
    "\n"
    "exit codes: 0 every level measured without a failed request; 1 a request or a\n"
    "statistics call failed, or shared memory could not be set up; 2 usage error (flags,\n"
    "input data that does not fit the model); 3 server unreachable, model unknown or not\n"
    "ready.\n";

namespace {

// Short flags and their long names, as perf_analyzer spells them; every one takes a value.
constexpr std::pair<const char*, const char*> kShortFlags[] = {
    {"-m", "--model"},      {"-x", "--model-version"},        {"-u", "--url"},
    {"-b", "--batch-size"}, {"-f", "--latency-report-file"},  {"-H", "--header"},
    {"-i", "--protocol"},   {"-p", "--measurement-interval"}, {"-s", "--stability-percentage"},
    {"-r", "--max-trials"}};

absl::Status Bad(absl::string_view flag, absl::string_view value, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat(flag, " takes ", want, ", not '", value, "'"));
}

// Rewrites `args` into "--flag value" pairs for SplitFlagValues: short flags to their long
// names, the value-less flags (-h, --help, -v, --ssl-grpc-use-ssl) to "--flag=true", -z to
// "--input-data=zero", and drops perf_analyzer's -a/--async (requests are always asynchronous).
absl::StatusOr<std::vector<std::string>> Normalize(absl::Span<const std::string> args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    for (const auto& [short_flag, long_flag] : kShortFlags) {
      if (arg == short_flag) arg = long_flag;
    }
    if (arg == "-h" || arg == "--help") {
      out.push_back("--help=true");
    } else if (arg == "-v") {
      out.push_back("--verbose=true");
    } else if (arg == "-z") {
      out.push_back("--input-data=zero");
    } else if (arg == "-a" || arg == "--async") {
      continue;
    } else if (arg == "--ssl-grpc-use-ssl") {
      const bool has_value =
          i + 1 < args.size() && (args[i + 1] == "true" || args[i + 1] == "false");
      out.push_back("--ssl-grpc-use-ssl=" + (has_value ? args[++i] : std::string("true")));
    } else if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    } else {
      out.push_back(std::move(arg));
      if (out.back().find('=') == std::string::npos && i + 1 < args.size()) {
        out.push_back(args[++i]);  // the value, whatever it looks like ("-1", "-")
      }
    }
  }
  return out;
}

// `levels`, or its error prefixed with the flag that gave the range.
absl::StatusOr<std::vector<double>> Named(const std::string& flag,
                                          absl::StatusOr<std::vector<double>> levels) {
  if (levels.ok()) return levels;
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", levels.status().message()));
}

absl::StatusOr<std::pair<std::string, std::vector<int64_t>>> ParseShape(const std::string& value) {
  const size_t colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Bad("--shape", value, "NAME:D1,D2,...");
  }
  std::vector<int64_t> dims;
  for (absl::string_view part : absl::StrSplit(value.substr(colon + 1), ',', absl::SkipEmpty())) {
    int64_t dim = 0;
    if (!absl::SimpleAtoi(part, &dim) || dim < 0) return Bad("--shape", value, "NAME:D1,D2,...");
    dims.push_back(dim);
  }
  return std::make_pair(value.substr(0, colon), std::move(dims));
}

absl::Status ApplyFlag(const std::string& flag, const std::string& value, PerfOptions& options,
                       bool& rate_given, bool& concurrency_given) {
  const auto positive_int = [&](auto& out) -> absl::Status {
    if (!absl::SimpleAtoi(value, &out) || out < 1) return Bad(flag, value, "a positive integer");
    return absl::OkStatus();
  };
  const auto boolean = [&](bool& out) -> absl::Status {
    if (value != "true" && value != "false") return Bad(flag, value, "true or false");
    out = value == "true";
    return absl::OkStatus();
  };
  if (flag == "--help") return boolean(options.help);
  if (flag == "--verbose") return boolean(options.verbose);
  if (flag == "--model") {
    options.model = value;
  } else if (flag == "--model-version") {
    options.model_version = value;
  } else if (flag == "--url") {
    options.client.url = value;
  } else if (flag == "--protocol") {
    if (value != "grpc") return Bad(flag, value, "grpc (the only protocol this tool speaks)");
  } else if (flag == "--stage") {
    options.stage = absl::AsciiStrToUpper(value);
    if (options.stage != "INFERENCE" && options.stage != "EXPORT") {
      return Bad(flag, value, "INFERENCE or EXPORT");
    }
  } else if (flag == "--output") {
    if (value.empty()) return Bad(flag, value, "an output name");
    options.outputs.push_back(value);
  } else if (flag == "--concurrency-range") {
    ASSIGN_OR_RETURN(options.levels, Named(flag, ParseLevelRange(value, /*whole=*/true)));
    options.mode = LoadMode::kConcurrency;
    concurrency_given = true;
  } else if (flag == "--request-rate-range") {
    ASSIGN_OR_RETURN(options.levels, Named(flag, ParseLevelRange(value, /*whole=*/false)));
    options.mode = LoadMode::kRequestRate;
    rate_given = true;
  } else if (flag == "--request-distribution") {
    if (value == "constant") {
      options.distribution = RequestDistribution::kConstant;
    } else if (value == "poisson") {
      options.distribution = RequestDistribution::kPoisson;
    } else {
      return Bad(flag, value, "constant or poisson");
    }
  } else if (flag == "--max-threads") {
    return positive_int(options.max_threads);
  } else if (flag == "--batch-size") {
    return positive_int(options.batch_size);
  } else if (flag == "--input-data") {
    if (value.empty()) return Bad(flag, value, "random, zero or a JSON file");
    options.input_data = value;
  } else if (flag == "--shape") {
    ASSIGN_OR_RETURN(auto shape, ParseShape(value));
    options.shapes[shape.first] = std::move(shape.second);
  } else if (flag == "--shared-memory") {
    if (value == "none") {
      options.shared_memory = SharedMemoryKind::kNone;
    } else if (value == "system") {
      options.shared_memory = SharedMemoryKind::kSystem;
    } else {
      return Bad(flag, value, "none or system (cuda is not supported)");
    }
  } else if (flag == "--output-shared-memory-size") {
    return positive_int(options.output_shared_memory_size);
  } else if (flag == "--measurement-interval") {
    int64_t ms = 0;
    RETURN_IF_ERROR(positive_int(ms));
    options.measurement_interval = absl::Milliseconds(ms);
  } else if (flag == "--stability-percentage") {
    if (!absl::SimpleAtod(value, &options.stability_percentage) ||
        !(options.stability_percentage > 0)) {
      return Bad(flag, value, "a positive percentage");
    }
  } else if (flag == "--max-trials") {
    return positive_int(options.max_trials);
  } else if (flag == "--request-timeout-ms") {
    int64_t ms = 0;
    RETURN_IF_ERROR(positive_int(ms));
    options.client.timeout = absl::Milliseconds(ms);
  } else if (flag == "--header") {
    const size_t colon = value.find(':');
    if (colon == std::string::npos || colon == 0) return Bad(flag, value, "NAME:VALUE");
    // gRPC metadata keys are lower case; perf_analyzer users write "Authorization:...".
    options.client.headers.emplace_back(
        absl::AsciiStrToLower(value.substr(0, colon)),
        std::string(absl::StripLeadingAsciiWhitespace(absl::string_view(value).substr(colon + 1))));
  } else if (flag == "--ssl-grpc-use-ssl") {
    return boolean(options.client.use_tls);
  } else if (flag == "--ssl-grpc-root-certifications-file") {
    options.client.root_certificates_file = value;
  } else if (flag == "--ssl-grpc-private-key-file") {
    options.client.private_key_file = value;
  } else if (flag == "--ssl-grpc-certificate-chain-file") {
    options.client.certificate_chain_file = value;
  } else if (flag == "--latency-report-file") {
    options.latency_report_file = value;
  } else if (flag == "--brick-csv") {
    options.brick_csv_file = value;
  } else if (flag == "--json") {
    options.json_file = value;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<double>> ParseLevelRange(const std::string& range, bool whole) {
  const std::vector<std::string> parts = absl::StrSplit(range, ':');
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("'", range, "' is not START[:END[:STEP]] of positive ",
                     whole ? "integers" : "numbers", " with END >= START"));
  };
  if (parts.size() > 3) return bad();
  double numbers[3] = {0, 0, 1};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!absl::SimpleAtod(parts[i], &numbers[i]) || !std::isfinite(numbers[i]) ||
        (whole && numbers[i] != std::floor(numbers[i]))) {
      return bad();
    }
  }
  if (parts.size() < 2) numbers[1] = numbers[0];
  const auto [start, end, step] = numbers;
  if (!(start > 0) || end < start || !(step > 0)) return bad();
  // Bounds that keep every level a thread count and a send interval can hold.
  const double most = whole ? 100000 : 1e6;
  const double least = whole ? 1 : 1e-3;
  if (start < least || end > most) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", range, "' leaves ", least, "..", most,
                     whole ? " outstanding requests" : " requests per second"));
  }
  std::vector<double> levels;
  // Counting steps (not adding them up) keeps 0.1-sized steps from drifting past `end`.
  for (int64_t i = 0;; ++i) {
    const double level = start + static_cast<double>(i) * step;
    if (level > end * (1 + 1e-12)) break;
    levels.push_back(level);
    if (levels.size() > 10000) {
      return absl::InvalidArgumentError(absl::StrCat("'", range, "' makes more than 10000 levels"));
    }
  }
  return levels;
}

absl::StatusOr<PerfOptions> ParsePerfOptions(absl::Span<const std::string> args) {
  ASSIGN_OR_RETURN(const std::vector<std::string> normalized, Normalize(args));
  ASSIGN_OR_RETURN(const auto pairs, SplitFlagValues(normalized));
  PerfOptions options;
  bool rate_given = false;
  bool concurrency_given = false;
  for (const auto& [flag, value] : pairs) {
    RETURN_IF_ERROR(ApplyFlag(flag, value, options, rate_given, concurrency_given));
  }
  if (options.help) return options;
  if (rate_given && concurrency_given) {
    return absl::InvalidArgumentError("give --concurrency-range or --request-rate-range, not both");
  }
  if (options.model.empty()) return absl::InvalidArgumentError("-m/--model is required");
  return options;
}

}  // namespace torchbricks::perf
