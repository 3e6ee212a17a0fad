/* MQTT publisher tests against a real mosquitto broker started on a free loopback port
 * (never 1883) with its own config in a temporary directory, and a real libmosquitto
 * subscriber: delivery and order at QoS 1, retained status and last will, broker restart
 * with a bounded queue and a reported drop count, wrong credentials, unknown host, missing
 * TLS and password files. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "bn_log.h"
#include "config.h"
#include "mqtt.h"

#define MOSQUITTO_BIN "/usr/sbin/mosquitto"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- a broker of our own ------------------------------------------------------------ */

typedef struct {
    char dir[64];
    int port;
    pid_t pid;
    char extra[512];    /* more config lines (auth) */
} broker;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    int port = ntohs(a.sin_port);
    assert_int_not_equal(port, 1883);
    return port;
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void broker_start(broker *b)
{
    if (!b->dir[0]) {
        snprintf(b->dir, sizeof b->dir, "/tmp/bn-mqtt-test.XXXXXX");
        assert_non_null(mkdtemp(b->dir));
        b->port = free_port();
    }
    char conf[128];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", b->dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    struct passwd *pw = getpwuid(geteuid());
    /* persistence keeps the test subscriber's session across a broker restart */
    fprintf(f, "listener %d 127.0.0.1\npersistence true\npersistence_location %s/\n"
               "log_dest file %s/broker.log\nuser %s\n%s",
            b->port, b->dir, b->dir, pw ? pw->pw_name : "root",
            b->extra[0] ? b->extra : "allow_anonymous true\n");
    fclose(f);
    b->pid = fork();
    assert_true(b->pid >= 0);
    if (b->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(MOSQUITTO_BIN, "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250 && !port_open(b->port); i++)
        sleep_ms(20);
    assert_true(port_open(b->port));
}

static void broker_stop(broker *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
    }
}

static void broker_destroy(broker *b)
{
    broker_stop(b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- a subscriber --------------------------------------------------------------------- */

#define SUB_MAX 2048

typedef struct {
    char topic[128];
    char payload[512];
    bool retain;
} rx_msg;

typedef struct {
    struct mosquitto *m;
    char filter[128];
    pthread_mutex_t mu;
    rx_msg *msgs;
    int n;
    bool subscribed;
} subscriber;

static void sub_on_connect(struct mosquitto *m, void *obj, int rc)
{
    subscriber *s = obj;
    if (rc == 0)
        mosquitto_subscribe(m, NULL, s->filter, 1);
}

static void sub_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *q)
{
    (void)m, (void)mid, (void)n, (void)q;
    subscriber *s = obj;
    pthread_mutex_lock(&s->mu);
    s->subscribed = true;
    pthread_mutex_unlock(&s->mu);
}

static void sub_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    subscriber *s = obj;
    pthread_mutex_lock(&s->mu);
    if (s->n < SUB_MAX) {
        rx_msg *r = &s->msgs[s->n++];
        snprintf(r->topic, sizeof r->topic, "%s", msg->topic);
        int len = msg->payloadlen < (int)sizeof r->payload - 1 ? msg->payloadlen : (int)sizeof r->payload - 1;
        memcpy(r->payload, msg->payload, (size_t)len);
        r->payload[len] = '\0';
        r->retain = msg->retain;
    }
    pthread_mutex_unlock(&s->mu);
}

typedef struct {
    const char *ca_file, *user, *password;
} sub_auth;

/* persistent: a fixed client id and clean_session false, so the broker keeps the
 * subscription and queues QoS 1 messages while this subscriber reconnects. */
static subscriber *sub_start_auth(int port, const char *filter, const char *persistent_id,
                                  const sub_auth *auth);
static subscriber *sub_start(int port, const char *filter, const char *persistent_id)
{
    return sub_start_auth(port, filter, persistent_id, NULL);
}

static subscriber *sub_start_auth(int port, const char *filter, const char *persistent_id,
                                  const sub_auth *auth)
{
    subscriber *s = calloc(1, sizeof *s);
    s->msgs = calloc(SUB_MAX, sizeof *s->msgs);
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->filter, sizeof s->filter, "%s", filter);
    mosquitto_lib_init();
    s->m = mosquitto_new(persistent_id, persistent_id == NULL, s);
    assert_non_null(s->m);
    mosquitto_connect_callback_set(s->m, sub_on_connect);
    mosquitto_subscribe_callback_set(s->m, sub_on_subscribe);
    mosquitto_message_callback_set(s->m, sub_on_message);
    mosquitto_reconnect_delay_set(s->m, 1, 1, false);
    if (auth && auth->ca_file)
        assert_int_equal(mosquitto_tls_set(s->m, auth->ca_file, NULL, NULL, NULL, NULL), MOSQ_ERR_SUCCESS);
    if (auth && auth->user)
        assert_int_equal(mosquitto_username_pw_set(s->m, auth->user, auth->password), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_connect(s->m, "127.0.0.1", port, 10), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop_start(s->m), MOSQ_ERR_SUCCESS);
    for (int i = 0; i < 250; i++) {
        pthread_mutex_lock(&s->mu);
        bool ok = s->subscribed;
        pthread_mutex_unlock(&s->mu);
        if (ok)
            return s;
        sleep_ms(20);
    }
    fail_msg("subscriber on port %d never got its SUBACK", port);
    return s;
}

static void sub_stop(subscriber *s)
{
    mosquitto_disconnect(s->m);
    mosquitto_loop_stop(s->m, false);
    mosquitto_destroy(s->m);
    pthread_mutex_destroy(&s->mu);
    free(s->msgs);
    free(s);
}

/* Messages received on topics ending in `suffix`, copied out. */
static int sub_collect(subscriber *s, const char *suffix, rx_msg *out, int max)
{
    int k = 0;
    size_t sl = strlen(suffix);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++) {
        size_t tl = strlen(s->msgs[i].topic);
        if (tl >= sl && strcmp(s->msgs[i].topic + tl - sl, suffix) == 0 && k < max)
            out[k++] = s->msgs[i];
    }
    pthread_mutex_unlock(&s->mu);
    return k;
}

/* Waits until a message on `suffix` contains `needle` (or its count reaches `count` when
 * needle is NULL). */
static bool sub_wait(subscriber *s, const char *suffix, const char *needle, int count, double timeout_s)
{
    static rx_msg buf[SUB_MAX];
    double end = now_s() + timeout_s;
    do {
        int n = sub_collect(s, suffix, buf, SUB_MAX);
        if (!needle && n >= count)
            return true;
        for (int i = 0; needle && i < n; i++)
            if (strstr(buf[i].payload, needle))
                return true;
        sleep_ms(20);
    } while (now_s() < end);
    return false;
}

/* ---- client helpers ----------------------------------------------------------------------- */

static void base_cfg(mqtt_config *m, int port, const char *prefix)
{
    memset(m, 0, sizeof *m);
    m->enabled = true;
    snprintf(m->host, sizeof m->host, "127.0.0.1");
    m->port = port;
    snprintf(m->client_id, sizeof m->client_id, "bn-%s-%d", prefix, (int)getpid());
    for (char *p = m->client_id; *p; p++)
        if (*p == '/')
            *p = '-';
    snprintf(m->topic_prefix, sizeof m->topic_prefix, "%s", prefix);
    m->qos = 1;
    m->retain = true;
    m->keepalive = 10;
    m->queue = 100;
    m->publish_labels = true;
}

static bool wait_state(mqtt_client *c, mqtt_state want, double timeout_s, mqtt_stats *st)
{
    double end = now_s() + timeout_s;
    do {
        mqtt_get_stats(c, st);
        if (st->state == want)
            return true;
        sleep_ms(20);
    } while (now_s() < end);
    return false;
}

static bool wait_error(mqtt_client *c, const char *needle, double timeout_s, mqtt_stats *st)
{
    double end = now_s() + timeout_s;
    do {
        mqtt_get_stats(c, st);
        if (strstr(st->last_error, needle))
            return true;
        sleep_ms(20);
    } while (now_s() < end);
    return false;
}

static void publish_label(mqtt_client *c, int seq)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"label\",\"seq\":%d,\"label\":\"Sneaker\"}\n", seq);
    assert_int_equal(mqtt_publish(c, MQTT_LABEL, buf, (size_t)n), BN_OK);
}

static int label_seq(const rx_msg *m)
{
    const char *p = strstr(m->payload, "\"seq\":");
    return p ? atoi(p + 6) : -1;
}

/* log sink shared with the network thread */
typedef struct {
    pthread_mutex_t mu;
    char all[16384];
} log_capture;

static void capture_fn(bn_log_level level, const char *module, const char *msg, void *user)
{
    (void)level;
    log_capture *lc = user;
    pthread_mutex_lock(&lc->mu);
    size_t used = strlen(lc->all);
    snprintf(lc->all + used, sizeof lc->all - used, "%s: %s\n", module, msg);
    pthread_mutex_unlock(&lc->mu);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_qos1_order_retained_status(void **state)
{
    (void)state;
    broker b = {0};
    broker_start(&b);
    subscriber *s = sub_start(b.port, "t1/cam/#", NULL);
    mqtt_config cfg;
    base_cfg(&cfg, b.port, "t1/cam");
    cfg.queue = 1000; /* a burst of N: past the in-flight cap the rest waits in the queue,
                         and order must hold through both */
    mqtt_client *c = NULL;
    char err[256];
    assert_int_equal(mqtt_open(&cfg, "cam", &c, err, sizeof err), BN_OK);
    mqtt_stats st;
    assert_true(wait_state(c, MQTT_CONNECTED, 5, &st));
    assert_true(sub_wait(s, "/status", "online", 0, 5));

    enum { N = 500 };
    for (int i = 1; i <= N; i++)
        publish_label(c, i);
    assert_true(sub_wait(s, "/label", NULL, N, 10));
    static rx_msg got[SUB_MAX];
    int n = sub_collect(s, "/label", got, SUB_MAX);
    assert_int_equal(n, N);
    for (int i = 0; i < n; i++) {
        assert_int_equal(label_seq(&got[i]), i + 1);
        assert_false(got[i].retain);
        assert_int_equal(got[i].payload[strlen(got[i].payload) - 1], '}'); /* newline stripped */
    }
    /* every label and the status acknowledged; the PUBACKs may trail the deliveries */
    for (int i = 0; i < 250 && (mqtt_get_stats(c, &st), st.sent < N + 1); i++)
        sleep_ms(20);
    assert_int_equal(st.sent, N + 1);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.queued, 0);

    /* change is retained: a late subscriber still gets it, and the status */
    const char chg[] = "{\"type\":\"change\",\"label\":\"Bag\"}";
    assert_int_equal(mqtt_publish(c, MQTT_CHANGE, chg, strlen(chg)), BN_OK);
    assert_true(sub_wait(s, "/change", "Bag", 0, 5));
    subscriber *late = sub_start(b.port, "t1/cam/#", NULL);
    assert_true(sub_wait(late, "/change", "Bag", 0, 5));
    assert_true(sub_wait(late, "/status", "online", 0, 5));
    assert_int_equal(sub_collect(late, "/label", got, SUB_MAX), 0); /* labels not retained */
    sub_stop(late);

    mqtt_close(c); /* graceful: publishes offline itself */
    assert_true(sub_wait(s, "/status", "offline", 0, 5));
    sub_stop(s);
    broker_destroy(&b);
}

static void test_labels_skipped_when_disabled(void **state)
{
    (void)state;
    broker b = {0};
    broker_start(&b);
    subscriber *s = sub_start(b.port, "t5/cam/#", NULL);
    mqtt_config cfg;
    base_cfg(&cfg, b.port, "t5/cam");
    cfg.publish_labels = false;
    cfg.qos = 0;
    mqtt_client *c = NULL;
    char err[256];
    assert_int_equal(mqtt_open(&cfg, "cam", &c, err, sizeof err), BN_OK);
    mqtt_stats st;
    assert_true(wait_state(c, MQTT_CONNECTED, 5, &st));
    publish_label(c, 1);
    const char src[] = "{\"type\":\"source\",\"state\":\"playing\"}";
    assert_int_equal(mqtt_publish(c, MQTT_SOURCE, src, strlen(src)), BN_OK);
    const char stats[] = "{\"type\":\"stats\"}";
    assert_int_equal(mqtt_publish(c, MQTT_STATS, stats, strlen(stats)), BN_OK);
    assert_true(sub_wait(s, "/source", "playing", 0, 5));
    assert_true(sub_wait(s, "/stats", "stats", 0, 5));
    static rx_msg got[16];
    assert_int_equal(sub_collect(s, "/label", got, 16), 0);
    assert_int_equal(mqtt_publish(c, MQTT_TOPIC_COUNT, src, 3), BN_ERR_INVALID_ARG);
    mqtt_close(c);
    sub_stop(s);
    broker_destroy(&b);
}

/* The process dies without a DISCONNECT: the broker publishes the last will. The child is
 * forked before this process starts any thread; pipes sequence the two. */
static void test_last_will_on_kill(void **state)
{
    (void)state;
    broker b = {0};
    broker_start(&b);
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mqtt_config cfg;
        base_cfg(&cfg, b.port, "t2/cam");
        mqtt_client *c = NULL;
        if (mqtt_open(&cfg, "cam", &c, NULL, 0) != BN_OK)
            _exit(2);
        mqtt_stats st;
        for (int i = 0; i < 250; i++) {
            mqtt_get_stats(c, &st);
            if (st.state == MQTT_CONNECTED && st.sent >= 1) /* "online" acknowledged */
                break;
            sleep_ms(20);
        }
        char x = st.state == MQTT_CONNECTED ? 'c' : 'n';
        if (write(up[1], &x, 1) != 1 || read(down[0], &x, 1) != 1)
            _exit(4);
        raise(SIGKILL);
        _exit(3);
    }
    char x = 0;
    assert_int_equal(read(up[0], &x, 1), 1);
    assert_int_equal(x, 'c');
    subscriber *s = sub_start(b.port, "t2/cam/status", NULL);
    assert_true(sub_wait(s, "/status", "online", 0, 5)); /* retained */
    assert_int_equal(write(down[1], &x, 1), 1);
    int ws;
    waitpid(pid, &ws, 0);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    assert_true(sub_wait(s, "/status", "offline", 0, 5));
    subscriber *late = sub_start(b.port, "t2/cam/status", NULL);
    assert_true(sub_wait(late, "/status", "offline", 0, 5));
    rx_msg got[4];
    assert_int_equal(sub_collect(late, "/status", got, 4), 1);
    assert_true(got[0].retain);
    sub_stop(late);
    sub_stop(s);
    for (int i = 0; i < 2; i++) {
        close(up[i]);
        close(down[i]);
    }
    broker_destroy(&b);
}

/* Broker down for 2 s: the client keeps accepting messages without blocking, keeps the
 * newest `queue` of them, reconnects, sends them in order after a drop report; the next
 * outage, which drops nothing, gets its report too ("dropped":0). */
static void test_broker_restart_queue_and_drops(void **state)
{
    (void)state;
    broker b = {0};
    broker_start(&b);
    subscriber *s = sub_start(b.port, "t3/cam/#", "bn-test-persistent-sub");
    mqtt_config cfg;
    base_cfg(&cfg, b.port, "t3/cam");
    cfg.queue = 20;
    mqtt_client *c = NULL;
    char err[256];
    assert_int_equal(mqtt_open(&cfg, "cam", &c, err, sizeof err), BN_OK);
    mqtt_stats st;
    assert_true(wait_state(c, MQTT_CONNECTED, 5, &st));
    for (int i = 1; i <= 10; i++)
        publish_label(c, i);
    assert_true(sub_wait(s, "/label", NULL, 10, 5));

    broker_stop(&b);
    assert_true(wait_state(c, MQTT_DISCONNECTED, 5, &st));
    double t0 = now_s();
    for (int i = 11; i <= 60; i++)
        publish_label(c, i);
    double took = now_s() - t0;
    mqtt_get_stats(c, &st);
    assert_int_equal(st.queued, 20);
    assert_int_equal(st.dropped, 30);
    sleep_ms(2000);
    mqtt_get_stats(c, &st);
    assert_int_not_equal(st.state, MQTT_CONNECTED);
    assert_non_null(strstr(st.last_error, "127.0.0.1:"));
    print_message("broker down: 50 publishes took %.3f ms; state %s; last error \"%s\"\n",
                  took * 1e3, mqtt_state_name(st.state), st.last_error);

    broker_start(&b);
    assert_true(wait_state(c, MQTT_CONNECTED, 20, &st));
    assert_int_equal(st.connects, 2);
    assert_string_equal(st.last_error, ""); /* connected again: no current failure */
    assert_true(sub_wait(s, "/label", "\"seq\":60", 0, 10));
    assert_true(sub_wait(s, "/stats", "\"dropped\":30", 0, 5));
    static rx_msg got[SUB_MAX];
    int n = sub_collect(s, "/label", got, SUB_MAX);
    /* after the first 10 (QoS 1 may repeat some of them), exactly 41..60 in order */
    int k = 0;
    while (k < n && label_seq(&got[k]) <= 10)
        k++;
    assert_int_equal(n - k, 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(label_seq(&got[k + i]), 41 + i);
    rx_msg stats[8];
    int ns = sub_collect(s, "/stats", stats, 8);
    assert_int_equal(ns, 1);
    assert_non_null(strstr(stats[0].payload, "\"type\":\"broker\""));
    assert_non_null(strstr(stats[0].payload, "\"dropped_total\":30"));
    mqtt_get_stats(c, &st);
    assert_int_equal(st.dropped, 30);

    /* an outage that dropped nothing is reported too: every reconnect says what it cost */
    broker_stop(&b);
    assert_true(wait_state(c, MQTT_DISCONNECTED, 5, &st));
    broker_start(&b);
    assert_true(wait_state(c, MQTT_CONNECTED, 20, &st));
    assert_int_equal(st.connects, 3);
    assert_true(sub_wait(s, "/stats", "\"dropped\":0,", 0, 5));
    ns = sub_collect(s, "/stats", stats, 8);
    assert_int_equal(ns, 2);
    assert_non_null(strstr(stats[1].payload, "\"type\":\"broker\""));
    assert_non_null(strstr(stats[1].payload, "\"dropped_total\":30"));
    mqtt_close(c);
    sub_stop(s);
    broker_destroy(&b);
}

static void test_wrong_credentials(void **state)
{
    (void)state;
    broker b = {0};
    snprintf(b.dir, sizeof b.dir, "/tmp/bn-mqtt-test.XXXXXX");
    assert_non_null(mkdtemp(b.dir));
    b.port = free_port();
    char cmd[512], users[128], pwfile[128];
    snprintf(users, sizeof users, "%s/users", b.dir);
    snprintf(cmd, sizeof cmd, "mosquitto_passwd -b -c '%s' cam1 right-secret-123 >/dev/null 2>&1", users);
    assert_int_equal(system(cmd), 0);
    chmod(users, 0644); /* the broker may read it as another user */
    snprintf(b.extra, sizeof b.extra, "allow_anonymous false\npassword_file %s\n", users);
    broker_start(&b);

    log_capture lc = {.all = ""};
    pthread_mutex_init(&lc.mu, NULL);
    bn_log_set_callback(capture_fn, &lc);

    snprintf(pwfile, sizeof pwfile, "%s/cam1.pw", b.dir);
    FILE *f = fopen(pwfile, "w");
    fputs("wrong-secret-456\n", f);
    fclose(f);
    chmod(pwfile, 0600);
    mqtt_config cfg;
    base_cfg(&cfg, b.port, "t4/cam");
    snprintf(cfg.username, sizeof cfg.username, "cam1");
    snprintf(cfg.password_file, sizeof cfg.password_file, "%s", pwfile);
    mqtt_client *c = NULL;
    char err[256];
    assert_int_equal(mqtt_open(&cfg, "cam", &c, err, sizeof err), BN_OK);
    mqtt_stats st;
    assert_true(wait_error(c, "not authorised", 5, &st));
    assert_int_not_equal(st.state, MQTT_CONNECTED);
    publish_label(c, 1); /* still accepted, queued */
    mqtt_get_stats(c, &st);
    assert_int_equal(st.queued, 1);
    sleep_ms(1500); /* a few retries: logged once */
    mqtt_close(c);

    /* the right password connects (the failure above was the credentials) */
    f = fopen(pwfile, "w");
    fputs("right-secret-123\n", f);
    fclose(f);
    assert_int_equal(mqtt_open(&cfg, "cam", &c, err, sizeof err), BN_OK);
    assert_true(wait_state(c, MQTT_CONNECTED, 5, &st));
    mqtt_close(c);

    bn_log_set_callback(NULL, NULL);
    print_message("log:\n%s", lc.all);
    assert_null(strstr(lc.all, "secret"));
    char *first = strstr(lc.all, "not authorised");
    assert_non_null(first);
    assert_null(strstr(first + 1, "not authorised")); /* logged once, not per retry */
    pthread_mutex_destroy(&lc.mu);
    broker_destroy(&b);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* The multi-machine broker set-up of docs/deploy.md: TLS listener, passwords, an ACL that
 * confines each machine's user to its own prefix. Certificates made with openssl. */
static void test_tls_broker_with_acl(void **state)
{
    (void)state;
    broker b = {0};
    snprintf(b.dir, sizeof b.dir, "/tmp/bn-mqtt-test.XXXXXX");
    assert_non_null(mkdtemp(b.dir));
    b.port = free_port();
    char cmd[2048], path[256];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && exec >openssl.log 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=test-ca -keyout ca.key -out ca.crt && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-subj /CN=127.0.0.1 -keyout broker.key -out broker.csr && "
             "printf 'subjectAltName=IP:127.0.0.1\n' >san.ext && "
             "openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile san.ext -out broker.crt && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=other-ca -keyout other.key -out other.crt && chmod 644 broker.key && "
             "mosquitto_passwd -b -c users edge1 edge1-pw && "
             "mosquitto_passwd -b users dashboard dash-pw && chmod 644 users",
             b.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/acl", b.dir);
    write_file(path, "pattern readwrite site/%u/#\nuser dashboard\ntopic read site/#\n", 0644);
    snprintf(b.extra, sizeof b.extra,
             "cafile %s/ca.crt\ncertfile %s/broker.crt\nkeyfile %s/broker.key\n"
             "allow_anonymous false\npassword_file %s/users\nacl_file %s/acl\n",
             b.dir, b.dir, b.dir, b.dir, b.dir);
    broker_start(&b);

    char ca[256], other[256], pw[256];
    snprintf(ca, sizeof ca, "%s/ca.crt", b.dir);
    snprintf(other, sizeof other, "%s/other.crt", b.dir);
    snprintf(pw, sizeof pw, "%s/edge1.pw", b.dir);
    write_file(pw, "edge1-pw\n", 0600);
    sub_auth dash = {ca, "dashboard", "dash-pw"};
    subscriber *s = sub_start_auth(b.port, "site/#", NULL, &dash);

    mqtt_config cfg;
    base_cfg(&cfg, b.port, "site/edge1/door");
    snprintf(cfg.ca_file, sizeof cfg.ca_file, "%s", ca);
    snprintf(cfg.username, sizeof cfg.username, "edge1");
    snprintf(cfg.password_file, sizeof cfg.password_file, "%s", pw);
    mqtt_client *c = NULL;
    char err[256];
    assert_int_equal(mqtt_open(&cfg, "door", &c, err, sizeof err), BN_OK);
    mqtt_stats st;
    assert_true(wait_state(c, MQTT_CONNECTED, 5, &st));
    const char chg[] = "{\"type\":\"change\",\"label\":\"Coat\"}";
    assert_int_equal(mqtt_publish(c, MQTT_CHANGE, chg, strlen(chg)), BN_OK);
    assert_true(sub_wait(s, "site/edge1/door/change", "Coat", 0, 5));
    assert_true(sub_wait(s, "site/edge1/door/status", "online", 0, 5));
    mqtt_close(c);

    /* outside its prefix the ACL drops what edge1 publishes (MQTT 3.1.1 has no error
     * for that): nothing arrives */
    base_cfg(&cfg, b.port, "site/edge2/door");
    snprintf(cfg.ca_file, sizeof cfg.ca_file, "%s", ca);
    snprintf(cfg.username, sizeof cfg.username, "edge1");
    snprintf(cfg.password_file, sizeof cfg.password_file, "%s", pw);
    assert_int_equal(mqtt_open(&cfg, "door", &c, err, sizeof err), BN_OK);
    assert_true(wait_state(c, MQTT_CONNECTED, 5, &st));
    assert_int_equal(mqtt_publish(c, MQTT_CHANGE, chg, strlen(chg)), BN_OK);
    sleep_ms(300);
    mqtt_close(c);
    assert_false(sub_wait(s, "site/edge2/door/change", "Coat", 0, 0.2));

    /* a CA that did not sign the broker's certificate: a TLS error in stats */
    base_cfg(&cfg, b.port, "site/edge1/door");
    snprintf(cfg.ca_file, sizeof cfg.ca_file, "%s", other);
    snprintf(cfg.username, sizeof cfg.username, "edge1");
    snprintf(cfg.password_file, sizeof cfg.password_file, "%s", pw);
    assert_int_equal(mqtt_open(&cfg, "door", &c, err, sizeof err), BN_OK);
    assert_true(wait_error(c, "TLS", 5, &st));
    assert_int_not_equal(st.state, MQTT_CONNECTED);
    print_message("wrong CA: %s\n", st.last_error);
    mqtt_close(c);

    sub_stop(s);
    broker_destroy(&b);
}

static void test_unknown_host(void **state)
{
    (void)state;
    /* How long this machine takes to fail the lookup (fast with a DNS server, the resolver
     * timeout without one): the waits below scale with it. */
    double t0 = now_s();
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo("no-such-host.invalid", "1883", NULL, &ai);
    if (gai == 0)
        freeaddrinfo(ai);
    double t_dns = now_s() - t0;
    assert_int_not_equal(gai, 0);
    mqtt_config cfg;
    base_cfg(&cfg, 1, "t6/cam");
    snprintf(cfg.host, sizeof cfg.host, "no-such-host.invalid");
    mqtt_client *c = NULL;
    char err[256];
    assert_int_equal(mqtt_open(&cfg, "cam", &c, err, sizeof err), BN_OK);
    mqtt_stats st;
    assert_true(wait_error(c, "cannot resolve host 'no-such-host.invalid'", 5 + 3 * t_dns, &st));
    assert_int_not_equal(st.state, MQTT_CONNECTED);
    publish_label(c, 1);
    t0 = now_s();
    mqtt_close(c);
    /* close sits out neither the back-off nor a hanging lookup (it gives up after 1 s) */
    print_message("lookup fails in %.3f s; close took %.3f s\n", t_dns, now_s() - t0);
    assert_true(now_s() - t0 < 3.0);
}

static void test_file_errors_at_open(void **state)
{
    (void)state;
    mqtt_config cfg;
    base_cfg(&cfg, 1883, "t7/cam");
    mqtt_client *c = (mqtt_client *)0x1;
    char err[256] = "";
    snprintf(cfg.ca_file, sizeof cfg.ca_file, "/nonexistent/ca.pem");
    assert_int_equal(mqtt_open(&cfg, "cam", &c, err, sizeof err), BN_ERR_IO);
    assert_null(c);
    assert_string_equal(err, "mqtt.ca_file /nonexistent/ca.pem: No such file or directory");

    base_cfg(&cfg, 1883, "t7/cam");
    snprintf(cfg.username, sizeof cfg.username, "u");
    snprintf(cfg.password_file, sizeof cfg.password_file, "/nonexistent/pw");
    assert_int_equal(mqtt_open(&cfg, "cam", &c, err, sizeof err), BN_ERR_IO);
    assert_string_equal(err, "mqtt.password_file /nonexistent/pw: No such file or directory");

    char empty[] = "/tmp/bn-mqtt-empty-pw.XXXXXX";
    int fd = mkstemp(empty);
    close(fd);
    snprintf(cfg.password_file, sizeof cfg.password_file, "%s", empty);
    assert_int_equal(mqtt_open(&cfg, "cam", &c, err, sizeof err), BN_ERR_CONFIG);
    assert_non_null(strstr(err, "first line is empty"));
    unlink(empty);
}

int main(void)
{
    if (access(MOSQUITTO_BIN, X_OK) != 0) {
        fprintf(stderr, "test_daemon_mqtt: %s missing (apt-get install mosquitto)\n", MOSQUITTO_BIN);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_will_on_kill), /* first: it forks */
        cmocka_unit_test(test_file_errors_at_open),
        cmocka_unit_test(test_qos1_order_retained_status),
        cmocka_unit_test(test_labels_skipped_when_disabled),
        cmocka_unit_test(test_broker_restart_queue_and_drops),
        cmocka_unit_test(test_wrong_credentials),
        cmocka_unit_test(test_tls_broker_with_acl),
        cmocka_unit_test(test_unknown_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
