#include "engine/dist/rendezvous.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "engine/base/error.h"

namespace qsft {

namespace {

using Clock = std::chrono::steady_clock;

struct Socket {
  int fd = -1;
  explicit Socket(int f) : fd(f) {}
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
};

int ms_left(Clock::time_point deadline) {
  return int(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
}

// All n bytes through fd (send or receive), each wait bounded by the deadline.
bool transfer(int fd, char* data, size_t n, bool sending, Clock::time_point deadline) {
  while (n > 0) {
    pollfd p{fd, short(sending ? POLLOUT : POLLIN), 0};
    if (::poll(&p, 1, ms_left(deadline)) <= 0) return false;
    const ssize_t k = sending ? ::send(fd, data, n, MSG_NOSIGNAL) : ::recv(fd, data, n, 0);
    if (k <= 0) return false;
    data += k;
    n -= size_t(k);
  }
  return true;
}

std::string serve(const Launch& l, const std::string& bytes, Clock::time_point deadline, double timeout_s) {
  Socket s(::socket(AF_INET6, SOCK_STREAM, 0));
  const int on = 1, off = 0;
  ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  ::setsockopt(s.fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);  // IPv4 peers too
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_any;
  addr.sin6_port = htons(uint16_t(rendezvous_port(l)));
  if (s.fd < 0 || ::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(s.fd, 128) != 0)
    throw std::runtime_error("rendezvous: rank 0 cannot listen on port " + std::to_string(rendezvous_port(l)) + ": " +
                             std::strerror(errno));
  const uint64_t n = bytes.size();
  for (int served = 1; served < l.world_size; ++served) {
    pollfd p{s.fd, POLLIN, 0};
    if (::poll(&p, 1, ms_left(deadline)) <= 0)
      throw std::runtime_error("rendezvous: only " + std::to_string(served - 1) + " of " +
                               std::to_string(l.world_size - 1) + " ranks reached rank 0 on port " +
                               std::to_string(rendezvous_port(l)) + " within " + std::to_string(int(timeout_s)) +
                               " s (a rank did not start, or MASTER_ADDR is not this host)");
    Socket c(::accept(s.fd, nullptr, nullptr));
    if (c.fd < 0 || !transfer(c.fd, const_cast<char*>(reinterpret_cast<const char*>(&n)), 8, true, deadline) ||
        !transfer(c.fd, const_cast<char*>(bytes.data()), n, true, deadline))
      --served;  // a connection that broke: its rank retries
  }
  return bytes;
}

std::string fetch(const Launch& l, Clock::time_point deadline, double timeout_s) {
  const std::string port = std::to_string(rendezvous_port(l));
  std::string why = "no answer";
  while (Clock::now() < deadline) {
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (int e = ::getaddrinfo(l.master_addr.c_str(), port.c_str(), &hints, &found)) {
      why = gai_strerror(e);
    } else {
      for (addrinfo* a = found; a; a = a->ai_next) {
        Socket s(::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
        if (s.fd < 0 || ::connect(s.fd, a->ai_addr, a->ai_addrlen) != 0) {
          why = std::strerror(errno);
          continue;
        }
        uint64_t n = 0;
        std::string bytes;
        if (transfer(s.fd, reinterpret_cast<char*>(&n), 8, false, deadline) && n < (1u << 20)) {
          bytes.resize(n);
          if (transfer(s.fd, bytes.data(), n, false, deadline)) {
            ::freeaddrinfo(found);
            return bytes;
          }
        }
        why = "the connection broke";
      }
      ::freeaddrinfo(found);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // rank 0 may not listen yet
  }
  throw std::runtime_error("rendezvous: rank " + std::to_string(l.rank) + " could not reach rank 0 at " +
                           l.master_addr + ":" + port + " within " + std::to_string(int(timeout_s)) + " s (" + why +
                           ")");
}

}  // namespace

int rendezvous_port(const Launch& l) {
  if (l.master_addr.empty() || l.master_port <= 0 || l.master_port >= 65535)
    throw input_error("launch by " + l.launcher,
                      "MASTER_ADDR and MASTER_PORT (below 65535) must name rank 0's host and a free port pair "
                      "(the rendezvous uses MASTER_PORT + 1)");
  return l.master_port + 1;
}

std::string share_from_rank0(const Launch& l, const std::string& bytes, double timeout_s) {
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  return l.rank == 0 ? serve(l, bytes, deadline, timeout_s) : fetch(l, deadline, timeout_s);
}

}  // namespace qsft
