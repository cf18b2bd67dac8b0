#include "server/observability/metrics_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/observability/logging.h"

namespace torchbricks::server {

struct MetricsHttpServer::Connection {
  int fd = -1;
  absl::Time deadline;
  std::string request;  // the head received so far
  std::string answer;   // empty until the head is complete
  size_t sent = 0;
  // The answer is sent and our side shut: what the client still sends is read and
  // dropped until it closes, so that closing never resets the connection under an answer
  // the client has not read yet.
  bool draining = false;
  bool answering() const { return !answer.empty() && !draining; }
  ~Connection() {
    if (fd >= 0) close(fd);
  }
};

namespace {

std::string Answer(int code, absl::string_view reason, absl::string_view content_type,
                   absl::string_view body) {
  return absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

std::string PlainAnswer(int code, absl::string_view reason) {
  return Answer(code, reason, "text/plain; charset=utf-8", absl::StrCat(reason, "\n"));
}

bool SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// A bound, listening, non-blocking socket on `address`'s first address; its port in `*port`.
absl::StatusOr<int> Listen(const std::string& address, int port, int* bound_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int error = getaddrinfo(address.c_str(), service.c_str(), &hints, &found); error != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", address, "' does not resolve: ", gai_strerror(error)));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(found, freeaddrinfo);
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  // SO_REUSEADDR only (a restart after TIME_WAIT); no SO_REUSEPORT, so a port in use is an
  // error rather than silently shared.
  const int yes = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 128) != 0 ||
      !SetNonBlocking(fd)) {
    const std::string why = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen for metrics on ", address, ":", port, ": ", why));
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  *bound_port =
      ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return fd;
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(Scrape scrape, MetricsHttpLimits limits)
    : scrape_(std::move(scrape)), limits_(limits) {}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, int port, Scrape scrape, MetricsHttpLimits limits) {
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer(std::move(scrape), limits));
  absl::StatusOr<int> listener = Listen(address, port, &server->port_);
  if (!listener.ok()) return listener.status();
  server->listener_ = *listener;
  server->wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->wake_ < 0) {
    return absl::UnavailableError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  server->thread_ = std::thread([raw = server.get()] { raw->Serve(); });
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t written = write(wake_, &one, sizeof(one));
    thread_.join();
  }
  connections_.clear();
  if (listener_ >= 0) close(listener_);
  if (wake_ >= 0) close(wake_);
}

void MetricsHttpServer::Serve() {
  std::vector<pollfd> polled;
  while (true) {
    polled.clear();
    polled.push_back({wake_, POLLIN, 0});
    // While descriptors are exhausted, pending connections cannot be accepted: leave the
    // listener out for a moment rather than spin on it.
    const bool accepting = absl::Now() >= accept_paused_until_;
    polled.push_back({accepting ? listener_ : -1, POLLIN, 0});
    absl::Time next_deadline = accepting ? absl::InfiniteFuture() : accept_paused_until_;
    for (const auto& connection : connections_) {
      polled.push_back(
          {connection->fd, static_cast<short>(connection->answering() ? POLLOUT : POLLIN), 0});
      next_deadline = std::min(next_deadline, connection->deadline);
    }
    int timeout_ms = -1;
    if (next_deadline != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(std::clamp<int64_t>(
          absl::ToInt64Milliseconds(next_deadline - absl::Now()) + 1, 0, 60'000));
    }
    if (poll(polled.data(), polled.size(), timeout_ms) < 0 && errno != EINTR) {
      Log(LogLevel::kError,
          absl::StrCat("the metrics endpoint stops: poll failed: ", std::strerror(errno)));
      return;
    }
    if (polled[0].revents != 0) return;  // stop

    // Serve the connections polled this round (Accept() below may add or evict some).
    const absl::Time now = absl::Now();
    std::vector<std::unique_ptr<Connection>> kept;
    for (size_t i = 0; i < connections_.size(); ++i) {
      Connection& connection = *connections_[i];
      const short events = polled[i + 2].revents;
      bool alive = now < connection.deadline;
      if (alive && (events & (POLLERR | POLLNVAL)) != 0) alive = false;
      if (alive && connection.draining && (events & (POLLIN | POLLHUP)) != 0) {
        char ignored[1024];
        const ssize_t received = recv(connection.fd, ignored, sizeof(ignored), 0);
        alive = received > 0 || (received < 0 && (errno == EAGAIN || errno == EINTR));
      } else if (alive && !connection.answering() && (events & (POLLIN | POLLHUP)) != 0) {
        alive = ReadRequest(connection);
      }
      if (alive && connection.answering() && (events & POLLOUT) != 0) {
        alive = WriteAnswer(connection);
      }
      if (alive) kept.push_back(std::move(connections_[i]));
    }
    connections_ = std::move(kept);
    if ((polled[1].revents & POLLIN) != 0) Accept();
  }
}

void MetricsHttpServer::Accept() {
  const int fd = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      accept_paused_until_ = absl::Now() + absl::Milliseconds(100);
    }
    return;  // or the client gave up already
  }
  if (static_cast<int>(connections_.size()) >= limits_.max_connections) {
    // Every place is taken. A connection already answered (draining) goes first; else the
    // client that has been sending its request longest, the slowest (a scrape sends a few
    // hundred bytes at once), gives up its place.
    auto slowest = connections_.end();
    for (auto it = connections_.begin(); it != connections_.end(); ++it) {
      if ((*it)->answering()) continue;
      if (slowest == connections_.end() || ((*it)->draining && !(*slowest)->draining) ||
          ((*it)->draining == (*slowest)->draining && (*it)->deadline < (*slowest)->deadline)) {
        slowest = it;
      }
    }
    if (slowest == connections_.end()) {
      close(fd);  // every place is sending an answer: the newcomer retries
      return;
    }
    connections_.erase(slowest);
  }
  auto connection = std::make_unique<Connection>();
  connection->fd = fd;
  connection->deadline = absl::Now() + limits_.connection_time;
  connections_.push_back(std::move(connection));
}

bool MetricsHttpServer::ReadRequest(Connection& connection) {
  char buffer[4096];
  const ssize_t received = recv(connection.fd, buffer, sizeof(buffer), 0);
  if (received == 0) return false;
  if (received < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  if (connection.answering()) return true;  // the answer is set; the rest is dropped
  connection.request.append(buffer, static_cast<size_t>(received));
  const size_t head_end = connection.request.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    if (connection.request.size() > limits_.max_request_bytes) {
      connection.answer = PlainAnswer(431, "Request Header Fields Too Large");
    }
    return true;
  }
  if (head_end > limits_.max_request_bytes) {
    connection.answer = PlainAnswer(431, "Request Header Fields Too Large");
    return true;
  }
  const absl::string_view head(connection.request.data(), head_end);
  const absl::string_view request_line = head.substr(0, head.find("\r\n"));
  std::vector<absl::string_view> parts = absl::StrSplit(request_line, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    connection.answer = PlainAnswer(400, "Bad Request");
  } else {
    const absl::string_view path = parts[1].substr(0, parts[1].find('?'));
    if (path != "/metrics") {
      connection.answer = PlainAnswer(404, "Not Found");
    } else if (parts[0] != "GET" && parts[0] != "HEAD") {
      connection.answer = PlainAnswer(405, "Method Not Allowed");
    } else {
      connection.answer = Answer(200, "OK", "text/plain; version=0.0.4; charset=utf-8", scrape_());
      if (parts[0] == "HEAD") {
        connection.answer.resize(connection.answer.find("\r\n\r\n") + 4);
      }
    }
  }
  return true;
}

bool MetricsHttpServer::WriteAnswer(Connection& connection) {
  const ssize_t sent = send(connection.fd, connection.answer.data() + connection.sent,
                            connection.answer.size() - connection.sent, MSG_NOSIGNAL);
  if (sent < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  connection.sent += static_cast<size_t>(sent);
  if (connection.sent < connection.answer.size()) return true;
  shutdown(connection.fd, SHUT_WR);
  connection.draining = true;
  return true;
}

}  // namespace torchbricks::server
