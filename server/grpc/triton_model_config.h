// TritonModelConfig: a loaded model version described as Triton's ModelConfig message (the
// ModelConfig RPC), so tools that read a model's configuration first (perf_analyzer,
// tritonclient's get_model_config) work unchanged. Advertises what this server does: the
// INFERENCE stage's required inputs and outputs, the batching, queue and instances in
// effect (defaults applied), the version policy and the config's parameters. Pure;
// thread-safe.
#ifndef TORCHBRICKS_SERVER_GRPC_TRITON_MODEL_CONFIG_H_
#define TORCHBRICKS_SERVER_GRPC_TRITON_MODEL_CONFIG_H_

#include "proto/grpc_service.pb.h"
#include "server/repository/model_version.h"

namespace torchbricks::server {

// The platform and backend name the server reports for every model.
inline constexpr char kTorchBricksPlatform[] = "torchbricks";

// The ModelConfig parameter that holds what self-configuration chose and why
// (ModelVersion::self_configuration), present only for a self-configured version.
inline constexpr char kSelfConfiguredParameter[] = "self_configured";

// `version` as Triton's ModelConfig. With max_batch_size above 0 the dims leave out the
// batch dimension (dimension 0), as Triton's do; with 0 they are the full shape.
inference::ModelConfig TritonModelConfig(const ModelVersion& version);

// True when `spec` is an input of a model that batches (`batches`: max_batch_size above 0)
// with one value per batch item: its dims are the batch dimension alone, as an encoded image
// (BYTES [B]) or a class label (INT64 [B]). Triton does not show a batching input with empty
// dims: it shows dims [1] with reshape { shape: [] } (metadata [-1, 1]), and its clients
// (perf_analyzer) send such an input as [B, 1]. The server shows such inputs that way and takes
// [B] and [B, 1] alike (NormalizeRequest).
bool OneValuePerItem(const ValueSpec& spec, bool batches);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_TRITON_MODEL_CONFIG_H_
