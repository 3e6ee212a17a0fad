/* MQTT publishing: the daemon's protocol v1 messages, also sent to a broker (libmosquitto).
 * The caller never waits on the network: a network thread owned by this module connects,
 * reconnects with back-off and sends; while the broker is unreachable the newest messages
 * wait in a bounded queue and the rest are counted as dropped.
 *
 * Topics, with P = cfg->topic_prefix (config default "basisnet/<camera>"):
 *   P/label   every label message (only if cfg->publish_labels)     QoS cfg->qos, not retained
 *   P/change  change events                                        QoS cfg->qos, retained if cfg->retain
 *   P/source  source state messages                                QoS cfg->qos, retained if cfg->retain
 *   P/stats   stats messages, and this module's "broker" messages  QoS cfg->qos, not retained
 *   P/status  "online" on connect, "offline" on close and as the   QoS 1, retained
 *             last will (the broker sends it when the connection dies)
 * Payloads are the caller's JSON bytes unchanged (one trailing '\n' is removed, so a line
 * from proto_dump_line() becomes a bare JSON object).
 *
 * After a reconnect that followed drops, the module publishes on P/stats
 *   {"type":"broker","time":"<RFC 3339>","state":"connected","dropped":N,"dropped_total":M}
 * where N counts the messages lost since the previous connection, before the queued ones.
 *
 * Threads: mqtt_publish and mqtt_get_stats may be called from any thread (an internal mutex,
 * held only for memory work, never across network I/O). mqtt_open/mqtt_close from one. */
#ifndef BN_MQTT_H
#define BN_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"
#include "config.h"

typedef struct mqtt_client mqtt_client;

typedef enum { MQTT_LABEL = 0, MQTT_CHANGE, MQTT_SOURCE, MQTT_STATS, MQTT_TOPIC_COUNT } mqtt_topic;

typedef enum {
    MQTT_DISCONNECTED = 0,  /* not connected; retrying with back-off (see last_error) */
    MQTT_CONNECTING,        /* connection attempt in progress */
    MQTT_CONNECTED,         /* CONNACK accepted */
} mqtt_state;

typedef struct {
    mqtt_state state;
    char last_error[256];   /* why the last attempt or connection failed; "" if none yet */
    uint64_t sent;          /* messages the broker acknowledged (QoS 1) or that were written
                               to the socket (QoS 0) */
    uint64_t dropped;       /* messages lost: evicted from the full queue, or QoS 0 messages
                               not yet written when the connection died */
    uint64_t queued;        /* messages waiting: in the queue or in flight */
    uint64_t connects;      /* successful connections so far */
} mqtt_stats;

/* Checks the files (password_file readable, ca/cert/key files readable), reads the
 * password (never logged), sets the last will and starts the network thread, which
 * connects in the background. Returns BN_ERR_IO or BN_ERR_CONFIG with a message naming the
 * key and the path ("mqtt.ca_file /etc/x.pem: No such file or directory") for problems a
 * retry cannot fix; an unreachable or unknown host is NOT an error here: it shows in
 * mqtt_get_stats while the thread keeps retrying. `camera` names the camera in log lines.
 * cfg->enabled is not checked: call this only when the config has an mqtt: section. */
bn_status mqtt_open(const mqtt_config *cfg, const char *camera, mqtt_client **out, char *err,
                    size_t errlen);

/* The same checks and set-up, and the network thread, but it connects only at mqtt_start:
 * for a reload, which opens everything that can fail before it switches anything (a client
 * that connected and was then closed would send "offline" on P/status, and with a fixed
 * client_id it would take the running client's session over). Messages published before
 * mqtt_start are queued. mqtt_close on a client never started sends nothing. */
bn_status mqtt_prepare(const mqtt_config *cfg, const char *camera, mqtt_client **out, char *err,
                       size_t errlen);
/* Lets a prepared client connect; cannot fail. NULL and started clients: no-op. */
void mqtt_start(mqtt_client *c);

/* Hands one message to the network thread and returns at once. BN_OK also when the
 * message was queued for later or skipped (a label with publish_labels false);
 * BN_ERR_NOMEM; BN_ERR_INVALID_ARG for a bad kind. */
bn_status mqtt_publish(mqtt_client *c, mqtt_topic kind, const char *json, size_t len);

void mqtt_get_stats(mqtt_client *c, mqtt_stats *st);
const char *mqtt_state_name(mqtt_state s);   /* "disconnected", "connecting", "connected" */

/* Publishes "offline" on P/status if connected, waits up to one second for messages in
 * flight, disconnects, stops the thread and frees everything: at most ~2 s in all. A
 * thread stuck in a name lookup (unreachable DNS server) is not waited for past 1 s: it
 * keeps the client and exits when the lookup returns. NULL is a no-op. */
void mqtt_close(mqtt_client *c);

#endif
