/* Inference thread and its result queue (see infer.h). The queue is a mutex-protected ring;
 * the eventfd counts nothing, it only wakes the event loop. */
#include "infer.h"

#include <errno.h>
#include <glib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bn_log.h"
#include "frame_slot.h"

#define MOD "infer"
#define PULL_TIMEOUT_MS 100
#define STATS_EVERY 8

struct infer {
    capture *cap;
    bn_session *session;
    budget_ctl *budget;
    gate *gate;             /* NULL: gate off */
    gate_params gp;
    frame_slot *slot;       /* not owned; NULL: none */
    infer_result last;      /* the last classified frame, for reuse */
    bool have_last;
    uint64_t owed;          /* frames pulled that got no result (the engine failed on them),
                               with the source drops before them: added to the next
                               result's dropped count, so no frame goes uncounted */
    GThread *thread;
    atomic_bool stop;
    int efd;

    GMutex lock;            /* protects everything below */
    infer_result *ring;
    int cap_n, head, count;
    bool eos;
    uint64_t dropped_results;
    budget_ctl *pending_budget;
    bool pending_ms_set;
    double pending_ms;
    budget_stats bstats;
    gate_stats gstats;

    atomic_uint_fast64_t heartbeat, frames;
    _Atomic int source_state;   /* 0 running, 1 lost, 2 eos, 3 closed, 4 error */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wake(infer *in)
{
    uint64_t one = 1;
    ssize_t n = write(in->efd, &one, sizeof one);
    (void)n;    /* EAGAIN: the counter is already non-zero, the loop will wake */
}

/* Queues r for the loop. A full ring drops its oldest result; the frames that result stood
 * for (its own and the drops it carried) move into the dropped count of the result now
 * oldest, so the label published next says how many frames nobody saw since the previous
 * one (docs/protocol.md, "Accounting for every frame"). The seq numbers stay consecutive. */
static void push_result(infer *in, const infer_result *r)
{
    infer_result q = *r;
    q.dropped += in->owed;
    in->owed = 0;
    g_mutex_lock(&in->lock);
    if (in->count == in->cap_n) {
        uint64_t lost = 1 + in->ring[in->head].dropped;
        in->head = (in->head + 1) % in->cap_n;
        in->count--;
        in->dropped_results++;
        if (in->count > 0)
            in->ring[in->head].dropped += lost;
        else
            q.dropped += lost;  /* a one-slot ring: the new result is the next one */
    }
    in->ring[(in->head + in->count) % in->cap_n] = q;
    in->count++;
    g_mutex_unlock(&in->lock);
    wake(in);
}

/* Applies what the loop asked for since the last frame. */
static void apply_pending(infer *in)
{
    budget_ctl *old = NULL;
    g_mutex_lock(&in->lock);
    if (in->pending_budget) {
        old = in->budget;
        in->budget = in->pending_budget;
        in->pending_budget = NULL;
    }
    if (in->pending_ms_set) {
        budget_set_latency(in->budget, in->pending_ms);
        in->pending_ms_set = false;
    }
    g_mutex_unlock(&in->lock);
    budget_free(old);
}

/* One frame through both stages. Errors are returned, not logged: the caller logs a
 * repeated failure once, not once per frame. */
static bn_status classify(infer *in, const capture_frame *fr, const char **stage)
{
    infer_result r = {0};
    bn_result res;
    r.frame_seq = fr->seq;
    r.pts_ns = fr->pts_ns;
    r.capture_mono_ns = fr->capture_mono_ns;
    r.dropped = fr->dropped;
    r.start_mono_ns = mono_ns();
    /* The gate first: an unchanged frame reuses the last answer and never reaches the
     * engine or the budget controller (docs/gate.md). */
    bool gated = in->gate && fr->width == in->gp.width && fr->height == in->gp.height &&
                 fr->channels == in->gp.channels;
    uint64_t t_frame = fr->capture_mono_ns ? fr->capture_mono_ns : r.start_mono_ns;
    if (gated) {
        gate_decision gd = gate_decide(in->gate, fr->data, fr->stride, t_frame);
        r.gated = true;
        r.ns_gate = gd.ns;
        r.gate_verdict = (int)gd.verdict;
        if (!gd.open && in->have_last) {
            const infer_result *l = &in->last;
            r.class_id = l->class_id;
            r.score = l->score;
            r.stage = INFER_STAGE_REUSE;
            r.reason = BUDGET_EXIT_CONFIDENT;
            r.threshold = l->threshold;
            r.light_class = l->light_class;
            r.light_score = l->light_score;
            r.reuse_age_ns = t_frame >= l->capture_mono_ns ? t_frame - l->capture_mono_ns : 0;
            r.done_mono_ns = mono_ns();
            frame_slot_put(in->slot, fr, &r);
            push_result(in, &r);
            return BN_OK;
        }
    }
    float thr = budget_next_threshold(in->budget);
    *stage = "lightweight model";
    bn_status st = bn_run_light(in->session, fr->data, fr->stride, &res);
    if (st != BN_OK)
        return st;
    uint64_t elapsed = mono_ns() - r.start_mono_ns;
    budget_decision d = budget_should_run_specialist(in->budget, res.light_score, elapsed);
    if (d.run) {
        *stage = "specialist";
        st = bn_run_specialist(in->session, &res);
        if (st != BN_OK)
            return st;
    }
    budget_observe(in->budget, res.light_score, res.ns_light,
                   d.run ? res.ns_synth + res.ns_specialist : 0, d.run);
    r.done_mono_ns = mono_ns();
    r.class_id = res.class_id;
    r.score = res.score;
    r.stage = (int)res.stage;
    r.reason = (int)d.reason;
    r.threshold = thr;
    r.light_class = res.light_class;
    r.light_score = res.light_score;
    r.ns_light = res.ns_light;
    r.ns_synth = d.run ? res.ns_synth : 0;
    r.ns_specialist = d.run ? res.ns_specialist : 0;
    r.madds = res.madds;
    r.synth_layers = r.stage == BN_STAGE_SPECIALIST ? res.synth_layers : 0;
    r.synth_reused = r.stage == BN_STAGE_SPECIALIST ? res.synth_reused : 0;
    if (gated)
        gate_commit(in->gate, r.class_id, r.score);
    in->last = r;
    in->last.capture_mono_ns = t_frame;
    in->have_last = true;
    frame_slot_put(in->slot, fr, &r);
    push_result(in, &r);
    return BN_OK;
}

static gpointer thread_main(gpointer data)
{
    infer *in = data;
    uint64_t n = 0;
    bool error_logged = false;
    while (!atomic_load(&in->stop)) {
        atomic_fetch_add(&in->heartbeat, 1);
        apply_pending(in);
        capture_frame fr;
        bn_status st = capture_pull(in->cap, &fr, PULL_TIMEOUT_MS);
        switch (st) {
        case BN_OK: {
            atomic_store(&in->source_state, 0);
            const char *stage = "";
            bn_status cst = classify(in, &fr, &stage);
            capture_frame seen = fr;    /* capture_release clears fr */
            capture_release(in->cap, &fr);
            if (cst != BN_OK) {
                in->owed += 1 + seen.dropped;
                if (!error_logged)
                    BN_LOGE(MOD, "%s failed on a %dx%dx%d frame: %s; frames are skipped until "
                                 "it works again", stage, seen.width, seen.height,
                            seen.channels, bn_status_str(cst));
                error_logged = true;
                atomic_store(&in->source_state, 4);
                break;
            }
            if (error_logged)
                BN_LOGI(MOD, "inference works again");
            error_logged = false;
            atomic_fetch_add(&in->frames, 1);
            if (++n % STATS_EVERY == 1) {
                budget_stats bs;
                budget_get_stats(in->budget, &bs);
                gate_stats gs = {0};
                if (in->gate)
                    gate_get_stats(in->gate, &gs);
                g_mutex_lock(&in->lock);
                in->bstats = bs;
                in->gstats = gs;
                g_mutex_unlock(&in->lock);
            }
            break;
        }
        case BN_ERR_TIMEOUT:
            break;
        case BN_ERR_SOURCE_LOST:
            atomic_store(&in->source_state, 1);
            break;
        case BN_ERR_EOS:
            atomic_store(&in->source_state, 2);
            g_mutex_lock(&in->lock);
            in->eos = true;
            g_mutex_unlock(&in->lock);
            wake(in);
            return NULL;
        case BN_ERR_CLOSED:
            atomic_store(&in->source_state, 3);
            return NULL;
        default:
            /* A frame that cannot be mapped: capture logged it; do not spin on it. */
            g_usleep(10000);
            break;
        }
    }
    return NULL;
}

bn_status infer_start(const infer_params *p, infer **out, char *err, size_t errlen)
{
    *out = NULL;
    infer *in = calloc(1, sizeof *in);
    int qn = p->queue > 0 ? p->queue : 64;
    if (in)
        in->ring = calloc((size_t)qn, sizeof *in->ring);
    if (!in || !in->ring) {
        if (in)
            free(in->ring);
        free(in);
        budget_free(p->budget);
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    in->cap = p->cap;
    in->session = p->session;
    in->slot = p->frames;
    in->budget = p->budget;
    in->cap_n = qn;
    in->efd = -1;
    g_mutex_init(&in->lock);
    if (p->gate_on) {
        in->gp = p->gate;
        bn_status gst = gate_new(&p->gate, &in->gate, err, errlen);
        if (gst != BN_OK) {
            infer_free(in);
            return gst;
        }
        gate_get_stats(in->gate, &in->gstats);
    }
    budget_get_stats(in->budget, &in->bstats);
    in->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        infer_free(in);
        return BN_ERR_IO;
    }
    GError *ge = NULL;
    in->thread = g_thread_try_new("infer", thread_main, in, &ge);
    if (!in->thread) {
        snprintf(err, errlen, "cannot start the inference thread: %s", ge ? ge->message : "?");
        g_clear_error(&ge);
        infer_free(in);
        return BN_ERR_INTERNAL;
    }
    *out = in;
    return BN_OK;
}

void infer_stop(infer *in)
{
    if (!in || !in->thread)
        return;
    atomic_store(&in->stop, true);
    g_thread_join(in->thread);
    in->thread = NULL;
}

void infer_free(infer *in)
{
    if (!in)
        return;
    infer_stop(in);
    if (in->efd >= 0)
        close(in->efd);
    budget_free(in->budget);
    budget_free(in->pending_budget);
    gate_free(in->gate);
    free(in->ring);
    g_mutex_clear(&in->lock);
    free(in);
}

int infer_eventfd(const infer *in)
{
    return in->efd;
}

int infer_drain(infer *in, infer_result *out, int max, bool *eos)
{
    uint64_t v;
    ssize_t n = read(in->efd, &v, sizeof v);
    (void)n;
    g_mutex_lock(&in->lock);
    int k = 0;
    while (k < max && in->count > 0) {
        out[k++] = in->ring[in->head];
        in->head = (in->head + 1) % in->cap_n;
        in->count--;
    }
    if (in->count > 0)
        wake(in);   /* more than max waiting: come back */
    if (eos)
        *eos = in->eos && in->count == 0;
    g_mutex_unlock(&in->lock);
    return k;
}

void infer_set_budget(infer *in, budget_ctl *b)
{
    g_mutex_lock(&in->lock);
    budget_free(in->pending_budget);
    in->pending_budget = b;
    g_mutex_unlock(&in->lock);
}

void infer_set_budget_ms(infer *in, double ms)
{
    g_mutex_lock(&in->lock);
    if (in->pending_budget) {
        budget_set_latency(in->pending_budget, ms);
    } else {
        in->pending_ms = ms;
        in->pending_ms_set = true;
    }
    g_mutex_unlock(&in->lock);
}

void infer_budget_stats(infer *in, budget_stats *st)
{
    g_mutex_lock(&in->lock);
    *st = in->bstats;
    g_mutex_unlock(&in->lock);
}

bool infer_gate_stats(infer *in, gate_stats *st)
{
    g_mutex_lock(&in->lock);
    *st = in->gstats;
    g_mutex_unlock(&in->lock);
    return in->gate != NULL;
}

uint64_t infer_heartbeat(const infer *in)
{
    return atomic_load(&((infer *)in)->heartbeat);
}

uint64_t infer_frames(const infer *in)
{
    return atomic_load(&((infer *)in)->frames);
}

uint64_t infer_results_dropped(const infer *in)
{
    g_mutex_lock(&((infer *)in)->lock);
    uint64_t n = in->dropped_results;
    g_mutex_unlock(&((infer *)in)->lock);
    return n;
}

const char *infer_source_state(const infer *in)
{
    static const char *const names[] = {"running", "lost", "eos", "closed", "error"};
    int s = atomic_load(&((infer *)in)->source_state);
    return s >= 0 && s < 5 ? names[s] : "?";
}
