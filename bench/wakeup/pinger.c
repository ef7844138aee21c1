/*
 * Sends `count` 28-byte messages to 127.0.0.1:<port>, one every `gap_us` µs, each after the echo
 * of the one before: every message wakes the server from sleep. Usage: pinger <port> <count>
 * <gap_us>. Exits 0 when every echo came back.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) return 64;
  int count = atoi(argv[2]), gap = atoi(argv[3]), one = 1;
  int sock = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(sock, (struct sockaddr *)&address, sizeof address)) return 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const char message[28] = "wake-up-floor-0123456789abc";
  char echo[64];
  for (int i = 0; i < count; i++) {
    if (write(sock, message, sizeof message) != sizeof message) return 2;
    for (size_t got = 0; got < sizeof message;) {
      ssize_t n = read(sock, echo, sizeof echo);
      if (n <= 0) return 3;
      got += (size_t)n;
    }
    usleep((useconds_t)gap);
  }
  return 0;
}
