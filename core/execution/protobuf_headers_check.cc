// Build-time check: code that sees both libtorch's and our protobuf headers compiles against
// Debian's protobuf, the one our generated *.pb.h and gRPC are built with. The torch wheel
// bundles older protobuf headers in torch/include/google; cmake/torch.cmake keeps them off the
// include path. If they were found first, this file (and the build) fails.
#include <google/protobuf/stubs/common.h>
#include <torch/script.h>

#include "proto/bricks.pb.h"

static_assert(GOOGLE_PROTOBUF_VERSION == TORCHBRICKS_EXPECTED_PROTOBUF_VERSION,
              "protobuf headers other than the system's (Debian's libprotobuf-dev) were found: "
              "torch/include/google must stay off the include path (cmake/torch.cmake)");
