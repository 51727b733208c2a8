/*
 * The web server of the critest nginx, hostnet-nginx and httpd images: a
 * small HTTP/1.0 server that answers every GET with 200 and a page. What it
 * does besides depends on the name it runs as:
 *   nginx  sets its command line to "nginx: master process <argv>" (as
 *          nginx's master does; specs read /proc/1/cmdline), writes its pid
 *          to /var/run/nginx.pid, listens on the port in /etc/nginx/port
 *          (80 without one), exits 0 on SIGQUIT, SIGTERM or SIGINT;
 *   httpd  logs "AH00094: Command line: '<argv>'" to stderr as Apache does,
 *          listens on 80, exits 0 on SIGWINCH, SIGTERM or SIGINT.
 * It serves IPv6 and IPv4 on one dual-stack socket when the netns has IPv6.
 * Built at test time with `gcc -static -Os`.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NGINX_TITLE "nginx: master process"

static volatile sig_atomic_t stopping;

static void on_stop(int signo) {
  (void)signo;
  stopping = 1;
}

static void handle_stop(int signo) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop; /* no SA_RESTART: accept() returns EINTR */
  sigaction(signo, &sa, NULL);
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* argv joined with spaces. */
static char *join(int argc, char **argv) {
  size_t len = 1;
  for (int i = 0; i < argc; i++)
    len += strlen(argv[i]) + 1;
  char *out = calloc(len, 1);
  if (!out)
    exit(3);
  for (int i = 0; i < argc; i++) {
    if (i)
      strcat(out, " ");
    strcat(out, argv[i]);
  }
  return out;
}

static int listen_on(int port) {
  int one = 1, zero = 0;
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd >= 0) {
    struct sockaddr_in6 addr6;
    memset(&addr6, 0, sizeof(addr6));
    addr6.sin6_family = AF_INET6;
    addr6.sin6_port = htons(port);
    addr6.sin6_addr = in6addr_any;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (struct sockaddr *)&addr6, sizeof(addr6)) == 0 && listen(fd, 64) == 0)
      return fd;
    close(fd);
  }
  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    perror("socket");
    exit(1);
  }
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
    fprintf(stderr, "listen on port %d: %s\n", port, strerror(errno));
    exit(1);
  }
  return fd;
}

static void serve(int client, const char *server, const char *page) {
  struct timeval timeout = {5, 0};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char request[8192];
  size_t used = 0;
  while (used < sizeof(request) - 1) {
    ssize_t n = read(client, request + used, sizeof(request) - 1 - used);
    if (n <= 0)
      break;
    used += (size_t)n;
    request[used] = '\0';
    if (strstr(request, "\r\n\r\n") || strstr(request, "\n\n"))
      break;
  }
  request[used] = '\0';
  char *line_end = strpbrk(request, "\r\n");
  if (line_end)
    *line_end = '\0';
  int head = strncmp(request, "HEAD ", 5) == 0;
  char header[512];
  int len = snprintf(header, sizeof(header),
                     "HTTP/1.0 200 OK\r\nServer: %s\r\nContent-Type: text/html\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     server, strlen(page));
  (void)!write(client, header, (size_t)len);
  if (!head)
    (void)!write(client, page, strlen(page));
  printf("\"%s\" 200 %zu\n", request, head ? 0 : strlen(page));
  fflush(stdout);
  close(client);
}

static int nginx_port(void) {
  FILE *file = fopen("/etc/nginx/port", "r");
  int port = 80;
  if (file) {
    if (fscanf(file, "%d", &port) != 1)
      port = 80;
    fclose(file);
  }
  return port;
}

int main(int argc, char **argv) {
  const char *name = base_name(argv[0]);
  int nginx = strncmp(argv[0], NGINX_TITLE, strlen(NGINX_TITLE)) == 0 || strcmp(name, "nginx") == 0;

  if (nginx && strncmp(argv[0], NGINX_TITLE, strlen(NGINX_TITLE)) != 0) {
    /* Re-exec under the master's title; exec'ing the real path keeps the
     * process name (comm) "nginx" for pidof and pgrep. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
      self[n] = '\0';
      char *args = join(argc, argv);
      size_t len = strlen(NGINX_TITLE) + strlen(args) + 2;
      char *title = malloc(len);
      if (title) {
        snprintf(title, len, "%s %s", NGINX_TITLE, args);
        char *new_argv[] = {title, NULL};
        execv(self, new_argv);
      }
    }
    perror("re-exec as the nginx master");
  }

  setvbuf(stdout, NULL, _IOLBF, 0);
  int port;
  const char *server;
  const char *page;
  if (nginx) {
    port = nginx_port();
    server = "nginx/1.14.2";
    page = "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n"
           "<body><h1>Welcome to nginx!</h1></body></html>\n";
    handle_stop(SIGQUIT);
    mkdir("/var/run", 0755);
    FILE *pidfile = fopen("/var/run/nginx.pid", "w");
    if (pidfile) {
      fprintf(pidfile, "%d\n", (int)getpid());
      fclose(pidfile);
    } else {
      perror("write /var/run/nginx.pid");
    }
  } else {
    port = 80;
    server = "Apache/2.4.39 (Unix)";
    page = "<html><body><h1>It works!</h1></body></html>\n";
    handle_stop(SIGWINCH);
    char *args = join(argc, argv);
    fprintf(stderr, "[core:notice] [pid %d] AH00094: Command line: '%s'\n", (int)getpid(), args);
  }
  handle_stop(SIGTERM);
  handle_stop(SIGINT);
  signal(SIGPIPE, SIG_IGN);

  int fd = listen_on(port);
  printf("listening on port %d\n", port);
  while (!stopping) {
    int client = accept(fd, NULL, NULL);
    if (client < 0) {
      if (errno == EINTR)
        continue;
      perror("accept");
      continue;
    }
    serve(client, server, page);
  }
  if (nginx)
    unlink("/var/run/nginx.pid");
  return 0;
}
