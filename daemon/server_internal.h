/* The Unix-socket publisher's shared parts (not a public interface):
 *   server.c    the listening socket, accepting and freeing clients, access, limits,
 *               counters
 *   server_io.c one client's traffic: writing its queue, reading its lines and running its
 *               commands, and the reaping of dead clients
 * Everything here runs on the server's main context. */
#ifndef BN_SERVER_INTERNAL_H
#define BN_SERVER_INTERNAL_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "outqueue.h"
#include "protocol.h"
#include "server.h"

#define MOD "server"

/* Commands per second each client may send, and the burst it may save up. A person or a
 * script polling stats sends a few a second; a client in a loop (or a hostile one) would
 * otherwise make the event loop parse, authorize and answer without bound, and `reload`
 * or `stats` cost far more than a line. */
#define CMD_RATE 200.0
#define CMD_BURST 500.0

struct server_client {
    server *srv;
    server_client *prev, *next;
    int fd;
    bool dead;
    bool read_eof;          /* peer shut down its write side: keep sending until it closes */
    GSource *in_src, *out_src;
    outqueue q;
    proto_filter filter;
    char *rbuf;
    size_t rlen, rcap;
    struct ucred cred;
    bool authorized;
    uint64_t id;
    /* command rate limit: token bucket, and when this client was last told about it */
    double tokens;
    gint64 refill_us, limit_told_us;
    uint64_t limited;
};

struct server {
    GMainContext *ctx;
    int listen_fd;
    bool activated;
    bool owns_path;
    dev_t path_dev;
    ino_t path_ino;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    GSource *accept_src;
    server_client *clients;
    int n_clients;
    int max_clients, queue, max_line;
    bool has_control_gid;
    gid_t control_gid;
    uid_t self_uid;
    int depth;
    uint64_t next_id, lost_closed, accepted, rejected, line_disconnects, rate_limited;
    server_hello_fn hello;
    server_command_fn command;
    void *user;
};


/* server.c */
void server_client_free(server_client *c);

/* server_io.c */
/* A callback of this server is on the stack from server_enter to server_leave; clients
 * marked dead are freed by the outermost server_leave. */
void server_enter(server *s);
void server_leave(server *s);
void server_client_queue(server_client *c, pub_msg *m);
/* Writes as much of c's queue as the socket takes now. */
void server_client_flush(server_client *c);
/* The client fd's read callback. */
gboolean server_on_client_in(gint fd, GIOCondition cond, gpointer data);

#endif
