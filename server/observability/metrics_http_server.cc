#include "server/observability/metrics_http_server.h"

#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace torchbricks::server {

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, int port, Scrape scrape) {
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->http_ = std::make_unique<httplib::Server>();
  // cpp-httplib's default also sets SO_REUSEPORT, which lets a second process bind the same
  // port and take half the scrapes: keep only SO_REUSEADDR (restart after TIME_WAIT).
  server->http_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
  });
  server->http_->Get("/metrics", [scrape](const httplib::Request&, httplib::Response& response) {
    response.set_content(scrape(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server->port_ = port == 0 ? server->http_->bind_to_any_port(address)
                            : (server->http_->bind_to_port(address, port) ? port : -1);
  if (server->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for metrics on ", address, ":", port));
  }
  server->thread_ = std::thread([http = server->http_.get()] { http->listen_after_bind(); });
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (http_ != nullptr) http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace torchbricks::server
