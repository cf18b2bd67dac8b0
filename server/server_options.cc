#include "server/server_options.h"

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/command_line.h"
#include "base/status_macros.h"

namespace torchbricks::server {
namespace {

// Upper bound of the flags given in seconds (one week).
constexpr double kMaxSeconds = 7 * 24 * 3600;
// Upper bound of the thread and stream counts: past this a process runs out of memory for
// stacks long before it serves more.
constexpr int kMaxThreads = 16384;

absl::Status BadValue(const std::string& flag, const std::string& value) {
  return absl::InvalidArgumentError(absl::StrCat("bad value '", value, "' for ", flag));
}

// "true" or "false" into `out`; InvalidArgument naming the flag otherwise.
absl::Status ParseBool(const std::string& flag, const std::string& value, bool* out) {
  if (value != "true" && value != "false") return BadValue(flag, value);
  *out = value == "true";
  return absl::OkStatus();
}

}  // namespace

const char* ServerUsage() {
  return "usage: torchbricks-server --model-repository DIR [flags]\n"
         "  --grpc-address ADDR            listen address (default 0.0.0.0)\n"
         "  --grpc-port N                  gRPC port, 0 = any free port (default 8001)\n"
         "  --grpc-use-ssl BOOL            serve gRPC over TLS (default false)\n"
         "  --grpc-use-ssl-mutual BOOL     TLS requiring client certificates (default false)\n"
         "  --grpc-server-cert FILE        PEM certificate chain of the server\n"
         "  --grpc-server-key FILE         PEM private key of the server\n"
         "  --grpc-root-cert FILE          PEM roots that sign client certificates (mutual TLS)\n"
         "  --grpc-cert-refresh-secs S     re-read the certificate files every S (default 60)\n"
         "  --grpc-restricted-protocol G:K=V  groups G (comma-separated) need the header\n"
         "                                 triton-grpc-protocol-K: V (repeatable)\n"
         "  --allow-client-shm BOOL        system shared memory for tensors (default false)\n"
         "  --model-control-mode MODE      none | poll | explicit (default none)\n"
         "  --repository-poll-secs S       re-scan period in poll mode (default 15)\n"
         "  --load-model NAME              explicit mode: load NAME at start (repeatable)\n"
         "  --grpc-max-message-size BYTES  largest message (default 268435456)\n"
         "  --max-inflight-bytes BYTES     request bytes held at once (default 1073741824)\n"
         "  --grpc-max-threads N           threads for synchronous calls (default 256)\n"
         "  --grpc-max-streams N           open ModelStreamInfer streams (default 64)\n"
         "  --log-level LEVEL              error | warning | info | verbose (default info)\n"
         "  --log-format FORMAT            text | json (default text)\n"
         "  --reuse-grpc-port BOOL         share the gRPC port with other processes (default "
         "false)\n"
         "  --allow-metrics BOOL           serve Prometheus metrics (default true)\n"
         "  --metrics-port N               HTTP port of /metrics, 0 = any free port (default "
         "8002)\n"
         "  --shutdown-timeout-secs S      grace for in-flight requests on SIGTERM (default 30)\n"
         "  --warmup-runs N                warm-up runs per stage at load (default 3)\n"
         "  --self-configuration-seconds S  measuring time per model at load to choose what\n"
         "                                 config.pbtxt leaves open, 0 = off (default 2)\n"
         "  --write-chosen-config DIR      write the chosen settings to DIR/<model>/config.pbtxt\n"
         "  --spin-before-block-us N       poll this long before blocking, 0..10000 (default 0)\n";
}

absl::StatusOr<ServerOptions> ParseServerFlags(absl::Span<const std::string> args) {
  ServerOptions options;
  ASSIGN_OR_RETURN(auto pairs, SplitFlagValues(args));
  for (const auto& [flag, value] : pairs) {
    double seconds = 0;
    if (flag == "--model-repository") {
      options.model_repository = value;
    } else if (flag == "--grpc-address") {
      options.grpc_address = value;
    } else if (flag == "--grpc-port") {
      if (!absl::SimpleAtoi(value, &options.grpc_port) || options.grpc_port < 0 ||
          options.grpc_port > 65535) {
        return BadValue(flag, value);
      }
    } else if (flag == "--grpc-use-ssl") {
      RETURN_IF_ERROR(ParseBool(flag, value, &options.grpc_use_ssl));
    } else if (flag == "--grpc-use-ssl-mutual") {
      RETURN_IF_ERROR(ParseBool(flag, value, &options.grpc_use_ssl_mutual));
    } else if (flag == "--grpc-server-cert") {
      options.grpc_server_cert = value;
    } else if (flag == "--grpc-server-key") {
      options.grpc_server_key = value;
    } else if (flag == "--grpc-root-cert") {
      options.grpc_root_cert = value;
    } else if (flag == "--grpc-cert-refresh-secs") {
      if (!absl::SimpleAtoi(value, &options.grpc_cert_refresh_secs) ||
          options.grpc_cert_refresh_secs < 1 || options.grpc_cert_refresh_secs > kMaxSeconds) {
        return BadValue(flag, value);
      }
    } else if (flag == "--grpc-restricted-protocol") {
      ASSIGN_OR_RETURN(ProtocolRestriction restriction, ParseProtocolRestriction(value));
      options.restricted_protocols.push_back(std::move(restriction));
    } else if (flag == "--allow-client-shm") {
      RETURN_IF_ERROR(ParseBool(flag, value, &options.allow_client_shm));
    } else if (flag == "--model-control-mode") {
      if (value == "none") {
        options.control_mode = ModelControlMode::kNone;
      } else if (value == "poll") {
        options.control_mode = ModelControlMode::kPoll;
      } else if (value == "explicit") {
        options.control_mode = ModelControlMode::kExplicit;
      } else {
        return BadValue(flag, value);
      }
    } else if (flag == "--repository-poll-secs") {
      // !(x > 0) also refuses NaN; a week bounds what absl::Seconds must hold.
      if (!absl::SimpleAtod(value, &seconds) || !(seconds > 0) || seconds > kMaxSeconds) {
        return BadValue(flag, value);
      }
      options.poll_interval = absl::Seconds(seconds);
    } else if (flag == "--load-model") {
      options.startup_models.push_back(value);
    } else if (flag == "--grpc-max-message-size") {
      if (!absl::SimpleAtoi(value, &options.max_message_bytes) || options.max_message_bytes <= 0) {
        return BadValue(flag, value);
      }
    } else if (flag == "--max-inflight-bytes") {
      if (!absl::SimpleAtoi(value, &options.max_inflight_bytes) ||
          options.max_inflight_bytes <= 0) {
        return BadValue(flag, value);
      }
    } else if (flag == "--grpc-max-threads") {
      // Below a handful, gRPC's pollers alone exhaust the quota.
      if (!absl::SimpleAtoi(value, &options.grpc_max_threads) || options.grpc_max_threads < 4 ||
          options.grpc_max_threads > kMaxThreads) {
        return BadValue(flag, value);
      }
    } else if (flag == "--grpc-max-streams") {
      if (!absl::SimpleAtoi(value, &options.grpc_max_streams) || options.grpc_max_streams < 0 ||
          options.grpc_max_streams > kMaxThreads) {
        return BadValue(flag, value);
      }
    } else if (flag == "--log-level") {
      ASSIGN_OR_RETURN(options.log_level, ParseLogLevel(value));
    } else if (flag == "--log-format") {
      ASSIGN_OR_RETURN(options.log_format, ParseLogFormat(value));
    } else if (flag == "--reuse-grpc-port") {
      RETURN_IF_ERROR(ParseBool(flag, value, &options.reuse_grpc_port));
    } else if (flag == "--allow-metrics") {
      RETURN_IF_ERROR(ParseBool(flag, value, &options.allow_metrics));
    } else if (flag == "--metrics-port") {
      if (!absl::SimpleAtoi(value, &options.metrics_port) || options.metrics_port < 0 ||
          options.metrics_port > 65535) {
        return BadValue(flag, value);
      }
    } else if (flag == "--shutdown-timeout-secs") {
      if (!absl::SimpleAtod(value, &seconds) || !(seconds >= 0) || seconds > kMaxSeconds) {
        return BadValue(flag, value);
      }
      options.shutdown_timeout = absl::Seconds(seconds);
    } else if (flag == "--self-configuration-seconds") {
      if (!absl::SimpleAtod(value, &seconds) || !(seconds >= 0) ||
          seconds > kMaxSelfConfigurationSeconds) {
        return BadValue(flag, value);
      }
      options.self_configuration_budget = absl::Seconds(seconds);
    } else if (flag == "--spin-before-block-us") {
      int64_t microseconds = 0;
      if (!absl::SimpleAtoi(value, &microseconds) || microseconds < 0 ||
          microseconds > kMaxSpinBeforeBlockMicroseconds) {
        return BadValue(flag, value);
      }
      options.spin_before_block = absl::Microseconds(microseconds);
    } else if (flag == "--write-chosen-config") {
      if (value.empty() || !std::filesystem::is_directory(value)) return BadValue(flag, value);
      options.chosen_config_dir = value;
    } else if (flag == "--warmup-runs") {
      if (!absl::SimpleAtoi(value, &options.warmup_runs) || options.warmup_runs < 0) {
        return BadValue(flag, value);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag));
    }
  }
  if (options.model_repository.empty()) {
    return absl::InvalidArgumentError("--model-repository is required");
  }
  if (options.allow_metrics && options.grpc_port != 0 &&
      options.grpc_port == options.metrics_port) {
    return absl::InvalidArgumentError(absl::StrCat("--grpc-port and --metrics-port are both ",
                                                   options.grpc_port,
                                                   "; give them different ports"));
  }
  // A group in two restrictions is refused here, once, rather than at start-up.
  RETURN_IF_ERROR(AccessPolicy::Create(options.restricted_protocols).status());
  if (options.grpc_use_ssl_mutual) options.grpc_use_ssl = true;
  if (options.grpc_use_ssl &&
      (options.grpc_server_cert.empty() || options.grpc_server_key.empty())) {
    return absl::InvalidArgumentError(
        "--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key");
  }
  if (options.grpc_use_ssl_mutual && options.grpc_root_cert.empty()) {
    return absl::InvalidArgumentError(
        "--grpc-use-ssl-mutual needs --grpc-root-cert (the roots that sign client certificates)");
  }
  if (options.max_inflight_bytes < options.max_message_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-inflight-bytes (", options.max_inflight_bytes,
                     ") is below --grpc-max-message-size (", options.max_message_bytes,
                     "): the largest request could never be admitted"));
  }
  return options;
}

}  // namespace torchbricks::server
