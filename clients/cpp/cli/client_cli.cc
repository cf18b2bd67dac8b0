#include "clients/cpp/cli/client_cli.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/command_line.h"
#include "clients/cpp/cli/cli_files.h"
#include "clients/cpp/inference_client.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace torchbricks::client {

const char kClientCliUsage[] =
    "usage: torchbricks-client [FLAGS] COMMAND [ARGS]\n"
    "commands:\n"
    "  health [MODEL]            live, ready and grpc.health of the server (and MODEL ready)\n"
    "  models                    the repository index: every model version and its state\n"
    "  metadata MODEL            inputs and outputs (--stage S, --version V)\n"
    "  config MODEL              the model configuration (--version V)\n"
    "  graph MODEL               the brick graph as mermaid (--stage S, --version V)\n"
    "  infer MODEL --input NAME=FILE ...   FILE: .npy, or .jpg/.jpeg/.png (encoded image;\n"
    "                            repeat to batch); --output NAME (repeatable; default: the\n"
    "                            stage's outputs), --stage S, --version V, --id ID,\n"
    "                            --out DIR (default .): NAME.npy per tensor, NAME-I.png per\n"
    "                            drawing ('/' in names becomes '.')\n"
    "  load MODEL | unload MODEL explicit model control\n"
    "  stats MODEL               request and per-brick statistics (--version V)\n"
    "flags:\n"
    "  -u, --url HOST:PORT       server (default 127.0.0.1:8001)\n"
    "  --timeout SECONDS         connection and per-call deadline (default 60)\n"
    "  --json                    print one JSON document instead of text\n"
    "  --ssl true                TLS with the system's roots\n"
    "  --ssl-root-cert FILE      TLS trusting these PEM roots\n"
    "  --ssl-cert FILE --ssl-key FILE   mutual TLS: this client's PEM certificate and key\n"
    "  --ssl-server-name NAME    the name the server certificate must carry\n"
    "  --header KEY=VALUE        metadata sent with every call (repeatable)\n"
    "  --max-message-bytes N     largest message sent or received (default 1 GiB)\n"
    "exit codes: 0 ok; 1 not ready (health); 2 usage error or unreadable input;\n"
    "  3 the server answered with an error; 4 server unreachable; 5 output files not written\n";

namespace {

// One parsed invocation.
struct Invocation {
  std::string command;
  std::string model;  // MODEL, when the command takes one
  ClientOptions client;
  bool json = false;
  std::string stage;
  std::string version;
  std::string id;
  std::string out_dir = ".";
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
};

// Reports a failed step and gives its exit code.
class Reporter {
 public:
  Reporter(std::ostream& err) : err_(err) {}
  int Usage(absl::string_view message) {
    err_ << "torchbricks-client: " << message << "\n" << kClientCliUsage;
    return kExitUsage;
  }
  int Fail(int code, const absl::Status& status) {
    err_ << "torchbricks-client: " << absl::StatusCodeToString(status.code()) << ": "
         << status.message() << "\n";
    return code;
  }

 private:
  std::ostream& err_;
};

// The flags each command takes besides the connection flags; nullptr for an unknown command.
const std::set<std::string>* CommandFlags(const std::string& command) {
  static const auto* const kFlags = new std::map<std::string, std::set<std::string>>{
      {"health", {}},
      {"models", {}},
      {"metadata", {"--stage", "--version"}},
      {"config", {"--version"}},
      {"graph", {"--stage", "--version"}},
      {"infer", {"--input", "--output", "--stage", "--version", "--id", "--out"}},
      {"load", {}},
      {"unload", {}},
      {"stats", {"--version"}}};
  const auto found = kFlags->find(command);
  return found == kFlags->end() ? nullptr : &found->second;
}

absl::StatusOr<Invocation> ParseInvocation(std::vector<std::string> args) {
  Invocation invocation;
  // The one switch without a value; every other flag takes one (base/command_line.h).
  const auto json = std::remove(args.begin(), args.end(), "--json");
  invocation.json = json != args.end();
  args.erase(json, args.end());
  // Triton's example clients take the server as -u URL: the same as --url here. Only where a
  // flag may stand, so a flag's value "-u" stays a value.
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-u") {
      args[i] = "--url";
      ++i;
    } else if (args[i].rfind("--", 0) == 0 && args[i].find('=') == std::string::npos) {
      ++i;
    }
  }
  absl::StatusOr<CommandLine> line = ParseCommandLine(args);
  if (!line.ok()) return line.status();
  if (line->positional.empty()) return absl::InvalidArgumentError("no command given");
  invocation.command = line->positional[0];
  const std::set<std::string>* allowed = CommandFlags(invocation.command);
  if (allowed == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown command '", invocation.command, "'"));
  }
  const size_t arguments = line->positional.size() - 1;
  const bool takes_model = invocation.command != "health" && invocation.command != "models";
  if (takes_model && arguments != 1) {
    return absl::InvalidArgumentError(absl::StrCat(invocation.command, " takes one MODEL"));
  }
  if (!takes_model && arguments > (invocation.command == "health" ? 1u : 0u)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", line->positional.back(), "'"));
  }
  if (arguments == 1) invocation.model = line->positional[1];

  for (const auto& [flag, value] : line->flags) {
    ClientOptions& client = invocation.client;
    if (flag == "--url") {
      client.url = value;
    } else if (flag == "--timeout") {
      double seconds = 0;
      if (!absl::SimpleAtod(value, &seconds) || !(seconds > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--timeout takes a positive number of seconds, not '", value, "'"));
      }
      client.timeout = absl::Seconds(seconds);
    } else if (flag == "--ssl") {
      if (value != "true" && value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat("--ssl takes true or false, not '", value, "'"));
      }
      client.use_tls = value == "true";
    } else if (flag == "--ssl-root-cert") {
      client.root_certificates_file = value;
    } else if (flag == "--ssl-cert") {
      client.certificate_chain_file = value;
    } else if (flag == "--ssl-key") {
      client.private_key_file = value;
    } else if (flag == "--ssl-server-name") {
      client.tls_server_name = value;
    } else if (flag == "--header") {
      const size_t equals = value.find('=');
      if (equals == std::string::npos || equals == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--header takes KEY=VALUE, not '", value, "'"));
      }
      client.headers.emplace_back(value.substr(0, equals), value.substr(equals + 1));
    } else if (flag == "--max-message-bytes") {
      if (!absl::SimpleAtoi(value, &client.max_message_bytes) || client.max_message_bytes <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--max-message-bytes takes a positive integer, not '", value, "'"));
      }
    } else if (allowed->count(flag) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(invocation.command, " does not take ", flag));
    } else if (flag == "--stage") {
      invocation.stage = value;
    } else if (flag == "--version") {
      invocation.version = value;
    } else if (flag == "--id") {
      invocation.id = value;
    } else if (flag == "--out") {
      invocation.out_dir = value;
    } else if (flag == "--input") {
      invocation.inputs.push_back(value);
    } else if (flag == "--output") {
      invocation.outputs.push_back(value);
    }
  }
  if (invocation.command == "infer" && invocation.inputs.empty()) {
    return absl::InvalidArgumentError("infer needs at least one --input NAME=FILE");
  }
  return invocation;
}

// --- output ----------------------------------------------------------------------------------

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// `message` as a JSON value inside a Struct.
google::protobuf::Value AsValue(const google::protobuf::Message& message) {
  google::protobuf::Value value;
  (void)google::protobuf::util::JsonStringToMessage(ToJson(message), &value);
  return value;
}

google::protobuf::Value Text(absl::string_view text) {
  google::protobuf::Value value;
  value.set_string_value(std::string(text));
  return value;
}

google::protobuf::Value Flag(bool flag) {
  google::protobuf::Value value;
  value.set_bool_value(flag);
  return value;
}

std::string Shape(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// --- commands --------------------------------------------------------------------------------

int Health(InferenceClient& client, const Invocation& invocation, std::ostream& out,
           Reporter& report) {
  absl::StatusOr<bool> live = client.ServerLive();
  if (!live.ok()) return report.Fail(kExitServerError, live.status());
  absl::StatusOr<bool> ready = client.ServerReady();
  if (!ready.ok()) return report.Fail(kExitServerError, ready.status());
  absl::StatusOr<ServingStatus> health = client.HealthCheck();
  if (!health.ok()) return report.Fail(kExitServerError, health.status());
  bool all_ready = *live && *ready;
  google::protobuf::Struct answer;
  auto& fields = *answer.mutable_fields();
  fields["url"] = Text(invocation.client.url);
  fields["live"] = Flag(*live);
  fields["ready"] = Flag(*ready);
  fields["health"] = Text(ServingStatusName(*health));
  std::optional<bool> model_ready;
  if (!invocation.model.empty()) {
    absl::StatusOr<bool> answer = client.ModelReady(invocation.model);
    if (!answer.ok()) return report.Fail(kExitServerError, answer.status());
    model_ready = *answer;
    all_ready = all_ready && *answer;
    fields["model"] = Text(invocation.model);
    fields["model_ready"] = Flag(*answer);
  }
  if (invocation.json) {
    out << ToJson(answer) << "\n";
  } else {
    const auto yes_no = [](bool flag) { return flag ? "true" : "false"; };
    out << "server " << invocation.client.url << "\nlive: " << yes_no(*live)
        << "\nready: " << yes_no(*ready) << "\nhealth: " << ServingStatusName(*health) << "\n";
    if (model_ready.has_value()) {
      out << "model " << invocation.model << " ready: " << yes_no(*model_ready) << "\n";
    }
  }
  return all_ready ? kExitOk : kExitNotReady;
}

int Models(InferenceClient& client, const Invocation& invocation, std::ostream& out,
           Reporter& report) {
  absl::StatusOr<inference::RepositoryIndexResponse> index = client.RepositoryIndex();
  if (!index.ok()) return report.Fail(kExitServerError, index.status());
  if (invocation.json) {
    out << ToJson(*index) << "\n";
    return kExitOk;
  }
  size_t width = 4;
  for (const auto& model : index->models()) width = std::max(width, model.name().size());
  out << "NAME" << std::string(width - 4 + 2, ' ') << "VERSION  STATE        REASON\n";
  for (const auto& model : index->models()) {
    std::string version = model.version().empty() ? "-" : model.version();
    out << model.name() << std::string(width - model.name().size() + 2, ' ') << version
        << std::string(version.size() < 9 ? 9 - version.size() : 1, ' ') << model.state()
        << std::string(model.state().size() < 13 ? 13 - model.state().size() : 1, ' ')
        << model.reason() << "\n";
  }
  return kExitOk;
}

int Metadata(InferenceClient& client, const Invocation& invocation, std::ostream& out,
             Reporter& report) {
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      client.ModelMetadata(invocation.model, invocation.version, invocation.stage);
  if (!metadata.ok()) return report.Fail(kExitServerError, metadata.status());
  if (invocation.json) {
    out << ToJson(*metadata) << "\n";
    return kExitOk;
  }
  out << "model " << metadata->name() << " (" << metadata->platform() << "), versions "
      << absl::StrJoin(metadata->versions(), ", ") << "\n";
  for (const auto& [title, tensors] :
       {std::pair{"inputs", &metadata->inputs()}, std::pair{"outputs", &metadata->outputs()}}) {
    out << title << ":\n";
    for (const auto& tensor : *tensors) {
      out << "  " << tensor.name() << " " << tensor.datatype() << " " << Shape(tensor.shape())
          << "\n";
    }
  }
  return kExitOk;
}

int Config(InferenceClient& client, const Invocation& invocation, std::ostream& out,
           Reporter& report) {
  absl::StatusOr<inference::ModelConfig> config =
      client.ModelConfig(invocation.model, invocation.version);
  if (!config.ok()) return report.Fail(kExitServerError, config.status());
  if (invocation.json) {
    out << ToJson(*config) << "\n";
  } else {
    std::string text;
    google::protobuf::TextFormat::PrintToString(*config, &text);
    out << text;
  }
  return kExitOk;
}

int Graph(InferenceClient& client, const Invocation& invocation, std::ostream& out,
          Reporter& report) {
  absl::StatusOr<torchbricks::ModelGraphResponse> graph =
      client.ModelGraph(invocation.model, invocation.stage, invocation.version);
  if (!graph.ok()) return report.Fail(kExitServerError, graph.status());
  out << (invocation.json ? ToJson(*graph) + "\n" : graph->mermaid());
  return kExitOk;
}

int LoadOrUnload(InferenceClient& client, const Invocation& invocation, std::ostream& out,
                 Reporter& report) {
  const bool load = invocation.command == "load";
  const absl::Status status =
      load ? client.LoadModel(invocation.model) : client.UnloadModel(invocation.model);
  if (!status.ok()) return report.Fail(kExitServerError, status);
  if (invocation.json) {
    google::protobuf::Struct answer;
    (*answer.mutable_fields())["model"] = Text(invocation.model);
    (*answer.mutable_fields())[load ? "loaded" : "unloaded"] = Flag(true);
    out << ToJson(answer) << "\n";
  } else {
    out << (load ? "loaded " : "unloaded ") << invocation.model << "\n";
  }
  return kExitOk;
}

int Stats(InferenceClient& client, const Invocation& invocation, std::ostream& out,
          Reporter& report) {
  absl::StatusOr<inference::ModelStatisticsResponse> stats =
      client.ModelStatistics(invocation.model, invocation.version);
  if (!stats.ok()) return report.Fail(kExitServerError, stats.status());
  absl::StatusOr<torchbricks::BrickStatisticsResponse> bricks =
      client.BrickStatistics(invocation.model, invocation.version);
  if (!bricks.ok()) return report.Fail(kExitServerError, bricks.status());
  if (invocation.json) {
    google::protobuf::Struct answer;
    (*answer.mutable_fields())["model_statistics"] = AsValue(*stats);
    (*answer.mutable_fields())["brick_statistics"] = AsValue(*bricks);
    out << ToJson(answer) << "\n";
    return kExitOk;
  }
  const auto mean_ms = [](const inference::StatisticDuration& duration) {
    return duration.count() == 0 ? 0.0 : duration.ns() / 1e6 / duration.count();
  };
  for (const auto& model : stats->model_stats()) {
    const auto& infer = model.inference_stats();
    out << model.name() << " version " << model.version() << ": " << model.inference_count()
        << " inferences in " << model.execution_count() << " executions; "
        << infer.success().count() << " succeeded (mean " << mean_ms(infer.success()) << " ms), "
        << infer.fail().count() << " failed; mean queue " << mean_ms(infer.queue())
        << " ms, mean compute " << mean_ms(infer.compute_infer()) << " ms\n";
  }
  for (const auto& version : bricks->versions()) {
    out << version.model_name() << " version " << version.model_version() << " bricks:\n";
    for (const auto& brick : version.bricks()) {
      out << "  " << brick.name() << ": " << brick.executions() << " runs, "
          << brick.compute_ns() / 1e6 << " ms in total\n";
    }
  }
  return kExitOk;
}

int Infer(InferenceClient& client, const Invocation& invocation, std::ostream& out,
          Reporter& report, absl::StatusOr<std::vector<InferInput>> inputs) {
  if (!inputs.ok()) return report.Fail(kExitUsage, inputs.status());
  InferRequest request{.model = invocation.model,
                       .inputs = *std::move(inputs),
                       .stage = invocation.stage,
                       .version = invocation.version,
                       .id = invocation.id};
  for (const std::string& name : invocation.outputs) request.outputs.push_back({name});
  absl::StatusOr<InferResult> result = client.Infer(request);
  if (!result.ok()) return report.Fail(kExitServerError, result.status());
  absl::StatusOr<std::vector<WrittenOutput>> written =
      WriteOutputFiles(*result, invocation.out_dir);
  if (!written.ok()) return report.Fail(kExitOutputError, written.status());
  google::protobuf::Struct answer;
  auto& fields = *answer.mutable_fields();
  fields["model_name"] = Text(result->model_name);
  fields["model_version"] = Text(result->model_version);
  fields["id"] = Text(result->id);
  auto* outputs = fields["outputs"].mutable_list_value();
  for (const WrittenOutput& output : *written) {
    google::protobuf::Struct entry;
    auto& entry_fields = *entry.mutable_fields();
    entry_fields["name"] = Text(output.output->name);
    entry_fields["datatype"] = Text(output.output->datatype);
    auto* shape = entry_fields["shape"].mutable_list_value();
    for (const int64_t dim : output.output->shape) {
      shape->add_values()->set_number_value(static_cast<double>(dim));
    }
    auto* files = entry_fields["files"].mutable_list_value();
    for (const std::string& file : output.files) *files->add_values() = Text(file);
    *outputs->add_values()->mutable_struct_value() = std::move(entry);
    if (!invocation.json) {
      out << output.output->name << " " << output.output->datatype << " ["
          << absl::StrJoin(output.output->shape, ", ") << "] -> "
          << absl::StrJoin(output.files, ", ") << "\n";
    }
  }
  if (invocation.json) out << ToJson(answer) << "\n";
  return kExitOk;
}

}  // namespace

int RunClientCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Reporter report(err);
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    out << kClientCliUsage;
    return kExitOk;
  }
  absl::StatusOr<Invocation> invocation = ParseInvocation(args);
  if (!invocation.ok()) return report.Usage(invocation.status().message());
  // Input files are read before connecting: a bad file is a usage error whatever the server.
  absl::StatusOr<std::vector<InferInput>> inputs = std::vector<InferInput>();
  if (invocation->command == "infer") {
    inputs = ReadInputFiles(invocation->inputs);
    if (!inputs.ok()) return report.Fail(kExitUsage, inputs.status());
  }
  absl::StatusOr<std::unique_ptr<InferenceClient>> client =
      InferenceClient::Create(invocation->client);
  if (!client.ok()) return report.Fail(kExitUsage, client.status());
  if (absl::Status connected = (*client)->WaitForConnection(invocation->client.timeout);
      !connected.ok()) {
    return report.Fail(kExitUnreachable, connected);
  }
  const std::string& command = invocation->command;
  if (command == "health") return Health(**client, *invocation, out, report);
  if (command == "models") return Models(**client, *invocation, out, report);
  if (command == "metadata") return Metadata(**client, *invocation, out, report);
  if (command == "config") return Config(**client, *invocation, out, report);
  if (command == "graph") return Graph(**client, *invocation, out, report);
  if (command == "load" || command == "unload") {
    return LoadOrUnload(**client, *invocation, out, report);
  }
  if (command == "stats") return Stats(**client, *invocation, out, report);
  return Infer(**client, *invocation, out, report, std::move(inputs));
}

}  // namespace torchbricks::client
