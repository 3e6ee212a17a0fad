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

/* Bytes per second each client's input is read at, and the burst it may save up. Commands
 * are short (a subscribe with many labels is about 1 KiB); beyond this the daemon stops
 * reading the client for a while, so a client writing at full speed costs a few wake-ups a
 * second instead of a core. */
#define READ_RATE 65536.0
#define READ_BURST 65536.0
/* At most this much is read per wake-up, and at most CMDS_PER_WAKE commands are run before
 * the loop turns to other work (the rest of the lines wait for the next iteration). */
#define READ_PER_WAKE 8192
#define CMDS_PER_WAKE 32
/* Replies a client has not read (beyond the kernel's socket buffer) before its commands stop
 * being read: the bytes, or half the queue's slots, whichever comes first. Reading resumes
 * once a quarter of either is left. */
#define REPLY_BUDGET (64 * 1024)
/* Client input, accepting and the deferred work below run after label publishing, results
 * and the housekeeping tick (G_PRIORITY_DEFAULT) whenever both are ready. */
#define CLIENT_PRIORITY (G_PRIORITY_DEFAULT + 10)

struct server_client {
    server *srv;
    server_client *prev, *next;
    int fd;
    bool dead;
    bool read_eof;          /* peer shut down its write side: keep sending until it closes */
    /* in_src watches for input while the client is read; hup_src for the full close after a
     * half-close; resume_src runs left-over lines (an idle source) or ends a read pause (a
     * timer) */
    GSource *in_src, *out_src, *hup_src, *resume_src;
    bool resume_is_timer;
    bool pending;           /* complete lines in rbuf not run yet (CMDS_PER_WAKE reached) */
    bool hold_read;         /* read budget spent: not read until it refills */
    bool hold_replies;      /* too many unread replies: not read until they drain */
    bool told_read, told_replies;   /* logged once per client */
    double rtokens;         /* read budget, bytes */
    gint64 rrefill_us;
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
    dev_t path_dev;         /* the socket file bound, to recognise it later */
    ino_t path_ino;
    int dir_fd;             /* the socket's directory (O_PATH), -1 when activated */
    const char *name;       /* the socket's name in that directory (points into path) */
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
    uint64_t read_pauses, reply_pauses;     /* clients paused: read budget, unread replies */
    gint64 pause_log_us;    /* pause log lines: at most one a second */
    uint64_t pause_log_skipped;
    server_hello_fn hello;
    server_command_fn command;
    void *user;
    /* server_send_cached: one cached reply per command kind */
    struct {
        pub_msg *msg;           /* the line without an id */
        size_t prefix;          /* bytes before which ,"id":ID goes */
        uint64_t generation;
        gint64 window_us;
        int builds;
    } cache[PROTO_CMD_COUNT];
    uint64_t cache_builds, cache_hits;
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
/* Starts reading a new client. */
void server_client_start(server_client *c);
/* Drops every source of c (it is being freed). */
void server_client_stop(server_client *c);

#endif
