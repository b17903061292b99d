/*
 * The boot bench's Teleport stand-in, compiled: `teleport start` as a native
 * binary starts, as the real (Go) Teleport does, in a few milliseconds,
 * where test/bin/teleport is a Node.js program whose own start (some 90 ms of
 * Node.js) every boot would otherwise wait for. It does what the boot relies
 * on and no less: reads teleport.yaml (version v3, only sections Teleport
 * knows, teleport.diag_addr, the join token file it names must be readable),
 * refuses a config it cannot use, and only then serves the diagnostic
 * endpoint: /healthz, /readyz (400 "starting" until
 * TELEPORT_STANDIN_READY_DELAY_MS has passed, default 200, then 200) and
 * /metrics (process_state, teleport_build_info). SIGTERM and SIGINT stop it,
 * SIGHUP is a reload. The tests keep test/bin/teleport, which checks far more.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VERSION_NUMBER "17.0.0-standin"

static const char *TOP_LEVEL[] = {"version", "teleport", "auth_service", "ssh_service", "proxy_service", "kubernetes_service",
                                  "app_service", "db_service", "metrics_service", "windows_desktop_service", "tracing_service",
                                  "discovery_service", "okta_service", "jamf_service", "debug_service", "relay_service", NULL};

static void fail(const char *fmt, const char *arg) {
  fprintf(stderr, "ERROR: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  exit(1);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* A scalar as YAML writes it plainly or quoted: trailing blanks and one pair of quotes removed. */
static char *scalar(char *v) {
  while (*v == ' ') v++;
  size_t n = strlen(v);
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\r')) v[--n] = '\0';
  if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
    v[n - 1] = '\0';
    v++;
  }
  return v;
}

struct config {
  char version[32];
  char diag[128];
  char token[4096];
};

/* Block-style YAML as teleboot renders it: top-level sections, and the teleport section's keys. */
static void load_config(const char *file, struct config *c) {
  FILE *f = fopen(file, "r");
  if (!f) fail("failed to read the config file %s", file);
  char line[8192], section[128] = "", sub[128] = "";
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    int indent = (int)strspn(line, " ");
    char *key = line + indent;
    if (*key == '\0' || *key == '#' || *key == '-') continue;
    char *colon = strchr(key, ':');
    if (!colon) fail("failed parsing the config file: a line is not \"key: value\": %s", key);
    *colon = '\0';
    char *value = scalar(colon + 1);
    if (indent == 0) {
      int known = 0;
      for (const char **k = TOP_LEVEL; *k; k++) known |= strcmp(*k, key) == 0;
      if (!known) fail("failed parsing the config file: field %s not found in type config.FileConfig", key);
      snprintf(section, sizeof section, "%s", key);
      if (strcmp(key, "version") == 0) snprintf(c->version, sizeof c->version, "%s", value);
    } else if (strcmp(section, "teleport") == 0 && indent == 2) {
      snprintf(sub, sizeof sub, "%s", key);
      if (strcmp(key, "diag_addr") == 0) snprintf(c->diag, sizeof c->diag, "%s", value);
      if (strcmp(key, "auth_token") == 0) snprintf(c->token, sizeof c->token, "%s", value);
    } else if (strcmp(section, "teleport") == 0 && indent == 4 && strcmp(sub, "join_params") == 0 && strcmp(key, "token_name") == 0) {
      snprintf(c->token, sizeof c->token, "%s", value);
    }
  }
  fclose(f);
  if (strcmp(c->version, "v3") != 0) fail("the stand-in only accepts \"version: v3\" configs, got \"%s\"", c->version);
  if (c->diag[0] == '\0') fail("%s: no teleport.diag_addr (the bench waits for /readyz)", file);
  if (c->token[0] == '/') {
    FILE *t = fopen(c->token, "r");
    if (!t || fgetc(t) == EOF) fail("failed to read join token: %s", c->token);
    fclose(t);
  }
}

static volatile sig_atomic_t stopping = 0;
static void on_stop(int sig) {
  (void)sig;
  stopping = 1;
}
static void on_reload(int sig) { (void)sig; }

static void reply(int fd, int code, const char *type, const char *body) {
  char head[256];
  const char *reason = code == 200 ? "OK" : code == 400 ? "Bad Request" : "Not Found";
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
                   reason, type, strlen(body));
  if (write(fd, head, n) < 0 || write(fd, body, strlen(body)) < 0) return;
}

static void serve(int fd, int ready) {
  char req[2048];
  ssize_t got = 0, n;
  /* The request line is all it reads: a client of the diag endpoint sends a GET without a body. */
  while (got < (ssize_t)sizeof req - 1 && (n = read(fd, req + got, sizeof req - 1 - got)) > 0) {
    got += n;
    req[got] = '\0';
    if (strstr(req, "\r\n\r\n")) break;
  }
  req[got] = '\0';
  char path[256] = "";
  if (sscanf(req, "%*s %255s", path) != 1) return;
  char *q = strchr(path, '?');
  if (q) *q = '\0';
  if (strcmp(path, "/healthz") == 0) return reply(fd, 200, "application/json", "{\"status\":\"ok\"}");
  if (strcmp(path, "/readyz") == 0)
    return ready ? reply(fd, 200, "application/json", "{\"status\":\"ok\"}")
                 : reply(fd, 400, "application/json", "{\"status\":\"teleport is starting and hasn't joined the cluster yet\"}");
  if (strcmp(path, "/metrics") == 0) {
    char body[512];
    snprintf(body, sizeof body,
             "# TYPE process_state gauge\nprocess_state %d\n# TYPE teleport_build_info gauge\n"
             "teleport_build_info{gitref=\"v%s-0-gstandin\",goversion=\"go1.22\",version=\"%s\"} 1\n",
             ready ? 0 : 3, VERSION_NUMBER, VERSION_NUMBER);
    return reply(fd, 200, "text/plain; version=0.0.4", body);
  }
  reply(fd, 404, "application/json", "{\"error\":{\"message\":\"not found\"}}");
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "version") == 0) {
    printf("Teleport v%s git:v%s-0-gstandin go1.22\n", VERSION_NUMBER, VERSION_NUMBER);
    return 0;
  }
  if (argc < 2 || strcmp(argv[1], "start") != 0) fail("the compiled stand-in knows only `teleport start` and `teleport version`%s", "");
  const char *file = "/etc/teleport.yaml";
  for (int i = 2; i < argc; i++) {
    if (strncmp(argv[i], "--config=", 9) == 0) file = argv[i] + 9;
    else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) file = argv[++i];
    else fail("unknown flag '%s', try --help", argv[i]);
  }
  struct config c = {0};
  load_config(file, &c);

  char host[128];
  int port;
  char *sep = strrchr(c.diag, ':');
  if (!sep || sscanf(sep + 1, "%d", &port) != 1 || port <= 0 || port > 65535) fail("invalid diag_addr \"%s\": expected host:port", c.diag);
  snprintf(host, sizeof host, "%.*s", (int)(sep - c.diag), c.diag);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &addr.sin_addr) != 1) fail("diag_addr host %s: an IPv4 address is expected", host);

  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_stop);
  signal(SIGINT, on_stop);
  signal(SIGHUP, on_reload);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 64) != 0)
    fail("failed to listen on diag_addr %s", c.diag);

  const char *delay_env = getenv("TELEPORT_STANDIN_READY_DELAY_MS");
  double ready_at = now_ms() + (delay_env && *delay_env ? atof(delay_env) : 200);
  printf("Teleport v%s starting: pid=%d diag_addr=%s (compiled stand-in)\n", VERSION_NUMBER, (int)getpid(), c.diag);
  fflush(stdout);
  int announced = 0;
  while (!stopping) {
    int ready = now_ms() >= ready_at;
    if (ready && !announced) {
      announced = 1;
      printf("Teleport is ready\n");
      fflush(stdout);
    }
    struct pollfd p = {.fd = s, .events = POLLIN};
    int wait = ready ? -1 : (int)(ready_at - now_ms()) + 1;
    if (!ready && wait < 0) wait = 0;
    if (poll(&p, 1, wait) <= 0) continue;
    int fd = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue;
    struct timeval limit = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    serve(fd, now_ms() >= ready_at);
    close(fd);
  }
  return 0;
}
