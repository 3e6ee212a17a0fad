/* MQTT publisher over libmosquitto: one network thread per client that connects, drives
 * mosquitto_loop() and reconnects with back-off; a bounded queue of the newest messages
 * while the broker is away. See mqtt.h for topics and payloads.
 *
 * Why our own thread and not mosquitto_loop_start(): its thread gives up for good on
 * errors it deems fatal (a host name that does not resolve yet, at boot before the network
 * is up) and sleeps through its reconnect delay uninterruptibly, so closing could hang for
 * the whole delay. Here the wait is a condition variable and every error is retried. */
#include "mqtt.h"

#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bn_log.h"
#include "protocol.h"

#define MOD "mqtt"

/* Reconnect back-off: first retry after 0.5 s, doubling up to 5 s. An attempt costs a
 * name lookup and a TCP SYN; 5 s bounds how long a camera stays dark after its broker
 * is back. */
static const double BACKOFF_INITIAL_S = 0.5;
static const double BACKOFF_MAX_S = 5.0;
/* Messages handed to libmosquitto but not yet acknowledged/written. Above this the
 * module queues itself, so libmosquitto's own (unbounded) queue stays small. */
static const int INFLIGHT_MAX = 100;
/* mosquitto_loop() wait: bounds how late the thread notices a stop request. */
static const int LOOP_TIMEOUT_MS = 500;

static const char *const TOPIC_SUFFIX[MQTT_TOPIC_COUNT] = {"label", "change", "source", "stats"};

typedef struct {
    mqtt_topic kind;
    size_t len;
    char *data;
} queued_msg;

struct mqtt_client {
    mqtt_config cfg;
    char camera[BN_NAME_MAX];
    char topic[MQTT_TOPIC_COUNT][300];
    char status_topic[300];
    struct mosquitto *mosq;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;        /* stop requests, in-flight changes (CLOCK_MONOTONIC) */

    /* everything below is guarded by mu */
    bool started;               /* false: opened with mqtt_prepare, mqtt_start not called yet */
    bool stopping;
    mqtt_state state;
    char last_error[256];
    char attempt_error[256];    /* set by callbacks during the current attempt */
    char logged_error[256];     /* last error logged: log each distinct failure once */
    bool reset_backoff;
    queued_msg *ring;           /* cfg.queue slots, oldest at head */
    int ring_head, ring_n;
    int inflight;
    uint64_t sent, dropped, dropped_since_connect, connects;
};

const char *mqtt_state_name(mqtt_state s)
{
    static const char *const names[] = {"disconnected", "connecting", "connected"};
    return (unsigned)s < 3 ? names[s] : "unknown";
}

static void set_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t n, const char *fmt, ...)
{
    if (!err || !n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* ---- queue (caller holds mu) ------------------------------------------------------------ */

static void ring_push(mqtt_client *c, mqtt_topic kind, char *data, size_t len)
{
    int cap = c->cfg.queue;
    if (cap <= 0) {
        free(data);
        c->dropped++;
        c->dropped_since_connect++;
        return;
    }
    if (c->ring_n == cap) { /* keep the newest: evict the oldest */
        free(c->ring[c->ring_head].data);
        c->ring_head = (c->ring_head + 1) % cap;
        c->ring_n--;
        c->dropped++;
        c->dropped_since_connect++;
    }
    c->ring[(c->ring_head + c->ring_n) % cap] = (queued_msg){kind, len, data};
    c->ring_n++;
}

static bool retained(const mqtt_client *c, mqtt_topic kind)
{
    return c->cfg.retain && (kind == MQTT_CHANGE || kind == MQTT_SOURCE);
}

/* Hands a message to libmosquitto (which copies it). Caller holds mu and has checked the
 * state; mosquitto_publish only queues in threaded mode, it does no network I/O here. */
static int hand_over(mqtt_client *c, mqtt_topic kind, const char *data, size_t len)
{
    int rc = mosquitto_publish(c->mosq, NULL, c->topic[kind], (int)len, data, c->cfg.qos,
                               retained(c, kind));
    if (rc == MOSQ_ERR_SUCCESS)
        c->inflight++;
    return rc;
}

static void drain(mqtt_client *c)
{
    while (c->state == MQTT_CONNECTED && c->ring_n > 0 && c->inflight < INFLIGHT_MAX) {
        queued_msg *m = &c->ring[c->ring_head];
        if (hand_over(c, m->kind, m->data, m->len) != MOSQ_ERR_SUCCESS)
            return; /* connection just went away: keep it for the next one */
        free(m->data);
        m->data = NULL;
        c->ring_head = (c->ring_head + 1) % c->cfg.queue;
        c->ring_n--;
    }
}

/* ---- libmosquitto callbacks (network thread) ------------------------------------------ */

static void publish_status(mqtt_client *c, const char *status)
{
    if (mosquitto_publish(c->mosq, NULL, c->status_topic, (int)strlen(status), status, 1, true) ==
        MOSQ_ERR_SUCCESS)
        c->inflight++;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    mqtt_client *c = obj;
    pthread_mutex_lock(&c->mu);
    if (rc != 0) {
        snprintf(c->attempt_error, sizeof c->attempt_error, "%s",
                 mosquitto_connack_string(rc));
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->state = MQTT_CONNECTED;
    c->connects++;
    c->reset_backoff = true;
    c->logged_error[0] = '\0';
    c->last_error[0] = '\0'; /* stats report the failure only while it lasts */
    BN_LOGI(MOD, "%s: connected to %s:%d as '%s'%s", c->camera, c->cfg.host, c->cfg.port,
            c->cfg.client_id, c->ring_n ? ", sending the queued messages" : "");
    publish_status(c, "online");
    /* Every reconnect says what the outage cost, "dropped":0 included (docs/protocol.md,
     * broker); the first connection only when messages were dropped while waiting for it. */
    if (c->connects > 1 || c->dropped_since_connect > 0) {
        char tbuf[40], msg[256];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        proto_format_time((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, tbuf, sizeof tbuf);
        int n = snprintf(msg, sizeof msg,
                         "{\"type\":\"broker\",\"time\":\"%s\",\"state\":\"connected\","
                         "\"dropped\":%llu,\"dropped_total\":%llu}",
                         tbuf, (unsigned long long)c->dropped_since_connect,
                         (unsigned long long)c->dropped);
        if (c->dropped_since_connect > 0)
            BN_LOGW(MOD, "%s: %llu messages were dropped while the broker was unreachable",
                    c->camera, (unsigned long long)c->dropped_since_connect);
        if (hand_over(c, MQTT_STATS, msg, (size_t)n) == MOSQ_ERR_SUCCESS)
            c->dropped_since_connect = 0;
    }
    drain(c);
    pthread_mutex_unlock(&c->mu);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    mqtt_client *c = obj;
    pthread_mutex_lock(&c->mu);
    if (c->state == MQTT_CONNECTED && rc != 0 && !c->attempt_error[0])
        snprintf(c->attempt_error, sizeof c->attempt_error, "connection lost");
    if (c->cfg.qos == 0) {
        /* QoS 0 messages not yet written die with the socket; QoS 1 ones stay in
         * libmosquitto and are sent again after the reconnect. */
        c->dropped += (uint64_t)c->inflight;
        c->dropped_since_connect += (uint64_t)c->inflight;
        c->inflight = 0;
    }
    if (!c->stopping)
        c->state = MQTT_DISCONNECTED;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    (void)mid;
    mqtt_client *c = obj;
    pthread_mutex_lock(&c->mu);
    if (c->inflight > 0)
        c->inflight--;
    c->sent++;
    drain(c);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/* ---- network thread ---------------------------------------------------------------- */

static void describe_rc(mqtt_client *c, int rc, int err_no, char *buf, size_t n)
{
    if (c->attempt_error[0])
        snprintf(buf, n, "%s", c->attempt_error);
    else if (rc == MOSQ_ERR_EAI)
        snprintf(buf, n, "cannot resolve host '%.200s'", c->cfg.host);
    else if (rc == MOSQ_ERR_ERRNO)
        snprintf(buf, n, "%s", strerror(err_no));
    else if (rc == MOSQ_ERR_TLS)
        snprintf(buf, n, "TLS handshake or certificate error");
    else if (rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_NO_CONN)
        snprintf(buf, n, "connection lost");
    else
        snprintf(buf, n, "%s", mosquitto_strerror(rc));
}

static void wait_seconds(mqtt_client *c, double s)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long long ns = (long long)until.tv_nsec + (long long)(s * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    while (!c->stopping && pthread_cond_timedwait(&c->cond, &c->mu, &until) == 0) {
    }
}

static void *net_thread(void *arg)
{
    mqtt_client *c = arg;
    pthread_setname_np(pthread_self(), "mqtt"); /* here, so its first log line has it */
    double backoff = BACKOFF_INITIAL_S;
    bool first = true;
    pthread_mutex_lock(&c->mu);
    while (!c->started && !c->stopping) /* mqtt_prepare: no connection before mqtt_start */
        pthread_cond_wait(&c->cond, &c->mu);
    while (!c->stopping) {
        c->state = MQTT_CONNECTING;
        c->attempt_error[0] = '\0';
        pthread_mutex_unlock(&c->mu);

        /* Both only start a non-blocking TCP connect (the name lookup does block). */
        int rc = first ? mosquitto_connect_async(c->mosq, c->cfg.host, c->cfg.port,
                                                 c->cfg.keepalive)
                       : mosquitto_reconnect_async(c->mosq);
        int err_no = errno;
        first = false;
        if (rc == MOSQ_ERR_SUCCESS) {
            for (;;) {
                rc = mosquitto_loop(c->mosq, LOOP_TIMEOUT_MS, 1);
                err_no = errno;
                pthread_mutex_lock(&c->mu);
                bool stop = c->stopping;
                pthread_mutex_unlock(&c->mu);
                if (rc != MOSQ_ERR_SUCCESS || stop)
                    break;
            }
        }

        pthread_mutex_lock(&c->mu);
        if (c->stopping)
            break;
        char why[256];
        describe_rc(c, rc, err_no, why, sizeof why);
        snprintf(c->last_error, sizeof c->last_error, "%.100s:%d: %.140s", c->cfg.host, c->cfg.port, why);
        c->state = MQTT_DISCONNECTED;
        if (c->reset_backoff) {
            backoff = BACKOFF_INITIAL_S;
            c->reset_backoff = false;
        }
        if (strcmp(c->logged_error, c->last_error) != 0) { /* once per distinct failure */
            BN_LOGW(MOD, "%s: broker %s; retrying with back-off, keeping the newest %d messages",
                    c->camera, c->last_error, c->cfg.queue);
            snprintf(c->logged_error, sizeof c->logged_error, "%s", c->last_error);
        }
        wait_seconds(c, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff * 2;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- open / publish / close ------------------------------------------------------------ */

static bn_status check_readable(const char *key, const char *path, char *err, size_t n)
{
    if (!path[0])
        return BN_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, n, "%s %s: %s", key, path, strerror(errno));
        return BN_ERR_IO;
    }
    close(fd);
    return BN_OK;
}

/* First line of the file, without its newline. The contents are never logged. */
static bn_status read_password(const char *path, char *pw, size_t pwlen, char *err, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, n, "mqtt.password_file %s: %s", path, strerror(errno));
        return BN_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        BN_LOGW(MOD, "mqtt.password_file %s is readable by group or others (mode %03o); "
                "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    ssize_t r = read(fd, pw, pwlen - 1);
    int e = errno;
    close(fd);
    if (r < 0) {
        set_err(err, n, "mqtt.password_file %s: %s", path, strerror(e));
        return BN_ERR_IO;
    }
    pw[r] = '\0';
    pw[strcspn(pw, "\r\n")] = '\0';
    if (!pw[0]) {
        set_err(err, n, "mqtt.password_file %s: the first line is empty", path);
        return BN_ERR_CONFIG;
    }
    return BN_OK;
}

void mqtt_close(mqtt_client *c)
{
    if (!c)
        return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        if (c->state == MQTT_CONNECTED) {
            publish_status(c, "offline"); /* a clean DISCONNECT suppresses the last will */
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += 1;
            while (c->inflight > 0 && c->state == MQTT_CONNECTED &&
                   pthread_cond_timedwait(&c->cond, &c->mu, &until) == 0) {
            }
        }
        c->stopping = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->mu);
        mosquitto_disconnect(c->mosq); /* wakes mosquitto_loop() through its socket pair */
        /* The thread may sit in a name lookup that nothing can interrupt (an unreachable DNS
         * server: 10 s and more). Stopping the daemon must not wait for it: after 1 s the
         * client is left to the thread, which exits when the lookup returns (a small leak,
         * on shutdown or reload only). */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1; /* the loop itself notices a stop within LOOP_TIMEOUT_MS */
        if (pthread_timedjoin_np(c->thread, NULL, &until) != 0) {
            BN_LOGW(MOD, "%s: network thread still busy (name lookup of '%s'?); not waiting for it",
                    c->camera, c->cfg.host);
            pthread_detach(c->thread);
            return;
        }
        if (c->ring_n || c->inflight)
            BN_LOGI(MOD, "%s: closing with %d queued and %d unacknowledged messages", c->camera,
                    c->ring_n, c->inflight);
    }
    if (c->mosq)
        mosquitto_destroy(c->mosq);
    if (c->ring) {
        for (int i = 0; i < c->ring_n; i++)
            free(c->ring[(c->ring_head + i) % c->cfg.queue].data);
        free(c->ring);
    }
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static bn_status open_client(const mqtt_config *cfg, const char *camera, bool start,
                             mqtt_client **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->host[0]) {
        set_err(err, errlen, "mqtt.host: empty");
        return BN_ERR_CONFIG;
    }
    if (cfg->qos < 0 || cfg->qos > 1 || cfg->port < 1 || cfg->port > 65535 || cfg->queue < 0) {
        set_err(err, errlen, "mqtt: qos %d, port %d or queue %d out of range", cfg->qos, cfg->port,
                cfg->queue);
        return BN_ERR_CONFIG;
    }
    bn_status st;
    if ((st = check_readable("mqtt.ca_file", cfg->ca_file, err, errlen)) != BN_OK ||
        (st = check_readable("mqtt.cert_file", cfg->cert_file, err, errlen)) != BN_OK ||
        (st = check_readable("mqtt.key_file", cfg->key_file, err, errlen)) != BN_OK)
        return st;
    if (!cfg->ca_file[0] && cfg->cert_file[0]) {
        set_err(err, errlen, "mqtt.cert_file %s: a client certificate needs mqtt.ca_file too",
                cfg->cert_file);
        return BN_ERR_CONFIG;
    }

    mqtt_client *c = calloc(1, sizeof *c);
    if (!c)
        return BN_ERR_NOMEM;
    c->cfg = *cfg;
    snprintf(c->camera, sizeof c->camera, "%s", camera && camera[0] ? camera : "camera");
    char prefix[256];
    if (cfg->topic_prefix[0])
        snprintf(prefix, sizeof prefix, "%s", cfg->topic_prefix);
    else
        snprintf(prefix, sizeof prefix, "basisnet/%s", c->camera);
    for (int k = 0; k < MQTT_TOPIC_COUNT; k++)
        snprintf(c->topic[k], sizeof c->topic[k], "%s/%s", prefix, TOPIC_SUFFIX[k]);
    snprintf(c->status_topic, sizeof c->status_topic, "%s/status", prefix);

    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);

    if (cfg->queue > 0 && !(c->ring = calloc((size_t)cfg->queue, sizeof *c->ring))) {
        st = BN_ERR_NOMEM;
        set_err(err, errlen, "mqtt: out of memory for a queue of %d messages", cfg->queue);
        goto fail;
    }

    /* Not thread-safe by libmosquitto's contract: called from the thread that opens. Never
     * cleaned up: other clients in the process may still use the library. */
    mosquitto_lib_init();
    c->mosq = mosquitto_new(cfg->client_id[0] ? cfg->client_id : NULL, true, c);
    if (!c->mosq) {
        st = errno == EINVAL ? BN_ERR_CONFIG : BN_ERR_NOMEM;
        set_err(err, errlen, "mqtt: cannot create a client '%s': %s", cfg->client_id, strerror(errno));
        goto fail;
    }
    mosquitto_threaded_set(c->mosq, true);
    mosquitto_connect_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    static const char offline[] = "offline";
    if (mosquitto_will_set(c->mosq, c->status_topic, (int)strlen(offline), offline, 1, true) !=
        MOSQ_ERR_SUCCESS) {
        st = BN_ERR_CONFIG;
        set_err(err, errlen, "mqtt.topic_prefix '%s': not a valid topic for the last will", prefix);
        goto fail;
    }
    if (cfg->username[0]) {
        char pw[1024] = "";
        if (cfg->password_file[0] &&
            (st = read_password(cfg->password_file, pw, sizeof pw, err, errlen)) != BN_OK)
            goto fail;
        int rc = mosquitto_username_pw_set(c->mosq, cfg->username, pw[0] ? pw : NULL);
        explicit_bzero(pw, sizeof pw); /* libmosquitto keeps its own copy */
        if (rc != MOSQ_ERR_SUCCESS) {
            st = BN_ERR_CONFIG;
            set_err(err, errlen, "mqtt.username '%s': %s", cfg->username, mosquitto_strerror(rc));
            goto fail;
        }
    }
    if (cfg->ca_file[0]) {
        int rc = mosquitto_tls_set(c->mosq, cfg->ca_file, NULL, cfg->cert_file[0] ? cfg->cert_file : NULL,
                                   cfg->key_file[0] ? cfg->key_file : NULL, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            st = BN_ERR_CONFIG;
            set_err(err, errlen, "mqtt.ca_file %s: TLS set-up failed: %s", cfg->ca_file,
                    mosquitto_strerror(rc));
            goto fail;
        }
    }

    c->state = MQTT_CONNECTING;
    c->started = start;
    int prc = pthread_create(&c->thread, NULL, net_thread, c);
    if (prc != 0) {
        st = BN_ERR_NOMEM;
        set_err(err, errlen, "mqtt: cannot start the network thread: %s", strerror(prc));
        goto fail;
    }
    c->thread_started = true;
    *out = c;
    return BN_OK;
fail:
    mqtt_close(c);
    return st;
}

bn_status mqtt_open(const mqtt_config *cfg, const char *camera, mqtt_client **out, char *err,
                    size_t errlen)
{
    return open_client(cfg, camera, true, out, err, errlen);
}

bn_status mqtt_prepare(const mqtt_config *cfg, const char *camera, mqtt_client **out, char *err,
                       size_t errlen)
{
    return open_client(cfg, camera, false, out, err, errlen);
}

void mqtt_start(mqtt_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->started = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

bn_status mqtt_publish(mqtt_client *c, mqtt_topic kind, const char *json, size_t len)
{
    if (!c || (unsigned)kind >= MQTT_TOPIC_COUNT || (!json && len))
        return BN_ERR_INVALID_ARG;
    if (kind == MQTT_LABEL && !c->cfg.publish_labels)
        return BN_OK;
    if (len > 0 && json[len - 1] == '\n')
        len--;
    pthread_mutex_lock(&c->mu);
    if (c->state == MQTT_CONNECTED && c->ring_n == 0 && c->inflight < INFLIGHT_MAX &&
        hand_over(c, kind, json, len) == MOSQ_ERR_SUCCESS) {
        pthread_mutex_unlock(&c->mu);
        return BN_OK;
    }
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        c->dropped++;
        c->dropped_since_connect++;
        pthread_mutex_unlock(&c->mu);
        return BN_ERR_NOMEM;
    }
    memcpy(copy, json, len);
    ring_push(c, kind, copy, len);
    pthread_mutex_unlock(&c->mu);
    return BN_OK;
}

void mqtt_get_stats(mqtt_client *c, mqtt_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    st->state = c->state;
    snprintf(st->last_error, sizeof st->last_error, "%s", c->last_error);
    st->sent = c->sent;
    st->dropped = c->dropped;
    st->queued = (uint64_t)c->ring_n + (uint64_t)c->inflight;
    st->connects = c->connects;
    pthread_mutex_unlock(&c->mu);
}
