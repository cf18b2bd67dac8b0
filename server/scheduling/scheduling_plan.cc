#include "server/scheduling/scheduling_plan.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace torchbricks::server {
namespace {

// Model instances allowed per core, over all instance groups of one model.
constexpr int kInstancesPerCore = 4;

// Cores left to the gRPC front end; CPU instances share the rest of the machine's cores.
constexpr int kFrontEndCores = 1;

// Intra-op threads of a GPU instance whose group does not set them: the GPU does the work.
constexpr int kGpuInstanceThreads = 1;

// The GPU of a KIND_GPU (or KIND_AUTO) group that lists none.
constexpr int kDefaultGpu = 0;

// The most characters of an unknown batching_policy an error message quotes.
constexpr size_t kQuotedPolicyChars = 64;

// max_batch_size and preferred_batch_size, checked against each other.
absl::Status PlanBatchSizes(const config::ModelConfig& config, BatchPolicy* policy) {
  if (config.has_max_batch_size()) {
    if (config.max_batch_size() < 0) {
      return absl::InvalidArgumentError("max_batch_size must not be negative");
    }
    policy->max_batch_size = config.max_batch_size();
  }
  for (int size : config.dynamic_batching().preferred_batch_size()) {
    if (size <= 0 || (policy->max_batch_size > 0 && size > policy->max_batch_size)) {
      return absl::InvalidArgumentError(absl::StrCat("preferred_batch_size ", size,
                                                     " is not within 1..max_batch_size (",
                                                     policy->max_batch_size, ")"));
    }
    policy->preferred_batch_sizes.push_back(size);
  }
  return absl::OkStatus();
}

// The queue's delay, size and timeout.
absl::Status PlanQueue(const config::DynamicBatching& batching, BatchPolicy* policy) {
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
  policy->max_queue_delay =
      absl::Microseconds(static_cast<int64_t>(batching.max_queue_delay_microseconds()));
  if (batching.max_queue_size() > 0) policy->max_queue_size = batching.max_queue_size();
  policy->default_timeout =
      absl::Microseconds(static_cast<int64_t>(batching.default_timeout_microseconds()));
  return absl::OkStatus();
}

// parameters["batching_policy"]: "delay" (the default) or "fair_share", which needs a
// queue delay (PlanQueue() first).
absl::Status PlanBatchingPolicy(const config::ModelConfig& config, BatchPolicy* policy) {
  auto found = config.parameters().find("batching_policy");
  if (found == config.parameters().end()) return absl::OkStatus();
  const std::string& name = found->second;
  if (name != "delay" && name != "fair_share") {
    return absl::InvalidArgumentError(
        absl::StrCat("parameters[\"batching_policy\"] is '", name.substr(0, kQuotedPolicyChars),
                     "'; it takes \"delay\" (the default) or \"fair_share\""));
  }
  policy->fair_share = name == "fair_share";
  if (policy->fair_share && policy->max_queue_delay <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "parameters[\"batching_policy\"] \"fair_share\" needs "
        "dynamic_batching.max_queue_delay_microseconds above 0 (without a delay every batch "
        "closes at once and there is nothing to share)");
  }
  return absl::OkStatus();
}

// parameters["adaptive_queue_delay"]: "true" (the default) or "false".
absl::Status PlanAdaptiveQueueDelay(const config::ModelConfig& config, BatchPolicy* policy) {
  auto found = config.parameters().find("adaptive_queue_delay");
  if (found == config.parameters().end()) return absl::OkStatus();
  const std::string& value = found->second;
  if (value != "true" && value != "false") {
    return absl::InvalidArgumentError(absl::StrCat(
        "parameters[\"adaptive_queue_delay\"] is '", value.substr(0, kQuotedPolicyChars),
        "'; it takes \"true\" (the default) or \"false\""));
  }
  policy->adaptive_queue_delay = value == "true";
  return absl::OkStatus();
}

// The config's instance groups; without any, one default group (KIND_AUTO, one instance).
std::vector<config::InstanceGroup> InstanceGroupsOf(const config::ModelConfig& config) {
  std::vector<config::InstanceGroup> groups(config.instance_group().begin(),
                                            config.instance_group().end());
  if (groups.empty()) groups.emplace_back();
  return groups;
}

// Instances of `group` (per GPU for a GPU group); count 0 means 1.
int InstanceCount(const config::InstanceGroup& group) { return std::max(group.count(), 1); }

bool RunsOnGpu(const config::InstanceGroup& group, bool cuda_available) {
  return group.kind() == config::InstanceGroup::KIND_GPU ||
         (group.kind() == config::InstanceGroup::KIND_AUTO && cuda_available);
}

// A GPU group asks for GPUs that `cuda` has.
absl::Status CheckGpus(const config::InstanceGroup& group, const CudaInventory& cuda) {
  if (!cuda.usable()) {
    return absl::UnavailableError(
        absl::StrCat("instance_group asks for KIND_GPU, but ", cuda.WhyUnusable()));
  }
  for (int index : group.gpus()) {
    if (index < 0 || index >= cuda.devices) {
      return absl::InvalidArgumentError(absl::StrCat(
          "instance_group lists GPU ", index, ", but libtorch sees ", cuda.devices, " CUDA device",
          cuda.devices == 1 ? "" : "s", " (cuda:0..cuda:", cuda.devices - 1, ")"));
    }
  }
  return absl::OkStatus();
}

// Checks the groups against the machine's bounds, in order; returns the CPU instances.
// A config is data, and an unbounded count or thread number would let one model starve
// the server (every request spawning an OpenMP team of that size).
absl::StatusOr<int> CheckInstanceGroups(const std::vector<config::InstanceGroup>& groups,
                                        const CudaInventory& cuda, int cores) {
  const int max_threads = std::max(cores, 1);
  const int max_instances = kInstancesPerCore * std::max(cores, 1);
  int64_t instances = 0;  // int64: a count near INT_MAX times the GPUs must not overflow
  int cpu_instances = 0;
  for (const config::InstanceGroup& group : groups) {
    if (group.count() < 0) return absl::InvalidArgumentError("instance_group count is negative");
    if (group.intra_op_threads() < 0 || group.intra_op_threads() > max_threads) {
      return absl::InvalidArgumentError(absl::StrCat("instance_group intra_op_threads ",
                                                     group.intra_op_threads(), " is not within 0..",
                                                     max_threads, " (the cores of this machine)"));
    }
    instances += int64_t{InstanceCount(group)} * std::max(group.gpus_size(), 1);
    if (instances > max_instances) {
      return absl::InvalidArgumentError(
          absl::StrCat("instance_group asks for more than ", max_instances, " instances (",
                       kInstancesPerCore, " per core of this machine)"));
    }
    if (RunsOnGpu(group, cuda.usable())) {
      RETURN_IF_ERROR(CheckGpus(group, cuda));
    } else {
      cpu_instances += InstanceCount(group);
    }
  }
  return cpu_instances;
}

// Appends `group`'s instances: on each of its GPUs, or on the CPU with `cpu_threads`
// intra-op threads each unless the group sets them.
void AddInstances(const config::InstanceGroup& group, bool gpu, int cpu_threads,
                  std::vector<SchedulingPlan::Instance>* instances) {
  const int count = InstanceCount(group);
  if (!gpu) {
    for (int i = 0; i < count; ++i) {
      instances->push_back(
          {"cpu", group.intra_op_threads() > 0 ? group.intra_op_threads() : cpu_threads});
    }
    return;
  }
  std::vector<int> gpus(group.gpus().begin(), group.gpus().end());
  if (gpus.empty()) gpus.push_back(kDefaultGpu);
  for (int index : gpus) {
    for (int i = 0; i < count; ++i) {
      instances->push_back({absl::StrCat("cuda:", index), group.intra_op_threads() > 0
                                                              ? group.intra_op_threads()
                                                              : kGpuInstanceThreads});
    }
  }
}

// SchedulingPlan::placement for `plan`'s instances.
std::string Placement(const SchedulingPlan& plan, const config::ModelConfig& config,
                      const CudaInventory& cuda) {
  std::string placement;
  for (const std::string& device : plan.devices()) {
    const int count = plan.InstancesOn(device);
    absl::StrAppend(&placement, placement.empty() ? "" : ", ", count,
                    placement.empty() ? (count == 1 ? " instance" : " instances") : "", " on ",
                    device);
  }
  if (config.instance_group().empty()) {
    absl::StrAppend(&placement, " (no instance_group: ",
                    cuda.usable() ? "a usable GPU is present"
                                  : absl::StrCat("on the CPU, as ", cuda.WhyUnusable()),
                    ")");
  }
  return placement;
}

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
  SchedulingPlan plan;
  RETURN_IF_ERROR(PlanBatchSizes(config, &plan.batching));
  RETURN_IF_ERROR(PlanQueue(config.dynamic_batching(), &plan.batching));
  RETURN_IF_ERROR(PlanBatchingPolicy(config, &plan.batching));
  RETURN_IF_ERROR(PlanAdaptiveQueueDelay(config, &plan.batching));
  const std::vector<config::InstanceGroup> groups = InstanceGroupsOf(config);
  ASSIGN_OR_RETURN(const int cpu_instances, CheckInstanceGroups(groups, cuda, cores));
  // The cores left by the front end, shared evenly by the CPU instances (one thread at least).
  const int cpu_threads = std::max(1, (cores - kFrontEndCores) / std::max(cpu_instances, 1));
  for (const config::InstanceGroup& group : groups) {
    AddInstances(group, RunsOnGpu(group, cuda.usable()), cpu_threads, &plan.instances);
  }
  plan.placement = Placement(plan, config, cuda);
  return plan;
}

}  // namespace torchbricks::server
