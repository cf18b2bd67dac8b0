// MetricsHttpServer: serves GET /metrics (Prometheus text format 0.0.4) over HTTP/1.1 on a
// thread of its own, with the body from a callback run per scrape. One poll() loop serves
// every connection without blocking, so slow or idle clients cannot hold it: each
// connection has a fixed time to send its request and take the answer (then it is
// closed), request heads are bounded, and when all connection places are taken the
// slowest client still sending its request loses its place to the newcomer. One request
// per connection (the answer says "Connection: close"). Start() and the destructor are
// not thread-safe with each other; the scrape callback runs on the server's thread.
#ifndef TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_HTTP_SERVER_H_
#define TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace torchbricks::server {

// Bounds on the clients of a MetricsHttpServer.
struct MetricsHttpLimits {
  // How long one connection may take from accept to the last byte of its answer.
  absl::Duration connection_time = absl::Seconds(5);
  // Connections served at once.
  int max_connections = 64;
  // Largest request head (request line and headers); larger ones get 431.
  size_t max_request_bytes = 8192;
};

class MetricsHttpServer {
 public:
  using Scrape = std::function<std::string()>;

  // Listens on `address` (IPv4, IPv6 or a host name: its first address) and `port` (0
  // picks a free port). InvalidArgument for an address that does not resolve; Unavailable
  // when it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, int port, Scrape scrape,
      MetricsHttpLimits limits = MetricsHttpLimits());
  ~MetricsHttpServer();  // closes every connection and the listener, joins the thread
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  struct Connection;
  MetricsHttpServer(Scrape scrape, MetricsHttpLimits limits);

  // The poll loop, until the wake-up descriptor is written.
  void Serve();
  // Reads what `connection` sent; once its head is complete, prepares the answer.
  // False when the connection is over (closed by the client, or an error).
  bool ReadRequest(Connection& connection);
  // Sends what is left of the answer. False when the connection is over.
  bool WriteAnswer(Connection& connection);
  // Accepts one pending connection, making room for it when every place is taken.
  void Accept();

  Scrape scrape_;
  MetricsHttpLimits limits_;
  int listener_ = -1;
  int wake_ = -1;  // an eventfd; written to stop the loop
  int port_ = 0;
  std::vector<std::unique_ptr<Connection>> connections_;   // the loop thread's only
  absl::Time accept_paused_until_ = absl::InfinitePast();  // the loop thread's only
  std::thread thread_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_OBSERVABILITY_METRICS_HTTP_SERVER_H_
