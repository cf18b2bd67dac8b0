#include "server/grpc/brick_service.h"

#include "server/grpc/grpc_status.h"
#include "server/grpc/infer_codec.h"
#include "server/repository/model_version.h"

namespace torchbricks::server {

grpc::Status BrickService::ModelGraph(grpc::ServerContext* context,
                                      const ModelGraphRequest* request,
                                      ModelGraphResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kMetadata)) return *denied;
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  if (!repository.ok()) return ToGrpcStatus(repository.status());
  auto version = (*repository)->Find(request->model_name(), request->model_version());
  if (!version.ok()) return ToGrpcStatus(version.status());
  absl::StatusOr<Stage> stage = request->stage().empty() ? absl::StatusOr<Stage>(Stage::kInference)
                                                         : ParseStage(request->stage());
  if (!stage.ok()) return ToGrpcStatus(stage.status());

  const ServableModel& model = *(*version)->servable;
  const BrickGraph& graph = model.graph();
  const StagePlan& plan = model.plan(*stage);
  response->set_model_name((*version)->model_name);
  response->set_model_version((*version)->version_string);
  response->set_stage(std::string(StageName(*stage)));
  for (const PlanStep& step : plan.steps()) {
    const BrickSpec& spec = graph.bricks()[step.brick];
    auto* brick = response->add_bricks();
    brick->set_name(spec.name);
    brick->set_kind(package::BrickKind_Name(spec.kind));
    brick->set_module_type(spec.module_type);
    brick->set_brick_type(spec.brick_type);
    for (const std::string& name : spec.input_names) brick->add_input_names(name);
    for (const std::string& name : spec.output_names) brick->add_output_names(name);
    if (const FusedSpec* fused = graph.FusedProgramOf(step.brick, *stage); fused != nullptr) {
      brick->set_fused_program(fused->program.name);
    }
    for (int slot : step.input_slots) {
      if (slot < 0 || plan.ProducerOf(slot) < 0) continue;
      auto* edge = response->add_edges();
      edge->set_producer(graph.bricks()[plan.steps()[plan.ProducerOf(slot)].brick].name);
      edge->set_consumer(spec.name);
      edge->set_tensor(plan.slot_name(slot));
    }
  }
  for (int index : plan.required_inputs()) {
    const ValueSpec& spec = graph.inputs()[index];
    auto* input = response->add_inputs();
    input->set_name(spec.name);
    input->set_datatype(ProtocolDataType(spec.data_type));
    for (int64_t dim : spec.dims) input->add_shape(dim);
  }
  for (const std::string& name : plan.terminal_outputs()) response->add_outputs(name);
  response->set_mermaid(model.Mermaid(*stage));
  return grpc::Status::OK;
}

grpc::Status BrickService::BrickStatistics(grpc::ServerContext* context,
                                           const BrickStatisticsRequest* request,
                                           BrickStatisticsResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kStatistics)) return *denied;
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  if (!repository.ok()) return ToGrpcStatus(repository.status());
  std::vector<std::shared_ptr<const ModelVersion>> versions;
  if (request->model_version().empty()) {
    versions = (*repository)->ReadyVersions(request->model_name());
    if (versions.empty()) {
      return ToGrpcStatus((*repository)->Find(request->model_name(), "").status());
    }
  } else {
    auto version = (*repository)->Find(request->model_name(), request->model_version());
    if (!version.ok()) return ToGrpcStatus(version.status());
    versions.push_back(*version);
  }
  for (const auto& version : versions) {
    auto* out = response->add_versions();
    out->set_model_name(version->model_name);
    out->set_model_version(version->version_string);
    for (const std::string& device : version->plan.devices()) out->add_devices(device);
    const auto& bricks = version->servable->graph().bricks();
    for (int b = 0; b < static_cast<int>(bricks.size()); ++b) {
      auto* stat = out->add_bricks();
      stat->set_name(bricks[b].name);
      stat->set_executions(version->statistics->brick_executions(b));
      stat->set_compute_ns(version->statistics->brick_ns(b));
    }
    for (const FusedSpec& fused : version->servable->graph().fused()) {
      auto* stat = out->add_bricks();
      stat->set_name(fused.program.name);
      stat->set_executions(version->statistics->fused_executions(fused.stage));
      stat->set_compute_ns(version->statistics->fused_ns(fused.stage));
      for (int b : fused.bricks)
        stat->add_fused_bricks(version->servable->graph().bricks()[b].name);
    }
  }
  return grpc::Status::OK;
}

}  // namespace torchbricks::server
