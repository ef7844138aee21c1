/*
 * The least a server can do per wake-up: one epoll loop that echoes what it reads on loopback TCP.
 * Usage: echo <port>. Measures the machine's cost per wake-up beside a Deno server's
 * (bench/wakeup/floor.sh; BENCHMARKS.md "Session 32").
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) return 64;
  int one = 1;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 16)) return 1;
  int poller = epoll_create1(0);
  struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(poller, EPOLL_CTL_ADD, listener, &event);
  static char buffer[65536];
  struct epoll_event ready[64];
  for (;;) {
    int count = epoll_wait(poller, ready, 64, -1);
    for (int i = 0; i < count; i++) {
      int fd = ready[i].data.fd;
      if (fd == listener) {
        int peer = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
        if (peer < 0) continue;
        setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event added = {.events = EPOLLIN, .data.fd = peer};
        epoll_ctl(poller, EPOLL_CTL_ADD, peer, &added);
      } else {
        ssize_t got = read(fd, buffer, sizeof buffer);
        if (got <= 0) {
          close(fd);
          continue;
        }
        if (write(fd, buffer, (size_t)got) != got) close(fd);
      }
    }
  }
}
