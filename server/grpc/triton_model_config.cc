#include "server/grpc/triton_model_config.h"

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/grpc/infer_codec.h"

namespace torchbricks::server {
namespace {

inference::DataType TritonDataType(package::DataType type) {
  const std::string name = ProtocolDataType(type);
  inference::DataType triton = inference::TYPE_INVALID;
  if (name == "BYTES") return inference::TYPE_STRING;
  inference::DataType_Parse(absl::StrCat("TYPE_", name), &triton);
  return triton;
}

// The dims Triton shows: without dimension 0 when the model batches.
template <typename Message>
void FillDims(const ValueSpec& spec, bool batching, Message* out) {
  for (size_t d = batching && !spec.dims.empty() ? 1 : 0; d < spec.dims.size(); ++d) {
    out->add_dims(spec.dims[d]);
  }
}

void FillInstanceGroups(const SchedulingPlan& plan, const std::string& model,
                        inference::ModelConfig* out) {
  for (const std::string& device : plan.devices()) {
    inference::ModelInstanceGroup* group = out->add_instance_group();
    group->set_name(absl::StrCat(model, "_", out->instance_group_size() - 1));
    group->set_count(plan.InstancesOn(device));
    int gpu = 0;
    if (absl::StartsWith(device, "cuda:") && absl::SimpleAtoi(device.substr(5), &gpu)) {
      group->set_kind(inference::ModelInstanceGroup::KIND_GPU);
      group->add_gpus(gpu);
    } else {
      group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
    }
  }
}

}  // namespace

bool OneValuePerItem(const ValueSpec& spec, bool batches) {
  return batches && spec.dims.size() == 1;
}

inference::ModelConfig TritonModelConfig(const ModelVersion& version) {
  inference::ModelConfig out;
  out.set_name(version.model_name);
  out.set_platform(kTorchBricksPlatform);
  out.set_backend(kTorchBricksPlatform);
  // Our ModelVersionPolicy has Triton's layout, field for field: copied through the wire.
  if (version.config.has_version_policy()) {
    out.mutable_version_policy()->ParseFromString(
        version.config.version_policy().SerializeAsString());
  } else {
    out.mutable_version_policy()->mutable_latest()->set_num_versions(1);
  }
  const BatchPolicy& batching = version.plan.batching;
  out.set_max_batch_size(batching.max_batch_size);
  const bool batches = batching.max_batch_size > 0;

  const ServableModel& model = *version.servable;
  for (int index : model.plan(Stage::kInference).required_inputs()) {
    const ValueSpec& spec = model.graph().inputs()[index];
    inference::ModelInput* input = out.add_input();
    input->set_name(spec.name);
    input->set_data_type(TritonDataType(spec.data_type));
    FillDims(spec, batches, input);
    if (OneValuePerItem(spec, batches)) {
      input->add_dims(1);
      input->mutable_reshape();  // shape: [], the model's view of one item
    }
  }
  for (const ValueSpec& spec : model.OutputSpecs(Stage::kInference)) {
    inference::ModelOutput* output = out.add_output();
    output->set_name(spec.name);
    output->set_data_type(TritonDataType(spec.data_type));
    FillDims(spec, batches, output);
  }
  if (batches) {
    inference::ModelDynamicBatching* dynamic = out.mutable_dynamic_batching();
    for (int size : batching.preferred_batch_sizes) dynamic->add_preferred_batch_size(size);
    dynamic->set_max_queue_delay_microseconds(
        static_cast<uint64_t>(absl::ToInt64Microseconds(batching.max_queue_delay)));
    inference::ModelQueuePolicy* queue = dynamic->mutable_default_queue_policy();
    queue->set_max_queue_size(static_cast<uint32_t>(batching.max_queue_size));
    queue->set_default_timeout_microseconds(
        static_cast<uint64_t>(absl::ToInt64Microseconds(batching.default_timeout)));
  }
  FillInstanceGroups(version.plan, version.model_name, &out);
  for (const auto& [key, value] : version.config.parameters()) {
    (*out.mutable_parameters())[key].set_string_value(value);
  }
  if (!version.self_configuration.empty()) {
    (*out.mutable_parameters())[kSelfConfiguredParameter].set_string_value(
        version.self_configuration);
  }
  return out;
}

}  // namespace torchbricks::server
