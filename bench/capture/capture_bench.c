/* Capture benchmark driver: runs pipeline/capture on a `pipeline` source of N frames with a
 * consumer thread pulling every frame it can (as the daemon's inference thread does), and
 * prints the GStreamer description the project built, so that bench/capture/run.sh can time
 * the same elements under a bare gst-launch-1.0.
 *
 *   capture_bench describe W H C SOURCE     print the full description and exit
 *   capture_bench run W H C SOURCE          capture until the source ends; print frames
 *   capture_bench latency W H C FRAMES      live test source 640x480@30: capture-to-pull
 *                                           latency percentiles over FRAMES pulls */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture.h"

typedef struct {
    capture *c;
    GMainLoop *loop;
    volatile gint stop;
    uint64_t pulled, checksum;
} bench_ctx;

static void on_state(capture_state st, const char *msg, void *user)
{
    bench_ctx *b = user;
    (void)msg;
    if (st == CAPTURE_LOST || st == CAPTURE_EOS)   /* the source's end: stop */
        g_main_loop_quit(b->loop);
}

static gpointer consumer(gpointer user)
{
    bench_ctx *b = user;
    while (!g_atomic_int_get(&b->stop)) {
        capture_frame f;
        bn_status st = capture_pull(b->c, &f, 100);
        if (st == BN_OK) {
            b->pulled++;
            b->checksum += f.data[0];   /* touch the frame, as inference would */
            capture_release(b->c, &f);
        } else if (st == BN_ERR_CLOSED || st == BN_ERR_EOS) {
            break;
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* What the inference thread sees: time from the frame's capture (PTS + base time, in
 * CLOCK_MONOTONIC terms) to capture_pull returning it, with a consumer that is waiting. */
static int run_latency(int w, int h, int ch, int n)
{
    source_config s;
    memset(&s, 0, sizeof s);
    s.kind = SOURCE_TEST;
    s.width = 640;
    s.height = 480;
    s.fps = 30;
    s.aspect = ASPECT_CROP;
    snprintf(s.pattern, sizeof s.pattern, "black");
    capture_params p = {.width = w, .height = h, .channels = ch};
    capture *c;
    char err[512];
    if (capture_open(&s, &p, &c, err, sizeof err) != BN_OK) {
        fprintf(stderr, "capture_bench: %s\n", err);
        return 1;
    }
    uint64_t *lat = calloc((size_t)n, sizeof *lat);
    int got = 0;
    while (got < n) {
        capture_frame f;
        if (capture_pull(c, &f, 2000) != BN_OK)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        if (got > 0 || f.seq > 3)   /* skip the start-up frames */
            lat[got++] = now - f.capture_mono_ns;
        capture_release(c, &f);
    }
    capture_close(c);
    qsort(lat, (size_t)got, sizeof *lat, cmp_u64);
    if (got)
        printf("capture->pull latency over %d frames: p50 %.3f ms, p90 %.3f ms, max %.3f ms\n", got,
               lat[got / 2] / 1e6, lat[got * 9 / 10] / 1e6, lat[got - 1] / 1e6);
    free(lat);
    return got == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "latency"))
        return run_latency(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (argc != 6 || (strcmp(argv[1], "describe") && strcmp(argv[1], "run"))) {
        fprintf(stderr, "usage: capture_bench describe|run WIDTH HEIGHT CHANNELS 'SOURCE' | latency W H C FRAMES\n");
        return 2;
    }
    source_config s;
    memset(&s, 0, sizeof s);
    s.kind = SOURCE_PIPELINE;
    s.aspect = ASPECT_CROP;
    s.retry_initial_ms = 60000;   /* the source's end is the end of the run: no retry */
    s.retry_max_ms = 60000;
    snprintf(s.pipeline, sizeof s.pipeline, "%s", argv[5]);
    bench_ctx b = {0};
    b.loop = g_main_loop_new(NULL, FALSE);
    capture_params p = {.width = atoi(argv[2]), .height = atoi(argv[3]), .channels = atoi(argv[4]),
                        .on_state = on_state, .user = &b, .no_sync = true};
    char err[1024];
    if (capture_open(&s, &p, &b.c, err, sizeof err) != BN_OK) {
        fprintf(stderr, "capture_bench: %s\n", err);
        return 1;
    }
    capture_stats st;
    if (!strcmp(argv[1], "describe")) {
        capture_get_stats(b.c, &st);
        printf("%s\n", st.description);
        capture_close(b.c);
        return 0;
    }
    GThread *t = g_thread_new("consumer", consumer, &b);
    g_main_loop_run(b.loop);
    g_atomic_int_set(&b.stop, 1);
    g_thread_join(t);
    capture_get_stats(b.c, &st);
    printf("frames_in=%llu pulled=%llu dropped=%llu\n", (unsigned long long)st.frames_in,
           (unsigned long long)b.pulled, (unsigned long long)st.frames_dropped);
    capture_close(b.c);
    g_main_loop_unref(b.loop);
    return 0;
}
