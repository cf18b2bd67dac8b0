// MetricsHttpServer: serves GET /metrics (Prometheus text format 0.0.4) over HTTP with
// cpp-httplib, on a thread of its own. The body comes from a callback run per scrape.
// Start() and Stop() are not thread-safe with each other; scrapes run concurrently.
#ifndef TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_HTTP_SERVER_H_
#define TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace torchbricks::server {

class MetricsHttpServer {
 public:
  using Scrape = std::function<std::string()>;

  // Listens on `address`:`port` (0 picks a free port). Unavailable when it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address,
                                                                  int port, Scrape scrape);
  ~MetricsHttpServer();  // stops listening and joins the thread
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;

  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_HTTP_SERVER_H_
