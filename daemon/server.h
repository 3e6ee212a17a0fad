/* Unix-socket publisher: listening socket (bound with stale-socket removal, mode and group,
 * or passed by systemd), one bounded drop-oldest queue per client, non-blocking writes driven
 * by the GLib main loop, line-based command reading with a size limit, SO_PEERCRED-based
 * authorization. Runs entirely on one GMainContext; no threads. */
#ifndef BN_SERVER_H
#define BN_SERVER_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bn_error.h"
#include "config.h"
#include "outqueue.h"
#include "protocol.h"

typedef struct server server;
typedef struct server_client server_client;

/* Called for stats, set and reload (ping and subscribe are answered by the server itself).
 * Authorization has already been checked. The handler answers with server_send(). */
typedef void (*server_command_fn)(server *srv, server_client *c, const proto_command *cmd,
                                  void *user);
/* Returns the hello message for a new client (a new reference), or NULL. */
typedef pub_msg *(*server_hello_fn)(void *user);

typedef struct {
    const char *path;           /* socket path (ignored when listen_fd >= 0) */
    unsigned mode;              /* socket file mode, e.g. 0660 */
    const char *group;          /* socket group name, "" or NULL = leave as is */
    const char *control_group;  /* peers in this group may change state; "" = root/self only */
    int max_clients, queue, max_line;
    int listen_fd;              /* a socket passed by systemd, or -1 */
    GMainContext *context;      /* NULL = default */
    server_hello_fn hello;
    server_command_fn command;
    void *user;
} server_params;

/* Binds (or adopts) the listening socket and starts accepting. Errors name the path and
 * the reason (path too long, not a socket, in use by a running daemon, no such group, ...). */
bn_status server_open(const server_params *p, server **out, char *err, size_t errlen);
/* Closes every client and the listening socket; removes the socket file if this server
 * created it and it is still the same file. Idempotent on NULL. */
void server_close(server *s);

/* Queues m for every client whose filter passes it (label/change/source). */
void server_publish(server *s, pub_msg *m);
/* Queues m for one client (replies), bypassing filters. */
void server_send(server *s, server_client *c, pub_msg *m);
/* Builds the line from a JSON object (consumed: json_decref'd) and sends it to c. */
void server_send_json(server *s, server_client *c, json_t *msg);

/* Builds a reply without an id (proto_reply_json(name, NULL) plus its fields), or NULL. */
typedef json_t *(*server_build_fn)(void *user);
/* Answers cmd with a reply that is costly to build (stats): built afresh for at most
 * SERVER_CACHE_BUILDS requests per SERVER_CACHE_MS, otherwise the last one built is sent
 * again (with cmd's id spliced in), so many clients asking cost a few builds a second.
 * A different generation (the caller's count of changes that must show at once, e.g.
 * reloads) forces a fresh build. */
#define SERVER_CACHE_MS 250
#define SERVER_CACHE_BUILDS 4
void server_send_cached(server *s, server_client *c, const proto_command *cmd,
                        uint64_t generation, server_build_fn build, void *user);
/* The next cached reply is built afresh (after `set`). */
void server_cache_invalidate(server *s);

/* Writes what is queued, waiting at most timeout_ms in total (used on shutdown). */
void server_flush(server *s, int timeout_ms);
/* Checks that the groups server_set_access would apply exist, changing nothing (reload
 * checks every part of a new config before it switches any). */
bn_status server_check_access(const char *group, const char *control_group, char *err,
                              size_t errlen);
/* Applies a reloaded publish.mode/group/control_group: the socket file's mode and group,
 * and the control group for new and connected clients. Every name is checked before
 * anything changes; on error nothing changes. */
bn_status server_set_access(server *s, unsigned mode, const char *group,
                            const char *control_group, char *err, size_t errlen);
/* New limits apply to clients that connect afterwards (queue) or at once (max_line). */
void server_set_limits(server *s, int max_clients, int queue, int max_line);

int server_client_count(const server *s);
uint64_t server_lost_total(const server *s);
uint64_t server_accepted_total(const server *s);
uint64_t server_rejected_total(const server *s);    /* refused: too many clients */
uint64_t server_line_disconnects(const server *s);  /* disconnected for an oversized line */
uint64_t server_rate_limited_total(const server *s); /* commands ignored: over 200/s per client */
/* Times a client's reading was paused: it wrote more than 64 KiB/s (read), or left 64 KiB of
 * replies unread (reply). Its lines are kept and run when it resumes. */
uint64_t server_read_paused_total(const server *s);
uint64_t server_reply_paused_total(const server *s);
bool server_client_authorized(const server_client *c);
pid_t server_client_pid(const server_client *c);
/* True when the socket came from systemd (socket activation). */
bool server_activated(const server *s);

#endif
