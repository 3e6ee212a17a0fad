/* Capture benchmark driver: runs pipeline/capture on a `pipeline` source of N frames with a
 * consumer thread pulling every frame it can (as the daemon's inference thread does), and
 * prints the GStreamer description the project built, so that bench/capture/run.sh can time
 * the same elements under a bare gst-launch-1.0.
 *
 *   capture_bench describe W H C SOURCE     print the full description and exit
 *   capture_bench run W H C SOURCE          capture until the source ends; print frames */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[1], "describe") && strcmp(argv[1], "run"))) {
        fprintf(stderr, "usage: capture_bench describe|run WIDTH HEIGHT CHANNELS 'SOURCE'\n");
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
