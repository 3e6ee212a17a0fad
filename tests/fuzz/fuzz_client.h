/* The client side of the fuzzers that drive a real server on a Unix socket (fuzz_socket.c,
 * fuzz_http.c): run the server's main context until nothing is ready, connect, and write an
 * input in chunks whose sizes follow a seed taken from the input's first 4 bytes, reading
 * what the server sent after each chunk. Header-only: each fuzzer is one translation unit. */
#ifndef BN_FUZZ_CLIENT_H
#define BN_FUZZ_CLIENT_H

#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

static inline void fuzz_spin(GMainContext *ctx)
{
    for (int i = 0; i < 1000 && g_main_context_iteration(ctx, FALSE); i++)
        ;
}

static inline int fuzz_connect(const char *path, GMainContext *ctx)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        abort();
    fuzz_spin(ctx);
    return fd;
}

static inline uint32_t fuzz_seed(const uint8_t *data)
{
    return (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
           (uint32_t)data[3] << 24;
}

/* Writes data in chunks of 1 to max_chunk bytes (the sizes drawn from *seed), running ctx and
 * calling read_back(fd, user) after each chunk; stops when *closed becomes true or a write
 * fails for another reason than a full buffer (the server closed the connection). */
static inline void fuzz_send_chunks(int fd, const uint8_t *data, size_t size, uint32_t *seed,
                                    size_t max_chunk, GMainContext *ctx,
                                    void (*read_back)(int fd, void *user), void *user,
                                    const bool *closed)
{
    size_t off = 0;
    while (off < size && !*closed) {
        *seed = *seed * 1103515245u + 12345u;
        size_t chunk = 1 + (*seed >> 16) % max_chunk;
        if (chunk > size - off)
            chunk = size - off;
        ssize_t w = send(fd, data + off, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && errno != EAGAIN)
            break;
        fuzz_spin(ctx);
        read_back(fd, user);
    }
}

#endif
