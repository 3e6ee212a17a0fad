/* The http: config section (docs/http.md): what the user asked for, and the parser of
 * http.listen shared by the config loader (daemon/config_http.c) and the HTTP server
 * (daemon/http.c), so that both read an address the same way. */
#ifndef BN_CONFIG_HTTP_H
#define BN_CONFIG_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* sun_path holds 107 bytes and the terminating NUL. */
#define HTTP_UNIX_PATH_MAX 107
/* Longest http.listen accepted: a bracketed IPv6 address and a port fit easily. */
#define HTTP_LISTEN_MAX 127

/* What "expected ..." says for a value that is not an address (shared with config_values.c). */
#define HTTP_LISTEN_EXPECTED                                                                   \
    "expected ADDRESS:PORT (127.0.0.1:8080, [::1]:8080) or a Unix socket path starting with '/'"

typedef struct {
    bool enabled;                   /* true when the YAML has an http: section */
    char listen[HTTP_LISTEN_MAX + 1]; /* as written; default 127.0.0.1:8080 */
    bool allow_remote;              /* a non-loopback address is refused without this */
    int max_clients;                /* connections open at once; more are refused */
    int stream_fps;                 /* /stream.mjpg frames per second without ?fps= */
    char auth_file[4096];           /* "user:HASH" lines (http_auth.h); "": no authentication */
} http_config;

typedef enum { HTTP_LISTEN_INET, HTTP_LISTEN_UNIX } http_listen_kind;

/* http.listen, parsed. */
typedef struct {
    http_listen_kind kind;
    int family;                     /* AF_INET, AF_INET6 or AF_UNIX */
    unsigned char addr[16];         /* network order: 4 bytes (IPv4) or 16 (IPv6) */
    int port;                       /* 1..65535 (inet) */
    bool loopback;                  /* 127.0.0.0/8, ::1, or a Unix socket */
    char path[HTTP_UNIX_PATH_MAX + 1]; /* unix */
} http_listen;

/* Defaults of the section (config_init). */
void config_http_init(http_config *h);

/* Parses "127.0.0.1:8080", "[::1]:8080", "localhost:8080" (127.0.0.1), "0.0.0.0:80",
 * "[::]:8080" or "/run/basisnetd/http.sock". On failure writes why (the text after
 * "key 'http.listen': ", without the value) and returns false. */
bool http_listen_parse(const char *s, http_listen *out, char *why, size_t whylen);

/* True when the two values name the same socket (so a reload keeps the listener). */
bool http_listen_equal(const char *a, const char *b);

/* Writes the address in its canonical form ("127.0.0.1:8080", "[::1]:8080", the path). */
void http_listen_format(const http_listen *l, char *buf, size_t len);

#endif
