// ModelControlMode: how the set of loaded models changes after start-up (Triton's
// --model-control-mode). A plain enum, shared by the repository manager and the flags.
#ifndef TORCHBRICKS_SERVER_REPOSITORY_MODEL_CONTROL_MODE_H_
#define TORCHBRICKS_SERVER_REPOSITORY_MODEL_CONTROL_MODE_H_

namespace torchbricks::server {

enum class ModelControlMode {
  kNone,      // load every model at start; never change; load/unload RPCs are refused
  kPoll,      // load every model at start; re-scan the repository periodically
  kExplicit,  // load only --load-model models at start; change through load/unload RPCs
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_REPOSITORY_MODEL_CONTROL_MODE_H_
