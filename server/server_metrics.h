// The server's Prometheus metrics, gathered at scrape time from the counters the serving
// path keeps anyway (VersionStats per version, the request gate, the repository) and
// from /proc for the process. Nothing here is on the request path. Thread-safe.
#ifndef TORCHBRICKS_SERVER_SERVER_METRICS_H_
#define TORCHBRICKS_SERVER_SERVER_METRICS_H_

#include <string>

#include "server/grpc/service_state.h"

namespace torchbricks::server {

// The metrics text (exposition format 0.0.4) for `state` (borrowed for the call).
std::string ScrapeMetrics(ServiceState& state);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SERVER_METRICS_H_
