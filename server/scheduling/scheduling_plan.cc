#include "server/scheduling/scheduling_plan.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace torchbricks::server {
namespace {

// Model instances allowed per core, over all instance groups of one model.
constexpr int kInstancesPerCore = 4;

}  // namespace

std::string CudaInventory::WhyUnusable() const {
  if (!built) return "this server's libtorch has no CUDA";
  if (devices <= 0) {
    return "libtorch sees no CUDA device (no GPU or NVIDIA driver on this machine, or "
           "CUDA_VISIBLE_DEVICES hides them)";
  }
  return "";
}

int SchedulingPlan::InstancesOn(const std::string& device) const {
  return static_cast<int>(std::count_if(instances.begin(), instances.end(),
                                        [&](const Instance& i) { return i.device == device; }));
}

std::vector<std::string> SchedulingPlan::devices() const {
  std::vector<std::string> result;
  for (const Instance& instance : instances) {
    if (std::find(result.begin(), result.end(), instance.device) == result.end()) {
      result.push_back(instance.device);
    }
  }
  return result;
}

absl::StatusOr<SchedulingPlan> PlanScheduling(const config::ModelConfig& config,
                                              const CudaInventory& cuda, int cores) {
  const bool cuda_available = cuda.usable();
  SchedulingPlan plan;
  if (config.has_max_batch_size()) {
    if (config.max_batch_size() < 0) {
      return absl::InvalidArgumentError("max_batch_size must not be negative");
    }
    plan.batching.max_batch_size = config.max_batch_size();
  }
  const config::DynamicBatching& batching = config.dynamic_batching();
  for (int size : batching.preferred_batch_size()) {
    if (size <= 0 || (plan.batching.max_batch_size > 0 && size > plan.batching.max_batch_size)) {
      return absl::InvalidArgumentError(absl::StrCat("preferred_batch_size ", size,
                                                     " is not within 1..max_batch_size (",
                                                     plan.batching.max_batch_size, ")"));
    }
    plan.batching.preferred_batch_sizes.push_back(size);
  }
  // The fields are uint64; absl::Microseconds takes int64, so larger values would turn
  // into negative durations.
  for (const auto& [field, value] :
       {std::pair<const char*, uint64_t>{"max_queue_delay_microseconds",
                                         batching.max_queue_delay_microseconds()},
        {"default_timeout_microseconds", batching.default_timeout_microseconds()}}) {
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(absl::StrCat(field, " ", value,
                                                     " is out of range (at most ",
                                                     std::numeric_limits<int64_t>::max(), ")"));
    }
  }
  plan.batching.max_queue_delay =
      absl::Microseconds(static_cast<int64_t>(batching.max_queue_delay_microseconds()));
  if (batching.max_queue_size() > 0) plan.batching.max_queue_size = batching.max_queue_size();
  plan.batching.default_timeout =
      absl::Microseconds(static_cast<int64_t>(batching.default_timeout_microseconds()));
  if (auto policy = config.parameters().find("batching_policy");
      policy != config.parameters().end()) {
    if (policy->second != "delay" && policy->second != "fair_share") {
      return absl::InvalidArgumentError(
          absl::StrCat("parameters[\"batching_policy\"] is '", policy->second.substr(0, 64),
                       "'; it takes \"delay\" (the default) or \"fair_share\""));
    }
    plan.batching.fair_share = policy->second == "fair_share";
    if (plan.batching.fair_share && plan.batching.max_queue_delay <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "parameters[\"batching_policy\"] \"fair_share\" needs "
          "dynamic_batching.max_queue_delay_microseconds above 0 (without a delay every batch "
          "closes at once and there is nothing to share)");
    }
  }

  std::vector<config::InstanceGroup> groups(config.instance_group().begin(),
                                            config.instance_group().end());
  if (groups.empty()) groups.emplace_back();
  int cpu_instances = 0;
  // Bounds by the machine: a config is data, and an unbounded count or thread number would
  // let one model starve the server (every request spawning an OpenMP team of that size).
  const int max_threads = std::max(cores, 1);
  const int max_instances = kInstancesPerCore * std::max(cores, 1);
  int64_t instances = 0;  // int64: a count near INT_MAX times the GPUs must not overflow
  for (const config::InstanceGroup& group : groups) {
    if (group.count() < 0) return absl::InvalidArgumentError("instance_group count is negative");
    if (group.intra_op_threads() < 0 || group.intra_op_threads() > max_threads) {
      return absl::InvalidArgumentError(absl::StrCat("instance_group intra_op_threads ",
                                                     group.intra_op_threads(), " is not within 0..",
                                                     max_threads, " (the cores of this machine)"));
    }
    instances += int64_t{std::max(group.count(), 1)} * std::max(group.gpus_size(), 1);
    if (instances > max_instances) {
      return absl::InvalidArgumentError(
          absl::StrCat("instance_group asks for more than ", max_instances, " instances (",
                       kInstancesPerCore, " per core of this machine)"));
    }
    const bool gpu = group.kind() == config::InstanceGroup::KIND_GPU ||
                     (group.kind() == config::InstanceGroup::KIND_AUTO && cuda_available);
    if (gpu && !cuda_available) {
      return absl::UnavailableError(
          absl::StrCat("instance_group asks for KIND_GPU, but ", cuda.WhyUnusable()));
    }
    for (int index : group.gpus()) {
      if (gpu && (index < 0 || index >= cuda.devices)) {
        return absl::InvalidArgumentError(absl::StrCat("instance_group lists GPU ", index,
                                                       ", but libtorch sees ", cuda.devices,
                                                       " CUDA device", cuda.devices == 1 ? "" : "s",
                                                       " (cuda:0..cuda:", cuda.devices - 1, ")"));
      }
    }
    if (!gpu) cpu_instances += std::max(group.count(), 1);
  }
  // One core stays with the gRPC front end; the rest is shared by the CPU instances.
  const int shared_threads = std::max(1, (cores - 1) / std::max(cpu_instances, 1));
  for (const config::InstanceGroup& group : groups) {
    const int count = std::max(group.count(), 1);
    const bool gpu = group.kind() == config::InstanceGroup::KIND_GPU ||
                     (group.kind() == config::InstanceGroup::KIND_AUTO && cuda_available);
    if (gpu) {
      std::vector<int> gpus(group.gpus().begin(), group.gpus().end());
      if (gpus.empty()) gpus.push_back(0);
      for (int index : gpus) {
        for (int i = 0; i < count; ++i) {
          plan.instances.push_back({absl::StrCat("cuda:", index),
                                    group.intra_op_threads() > 0 ? group.intra_op_threads() : 1});
        }
      }
      continue;
    }
    for (int i = 0; i < count; ++i) {
      plan.instances.push_back(
          {"cpu", group.intra_op_threads() > 0 ? group.intra_op_threads() : shared_threads});
    }
  }
  for (const std::string& device : plan.devices()) {
    const int count = plan.InstancesOn(device);
    absl::StrAppend(&plan.placement, plan.placement.empty() ? "" : ", ", count,
                    plan.placement.empty() ? (count == 1 ? " instance" : " instances") : "", " on ",
                    device);
  }
  if (config.instance_group().empty()) {
    absl::StrAppend(&plan.placement, " (no instance_group: ",
                    cuda_available ? "a usable GPU is present"
                                   : absl::StrCat("on the CPU, as ", cuda.WhyUnusable()),
                    ")");
  }
  return plan;
}

}  // namespace torchbricks::server
