/* workbench.h: a C guest's way to the host's services.  Two ways in, the same services, checks and records:
 *
 * 1. Through /dev/workbench (no new imports): each service is a node; write one JSON request into it, open it
 *    again, read the JSON response.  The node exists only when a grant gives it (network:... -> http,
 *    module:call:NAME -> call/NAME); otherwise open() fails with EACCES and the attempt is recorded.
 *
 *      char out[4096];
 *      long n = wb_call("wordcount", "{\"text\": \"a b a\"}", out, sizeof out);   // {"ok": true, "result": ...}
 *      long m = wb_http_get("http://localhost:8000/", out, sizeof out);          // {"ok": true, "status": ...}
 *
 * 2. Direct host imports (one host call per request instead of six file calls): wb_http_request, wb_http_get_direct,
 *    wb_call_direct.  Using one makes the module import workbench::http_request or workbench::call, and such a
 *    module runs only under the matching grant (network:..., module:call:...): without it the sandbox refuses
 *    it before it starts (LinkError), and records the refusal.
 *
 *      long k = wb_call_direct("wordcount", "{\"text\": \"a b a\"}", out, sizeof out);
 *
 * Every function returns the response's length (NUL-terminated in out, cut to cap - 1 bytes; the direct
 * ones return the full length, so more than cap - 1 means it was cut), or -1 with errno set (EFAULT: a
 * buffer outside the module's memory).  Responses are JSON; "ok": false carries "error" and "reason".
 */
#ifndef WORKBENCH_H
#define WORKBENCH_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WB_DEVICE "/dev/workbench/"

/* Send `request` (len bytes) to /dev/workbench/<node>; read the response into out. */
static inline long wb_exchange(const char *node, const char *request, size_t len, char *out, size_t cap) {
    char path[256];
    if (cap == 0 || snprintf(path, sizeof path, WB_DEVICE "%s", node) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, request + done, len - done);
        if (n <= 0) { close(fd); return -1; }
        done += (size_t)n;
    }
    close(fd);
    fd = open(path, O_RDONLY);   /* the host answers here */
    if (fd < 0) return -1;
    size_t got = 0;
    for (;;) {
        if (got + 1 >= cap) break;
        ssize_t n = read(fd, out + got, cap - 1 - got);
        if (n < 0) { close(fd); return -1; }
        if (n == 0) break;
        got += (size_t)n;
    }
    close(fd);
    out[got] = '\0';
    return (long)got;
}

/* Call catalog module `name` with `payload_json` (any JSON value); the response is in out. */
static inline long wb_call(const char *name, const char *payload_json, char *out, size_t cap) {
    char node[128], request[8192];
    if (snprintf(node, sizeof node, "call/%s", name) >= (int)sizeof node) { errno = ENAMETOOLONG; return -1; }
    int len = snprintf(request, sizeof request, "{\"payload\": %s}", payload_json);
    if (len < 0 || len >= (int)sizeof request) { errno = E2BIG; return -1; }
    return wb_exchange(node, request, (size_t)len, out, cap);
}

/* GET `url` through the host (the URL must not need JSON escaping); the response is in out. */
static inline long wb_http_get(const char *url, char *out, size_t cap) {
    char request[4096];
    int len = snprintf(request, sizeof request, "{\"method\": \"GET\", \"url\": \"%s\"}", url);
    if (len < 0 || len >= (int)sizeof request) { errno = E2BIG; return -1; }
    return wb_exchange("http", request, (size_t)len, out, cap);
}

/* -- direct host imports (module "workbench"; see the README, "Network and module calls from a guest") -- */
__attribute__((import_module("workbench"), import_name("http_request")))
int wb__http_request(const char *request, size_t len, char *out, size_t cap);
__attribute__((import_module("workbench"), import_name("call")))
int wb__call(const char *name, size_t name_len, const char *request, size_t len, char *out, size_t cap);

static inline long wb__finish(int n, char *out, size_t cap) {
    if (n < 0) { errno = -n; return -1; }   /* -errno, WASI numbering (as wasi-libc's errno) */
    out[(size_t)n < cap - 1 ? (size_t)n : cap - 1] = '\0';
    return (long)n;
}

/* One host call: the JSON request (len bytes) to the host's network service; the response is in out. */
static inline long wb_http_request(const char *request, size_t len, char *out, size_t cap) {
    if (cap == 0) { errno = EINVAL; return -1; }
    return wb__finish(wb__http_request(request, len, out, cap - 1), out, cap);
}

/* GET `url` in one host call (the URL must not need JSON escaping); the response is in out. */
static inline long wb_http_get_direct(const char *url, char *out, size_t cap) {
    char request[4096];
    int len = snprintf(request, sizeof request, "{\"method\": \"GET\", \"url\": \"%s\"}", url);
    if (len < 0 || len >= (int)sizeof request) { errno = E2BIG; return -1; }
    return wb_http_request(request, (size_t)len, out, cap);
}

/* Call catalog module `name` with `payload_json` in one host call; the response is in out. */
static inline long wb_call_direct(const char *name, const char *payload_json, char *out, size_t cap) {
    char request[8192];
    if (cap == 0) { errno = EINVAL; return -1; }
    int len = snprintf(request, sizeof request, "{\"payload\": %s}", payload_json);
    if (len < 0 || len >= (int)sizeof request) { errno = E2BIG; return -1; }
    return wb__finish(wb__call(name, strlen(name), request, (size_t)len, out, cap - 1), out, cap);
}

#endif
