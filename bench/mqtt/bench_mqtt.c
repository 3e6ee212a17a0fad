/* MQTT publisher benchmark driver (bench/mqtt/run.sh starts the broker and the instances).
 *   bench_mqtt throughput PORT QOS N       publish N label-sized messages as fast as the API
 *                                          takes them; print msgs/s until all acknowledged
 *   bench_mqtt rate PORT QOS FPS SECONDS NAME
 *                                          publish at FPS like one camera; print the process
 *                                          CPU time (publish calls + network thread) as % of
 *                                          a core */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bn_log.h"
#include "config.h"
#include "mqtt.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* A label message shaped like the daemon's (protocol v1), ~330 bytes. */
static int make_label(char *buf, size_t n, unsigned long seq)
{
    return snprintf(buf, n,
                    "{\"type\":\"label\",\"seq\":%lu,\"pts_ns\":%lu,\"time\":\"2026-11-26T10:00:00.000Z\","
                    "\"label\":\"Sneaker\",\"class\":7,\"score\":0.9731,\"stage\":\"specialist\","
                    "\"threshold\":0.912,\"latency_ms\":{\"light\":0.41,\"synth\":0.22,"
                    "\"specialist\":1.93,\"total\":2.61,\"capture_to_publish\":14.2},"
                    "\"dropped_frames\":0}\n",
                    seq, seq * 33333333UL);
}

static mqtt_client *open_client(int port, int qos, const char *name, int queue)
{
    mqtt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.port = port;
    snprintf(cfg.client_id, sizeof cfg.client_id, "bench-%s-%d", name, (int)getpid());
    snprintf(cfg.topic_prefix, sizeof cfg.topic_prefix, "bench/%s", name);
    cfg.qos = qos;
    cfg.retain = true;
    cfg.keepalive = 30;
    cfg.queue = queue;
    cfg.publish_labels = true;
    mqtt_client *c = NULL;
    char err[256];
    if (mqtt_open(&cfg, name, &c, err, sizeof err) != BN_OK) {
        fprintf(stderr, "bench_mqtt: %s\n", err);
        return NULL;
    }
    mqtt_stats st;
    for (int i = 0; i < 500; i++) {
        mqtt_get_stats(c, &st);
        if (st.state == MQTT_CONNECTED && st.sent >= 1)
            return c;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "bench_mqtt: not connected: %s\n", st.last_error);
    mqtt_close(c);
    return NULL;
}

static int throughput(int port, int qos, long n)
{
    mqtt_client *c = open_client(port, qos, "tp", (int)n);
    if (!c)
        return 1;
    char buf[512];
    mqtt_stats st;
    mqtt_get_stats(c, &st);
    uint64_t base = st.sent;
    double t0 = mono(), c0 = cpu_s();
    for (long i = 1; i <= n; i++) {
        int len = make_label(buf, sizeof buf, (unsigned long)i);
        mqtt_publish(c, MQTT_LABEL, buf, (size_t)len);
    }
    double t_pub = mono() - t0;
    do {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        mqtt_get_stats(c, &st);
    } while (st.sent - base < (uint64_t)n && mono() - t0 < 120);
    double t = mono() - t0, cpu = cpu_s() - c0;
    printf("throughput qos=%d: %ld messages acknowledged in %.3f s = %.0f msg/s; "
           "publish calls took %.3f us each; client CPU %.1f us/message; dropped %llu\n",
           qos, (long)(st.sent - base), t, (double)(st.sent - base) / t, t_pub / n * 1e6,
           cpu / n * 1e6, (unsigned long long)st.dropped);
    mqtt_close(c);
    return st.sent - base == (uint64_t)n ? 0 : 1;
}

static int rate(int port, int qos, int fps, int seconds, const char *name)
{
    mqtt_client *c = open_client(port, qos, name, 1000);
    if (!c)
        return 1;
    char buf[512];
    long frames = (long)fps * seconds;
    double c0 = cpu_s(), t0 = mono();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long i = 1; i <= frames; i++) {
        int len = make_label(buf, sizeof buf, (unsigned long)i);
        mqtt_publish(c, MQTT_LABEL, buf, (size_t)len);
        next.tv_nsec += 1000000000L / fps;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    double wall = mono() - t0, cpu = cpu_s() - c0;
    mqtt_stats st;
    mqtt_get_stats(c, &st);
    printf("rate %s qos=%d: %ld messages at %d fps over %.1f s; CPU %.3f s = %.2f%% of a core; "
           "sent %llu, dropped %llu\n",
           name, qos, frames, fps, wall, cpu, 100 * cpu / wall, (unsigned long long)st.sent,
           (unsigned long long)st.dropped);
    mqtt_close(c);
    return 0;
}

int main(int argc, char **argv)
{
    bn_log_set_callback(bn_log_stderr, NULL);
    if (argc == 5 && strcmp(argv[1], "throughput") == 0)
        return throughput(atoi(argv[2]), atoi(argv[3]), atol(argv[4]));
    if (argc == 7 && strcmp(argv[1], "rate") == 0)
        return rate(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argv[6]);
    fprintf(stderr, "usage: bench_mqtt throughput PORT QOS N | rate PORT QOS FPS SECONDS NAME\n");
    return 2;
}
