// ServerOptions: every setting of torchbricks-server, with its default, and the parser of
// its command line. Flag names follow Triton's where the concept is the same.
#ifndef TORCHBRICKS_SERVER_SERVER_OPTIONS_H_
#define TORCHBRICKS_SERVER_SERVER_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/grpc/access_policy.h"
#include "server/observability/logging.h"
#include "server/repository/model_control_mode.h"

namespace torchbricks::server {

struct ServerOptions {
  // --model-repository: the folder of model folders. Required.
  std::string model_repository;
  // --grpc-address / --grpc-port: where the gRPC services listen. Port 0 picks a free
  // port; the chosen one is printed on stdout.
  std::string grpc_address = "0.0.0.0";
  int grpc_port = 8001;
  // --reuse-grpc-port true|false: let several processes share the gRPC port
  // (SO_REUSEPORT, as Triton's flag). Off: a port in use is an error at start.
  bool reuse_grpc_port = false;
  // --grpc-use-ssl true|false: serve gRPC over TLS with the certificate chain
  // --grpc-server-cert and its key --grpc-server-key (PEM files).
  bool grpc_use_ssl = false;
  // --grpc-use-ssl-mutual true|false: TLS that also requires a client certificate signed
  // by --grpc-root-cert (PEM). Implies --grpc-use-ssl.
  bool grpc_use_ssl_mutual = false;
  std::string grpc_server_cert;
  std::string grpc_server_key;
  std::string grpc_root_cert;
  // --grpc-cert-refresh-secs: how often the certificate files are read again, so that a
  // rotated certificate is served without a restart (new connections get it).
  int grpc_cert_refresh_secs = 60;
  // --grpc-restricted-protocol <groups>:<key>=<value> (repeatable): calls to the groups
  // need the header "triton-grpc-protocol-<key>: <value>" (PERMISSION_DENIED otherwise).
  std::vector<ProtocolRestriction> restricted_protocols;
  // --allow-client-shm true|false: the system shared-memory extension (regions that
  // clients register and place tensors in). Off by default, as Triton's.
  bool allow_client_shm = false;
  // --model-control-mode none|poll|explicit.
  ModelControlMode control_mode = ModelControlMode::kNone;
  // --repository-poll-secs: the re-scan period in poll mode (fractions allowed).
  absl::Duration poll_interval = absl::Seconds(15);
  // --load-model NAME (repeatable): models loaded at start in explicit mode.
  std::vector<std::string> startup_models;
  // --grpc-max-message-size: largest request or response in bytes. The default holds a
  // batch of 64 RGB images of 512x512 in FP32 (201 MB); raise it for larger batches.
  int max_message_bytes = 256 << 20;
  // --max-inflight-bytes: bytes of inference requests held at once (decoded, queued or
  // running); a request that does not fit is refused RESOURCE_EXHAUSTED. At least
  // --grpc-max-message-size.
  int64_t max_inflight_bytes = int64_t{1} << 30;
  // --grpc-max-threads: threads gRPC may run synchronous calls on; each in-flight call
  // holds one, and a call that finds none free is refused RESOURCE_EXHAUSTED.
  int grpc_max_threads = 256;
  // --grpc-max-streams: ModelStreamInfer streams open at once (each holds a thread of its
  // own); one more is refused RESOURCE_EXHAUSTED.
  int grpc_max_streams = 64;
  // --log-level error|warning|info|verbose.
  LogLevel log_level = LogLevel::kInfo;
  // --log-format text|json.
  LogFormat log_format = LogFormat::kText;
  // --allow-metrics true|false: the Prometheus endpoint and the latency histograms.
  bool allow_metrics = true;
  // --metrics-port: HTTP port of GET /metrics (0 picks a free port, printed on stdout);
  // it listens on --grpc-address.
  int metrics_port = 8002;
  // --shutdown-timeout-secs: after SIGTERM, how long in-flight requests may take.
  absl::Duration shutdown_timeout = absl::Seconds(30);
  // --warmup-runs: runs per stage on the package's reference inputs before a version
  // becomes ready.
  int warmup_runs = 3;
  // --self-configuration-seconds: how long a version's load may measure the model to choose
  // what its config.pbtxt leaves open (docs/CONFIG.md, "Self-configuration"); 0 turns it off.
  // At most kMaxSelfConfigurationSeconds.
  absl::Duration self_configuration_budget = absl::Seconds(2);
  // --write-chosen-config DIR: writes each self-configured version's settings to
  // DIR/<model>/config.pbtxt, ready to pin. Empty: not written.
  std::string chosen_config_dir;
  // --spin-before-block-us: how long model workers and the threads waiting for an answer poll
  // before blocking (BatcherOptions::spin_before_block); 0, the default, blocks at once. At
  // most kMaxSpinBeforeBlockMicroseconds.
  absl::Duration spin_before_block = absl::ZeroDuration();
};

// The longest --self-configuration-seconds: loading a model must stay a matter of seconds.
inline constexpr double kMaxSelfConfigurationSeconds = 60;
// The longest --spin-before-block-us: 10 ms.
inline constexpr int64_t kMaxSpinBeforeBlockMicroseconds = 10000;

// Parses the arguments after the program name. Returns InvalidArgument naming the flag for
// unknown flags, missing or malformed values, and a missing --model-repository.
absl::StatusOr<ServerOptions> ParseServerFlags(absl::Span<const std::string> args);

// The --help text.
const char* ServerUsage();

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SERVER_OPTIONS_H_
