/* Budget controller: feed-forward specialist share from online cost estimates, turned into
 * a confidence quantile of recent frames, plus an integral term on the latency error.
 * Equations and limits: docs/budget.md. */
#include "budget.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bn_log.h"

#define MOD "budget"
#define WINDOW_MAX (1 << 20)

/* EWMA weight of each new light-time sample: ~10 frames memory, so a 2x slowdown is
 * tracked within a few tens of frames while 10% per-frame noise averages to ~2%. */
static const double ALPHA_LIGHT = 0.1;
/* Same for the specialist/light cost ratio; only updated on frames that ran it. */
static const double ALPHA_RATIO = 0.1;
/* Integral gain per frame on the latency error, in units of specialist shares: a time
 * constant of ~10 frames. It repays recent over- or under-spending, which is what keeps a
 * 200-frame window mean near the budget despite which frames happen to be hard; gains
 * of 0.02-0.05 left 5-10% window errors in simulation, 0.3 and up doubled the threshold
 * jitter (docs/budget.md). */
static const double KI = 0.1;
/* Integral range: it corrects bias, it does not replace the feed-forward estimate. */
static const double I_LIMIT = 0.5;
/* Specialist/light cost ratio assumed before any specialist frame or calibration. */
static const double DEFAULT_RATIO = 4.0;
/* Outliers: one frame preempted on a busy machine can take 100x its cost. Samples above
 * this multiple of the current estimate are clipped to it (winsorized EWMA): a genuine
 * slowdown still moves the estimate by up to 20% a frame, a single spike by at most 20%
 * once. Seen on the real daemon: one 100x light frame made the raw EWMA call the budget
 * unattainable and pinned the threshold at min for 3 seconds. */
static const double CLIP_FACTOR = 3.0;
/* The per-frame error fed to the integral is clipped to this many specialist shares, so
 * one spike is repaid over a few frames, not by starving the specialist for a window. */
static const double ERR_LIMIT = 2.0;
/* Horizon guard: a run of `horizon` frames may spend up to this much over horizon x budget.
 * A cap at exactly the budget has to cut every window that would have gone over, so the
 * long-run mean falls ~5% under the budget on video of still scenes (simulated); with 5%
 * the worst 100-frame window is ~+5% and the long-run mean ~2% under (docs/budget.md). */
static const double HORIZON_SLACK = 0.05;
/* Deadline prediction: mean + this many mean absolute deviations (relative). */
static const double DEADLINE_DEVS = 2.0;

struct budget_ctl {
    budget_params p;
    double budget_ns;

    /* confidence window: ring in arrival order plus the same values sorted */
    float *conf_ring, *conf_sorted;
    int conf_n, conf_pos;

    /* latency window (ms) and whether each frame ran the specialist */
    double *lat_ring, *lat_scratch;
    unsigned char *lat_spec;
    int lat_n, lat_pos;

    /* horizon guard (mean mode): the last `horizon` latencies in ns, and their exact sum */
    uint64_t *hz_ring, hz_sum;
    int hz_n, hz_pos;

    double l_hat;          /* light time estimate, ns */
    double ratio;          /* specialist (synth + spec) / light */
    double s_at_spec, l_at_spec; /* EWMAs of both stage times on frames that ran the spec */
    double spec_dev;       /* EWMA of |spec - predicted| / predicted */
    bool l_known, r_known, r_sampled; /* r_known: guessed or measured; r_sampled: measured */
    int since_spec;        /* frames since the specialist last ran */
    bool horizon_cut;      /* the current frame was answered light by the horizon guard */

    double integ;          /* integral term, in specialist shares */
    double f_target;       /* share aimed at for the current threshold */
    float threshold;
    bool unattainable;

    uint64_t frames, deadline_exits, horizon_exits;
};

void budget_params_init(budget_params *p)
{
    memset(p, 0, sizeof *p);
    p->mode = BUDGET_MEAN;
    p->latency_ms = 50.0;
    p->min = 0.0;
    p->max = 1.0;
    p->window = 256;
    p->horizon = 100;
    p->fixed_threshold = 0.9;
}

static bn_status bad(char *err, size_t n, const char *msg, double v)
{
    if (err && n)
        snprintf(err, n, "budget: %s (got %g)", msg, v);
    return BN_ERR_INVALID_ARG;
}

const char *const budget_mode_names[] = {"off", "mean", "deadline", NULL};

const char *budget_mode_name(budget_mode m)
{
    for (int i = 0; budget_mode_names[i]; i++)
        if ((int)m == i)
            return budget_mode_names[i];
    return "unknown";
}

/* NaN fails both comparisons. */
static bool latency_in_range(double ms)
{
    return ms >= BUDGET_LATENCY_MS_MIN && ms <= BUDGET_LATENCY_MS_MAX;
}

bn_status budget_params_check(const budget_params *p, char *err, size_t errlen)
{
    if (p->mode != BUDGET_OFF && p->mode != BUDGET_MEAN && p->mode != BUDGET_DEADLINE)
        return bad(err, errlen, "mode must be off, mean or deadline", (double)p->mode);
    if (p->mode != BUDGET_OFF && !latency_in_range(p->latency_ms))
        return bad(err, errlen, "latency_ms must be from 0.1 to 10000", p->latency_ms);
    if (!(p->min >= 0 && isfinite(p->min)))
        return bad(err, errlen, "min must be >= 0", p->min);
    if (!(p->max >= p->min && isfinite(p->max))) {
        if (err && errlen)
            snprintf(err, errlen, "budget: min %g > max %g", p->min, p->max);
        return BN_ERR_INVALID_ARG;
    }
    /* 1 is allowed (config accepts it) but makes the quantile the last frame's confidence */
    if (p->window < 1 || p->window > WINDOW_MAX)
        return bad(err, errlen, "window must be from 1 to 1048576 frames", p->window);
    if (p->horizon < 0 || p->horizon > WINDOW_MAX)
        return bad(err, errlen, "horizon must be from 0 to 1048576 frames", p->horizon);
    if (!isfinite(p->fixed_threshold))
        return bad(err, errlen, "fixed threshold must be a number", p->fixed_threshold);
    return BN_OK;
}

bn_status budget_new(const budget_params *p, budget_ctl **out, char *err, size_t errlen)
{
    *out = NULL;
    bn_status st = budget_params_check(p, err, errlen);
    if (st != BN_OK)
        return st;
    budget_ctl *b = calloc(1, sizeof *b);
    if (!b)
        goto nomem;
    b->p = *p;
    b->budget_ns = p->latency_ms * 1e6;
    size_t w = (size_t)p->window;
    b->conf_ring = calloc(w, sizeof *b->conf_ring);
    b->conf_sorted = calloc(w, sizeof *b->conf_sorted);
    b->lat_ring = calloc(w, sizeof *b->lat_ring);
    b->lat_scratch = calloc(w, sizeof *b->lat_scratch);
    b->lat_spec = calloc(w, sizeof *b->lat_spec);
    b->hz_ring = calloc(p->horizon > 0 ? (size_t)p->horizon : 1, sizeof *b->hz_ring);
    if (!b->conf_ring || !b->conf_sorted || !b->lat_ring || !b->lat_scratch || !b->lat_spec ||
        !b->hz_ring)
        goto nomem;
    b->ratio = DEFAULT_RATIO;
    b->threshold = (float)(p->mode == BUDGET_OFF ? p->fixed_threshold : p->min);
    *out = b;
    return BN_OK;
nomem:
    budget_free(b);
    if (err && errlen)
        snprintf(err, errlen, "budget: out of memory for a window of %d frames", p->window);
    return BN_ERR_NOMEM;
}

void budget_free(budget_ctl *b)
{
    if (!b)
        return;
    free(b->conf_ring);
    free(b->conf_sorted);
    free(b->lat_ring);
    free(b->lat_scratch);
    free(b->lat_spec);
    free(b->hz_ring);
    free(b);
}

/* First index in s[0..n) with s[i] >= v (or > v when `after`). */
static int search(const float *s, int n, float v, bool after)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (s[mid] < v || (after && s[mid] == v))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Adds v to the window, evicting the oldest value once full; keeps conf_sorted sorted by
 * one memmove per side (O(window), no allocation). */
static void conf_push(budget_ctl *b, float v)
{
    int w = b->p.window;
    if (b->conf_n == w) {
        float old = b->conf_ring[b->conf_pos];
        int i = search(b->conf_sorted, b->conf_n, old, false);
        memmove(b->conf_sorted + i, b->conf_sorted + i + 1,
                (size_t)(b->conf_n - i - 1) * sizeof(float));
        b->conf_n--;
    }
    int j = search(b->conf_sorted, b->conf_n, v, true);
    memmove(b->conf_sorted + j + 1, b->conf_sorted + j, (size_t)(b->conf_n - j) * sizeof(float));
    b->conf_sorted[j] = v;
    b->conf_n++;
    b->conf_ring[b->conf_pos] = v;
    b->conf_pos = (b->conf_pos + 1) % w;
}

static float clean_score(float s)
{
    if (!(s >= 0.0f)) /* also NaN: treated as "not confident at all" */
        return 0.0f;
    return s > 1.0f ? 1.0f : s;
}

void budget_calibrate(budget_ctl *b, const float *sorted_conf, int n, uint64_t t_light_ns,
                      uint64_t t_spec_ns)
{
    if (sorted_conf && n > 0) {
        int w = b->p.window;
        /* Evenly spaced quantiles of the validation set, written in a scattered order
         * (stride ~0.618 w, coprime to w): real frames then evict a representative
         * sample rather than the lowest confidences first. */
        int stride = (int)(w * 0.618) | 1;
        while (stride > 1) {
            int a = w, c = stride;
            while (c) { int t = a % c; a = c; c = t; }
            if (a == 1)
                break;
            stride += 2;
        }
        b->conf_n = 0;
        b->conf_pos = 0;
        for (int k = 0; k < w; k++) {
            int q = (int)(((long long)k * stride) % w);
            long long idx = ((long long)q * 2 + 1) * n / (2LL * w);
            conf_push(b, clean_score(sorted_conf[idx]));
        }
    }
    if (t_light_ns > 0) {
        b->l_hat = (double)t_light_ns;
        b->l_known = true;
    }
    if (t_spec_ns > 0 && b->l_known) {
        b->ratio = (double)t_spec_ns / b->l_hat;
        b->spec_dev = 0.1; /* a guess is no measurement: keep a margin for the deadline */
        b->r_known = true;
    }
}

static double t_spec_ns(const budget_ctl *b) { return b->ratio * b->l_hat; }

/* A sample for an EWMA, clipped to CLIP_FACTOR times the current estimate. */
static double clip(uint64_t sample_ns, double estimate)
{
    double x = (double)sample_ns, hi = CLIP_FACTOR * estimate;
    return estimate > 0 && x > hi ? hi : x;
}

/* Confidence below which a share f of the window lies; linear between order statistics so
 * that a small change of f moves the threshold a little. */
static float window_quantile(const budget_ctl *b, double f)
{
    const float *s = b->conf_sorted;
    int n = b->conf_n;
    double q = f * n - 0.5;
    if (q <= 0)
        return s[0];
    if (q >= n - 1)
        return s[n - 1];
    int i = (int)q;
    double fr = q - i;
    return (float)(s[i] + fr * (s[i + 1] - s[i]));
}

static float clampf(double v, double lo, double hi) { return (float)(v < lo ? lo : v > hi ? hi : v); }

static void update_unattainable(budget_ctl *b)
{
    bool u = b->l_known && b->l_hat > b->budget_ns;
    if (u != b->unattainable) {
        if (u)
            BN_LOGW(MOD, "budget %.2f ms unattainable: the light model alone takes %.2f ms; "
                    "frames drop at the source", b->p.latency_ms, b->l_hat / 1e6);
        else
            BN_LOGI(MOD, "budget %.2f ms attainable again (light model %.2f ms)",
                    b->p.latency_ms, b->l_hat / 1e6);
        b->unattainable = u;
    }
}

float budget_next_threshold(budget_ctl *b)
{
    const budget_params *p = &b->p;
    switch (p->mode) {
    case BUDGET_OFF:
        b->threshold = (float)p->fixed_threshold;
        return b->threshold;
    case BUDGET_DEADLINE:
        update_unattainable(b);
        b->f_target = 1.0;
        b->threshold = (float)p->max;
        return b->threshold;
    case BUDGET_MEAN:
        break;
    }
    update_unattainable(b);
    if (!b->l_known || b->conf_n == 0 || b->unattainable) {
        /* nothing measured yet, or nothing to spend: the cheapest allowed threshold */
        b->f_target = 0.0;
        b->threshold = (float)p->min;
        return b->threshold;
    }
    double f = (b->budget_ns - b->l_hat) / t_spec_ns(b) + b->integ;
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    b->f_target = f;
    double thr;
    if (f <= 0)
        thr = p->min;
    else if (f >= 1)
        thr = p->max;
    else
        thr = window_quantile(b, f);
    b->threshold = clampf(thr, p->min, p->max);
    return b->threshold;
}

/* Specialist time for the deadline gate; `margin`: mean plus a few mean deviations.
 * Before any light time was observed, this frame's elapsed time stands in for it. */
static double spec_predict_ns(const budget_ctl *b, uint64_t elapsed_ns, bool margin)
{
    double mean = b->l_known ? t_spec_ns(b) : b->ratio * (double)elapsed_ns;
    double dev = b->r_known ? b->spec_dev : 0.25;
    return margin ? mean * (1.0 + DEADLINE_DEVS * dev) : mean;
}

/* Horizon guard: would this frame, if it ran the specialist (predicted total `pred_ns`),
 * take the sum over the last `horizon` frames past horizon x budget x (1 + HORIZON_SLACK)?
 * The quantile and the integral term aim at the budget on average, but on video whose
 * scenes last many frames a streak of hard scenes can overspend any short window
 * (docs/budget.md); this caps every trailing window of H frames at that sum, up to the
 * error of this one prediction. */
static bool horizon_spent(const budget_ctl *b, double pred_ns)
{
    int h = b->p.horizon;
    if (h <= 0)
        return false;
    /* the frame that leaves the window when this one enters no longer counts */
    uint64_t prev = b->hz_sum - (b->hz_n == h ? b->hz_ring[b->hz_pos] : 0);
    return (double)prev + pred_ns > (double)h * b->budget_ns * (1.0 + HORIZON_SLACK);
}

budget_decision budget_should_run_specialist(budget_ctl *b, float light_score,
                                             uint64_t elapsed_ns)
{
    budget_decision d = {.run = false, .reason = BUDGET_EXIT_CONFIDENT,
                         .predicted_total_ms = (double)elapsed_ns / 1e6};
    if (clean_score(light_score) >= b->threshold)
        return d;
    double pred = (double)elapsed_ns + spec_predict_ns(b, elapsed_ns, true);
    /* Probe: the specialist estimate only learns from frames that ran it, so a pessimistic
     * one would lock itself in. After a window without a run, one frame may run when the
     * mean prediction (no margin) fits. */
    double pred_mean = (double)elapsed_ns + spec_predict_ns(b, elapsed_ns, false);
    if (b->p.mode == BUDGET_DEADLINE && pred > b->budget_ns && b->since_spec >= b->p.window &&
        pred_mean <= b->budget_ns)
        pred = pred_mean;
    d.predicted_total_ms = pred / 1e6;
    if (b->p.mode == BUDGET_DEADLINE && pred > b->budget_ns) {
        d.reason = BUDGET_EXIT_DEADLINE;
        d.predicted_total_ms = (double)elapsed_ns / 1e6;
        b->deadline_exits++;
        return d;
    }
    if (b->p.mode == BUDGET_MEAN && horizon_spent(b, pred_mean)) {
        d.reason = BUDGET_EXIT_HORIZON;
        d.predicted_total_ms = (double)elapsed_ns / 1e6;
        b->horizon_exits++;
        b->horizon_cut = true;
        return d;
    }
    d.run = true;
    d.reason = BUDGET_RUN_SPECIALIST;
    return d;
}

const char *budget_reason_name(budget_reason r)
{
    static const char *const names[] = {"threshold", "specialist", "deadline", "horizon"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "unknown";
}

void budget_observe(budget_ctl *b, float light_score, uint64_t ns_light, uint64_t ns_spec,
                    bool ran_specialist)
{
    b->frames++;
    conf_push(b, clean_score(light_score));

    if (ns_light > 0) {
        if (!b->l_known)
            b->l_hat = (double)ns_light;
        else
            b->l_hat += ALPHA_LIGHT * (clip(ns_light, b->l_hat) - b->l_hat);
        b->l_known = true;
    }
    if (ran_specialist && ns_spec > 0 && ns_light > 0) {
        /* The ratio comes from the frames that ran the specialist, spec time against the
         * same frames' light time: contention slows both stages of a frame alike, so the
         * ratio stays put while l_hat catches up. A ratio of two averages, not an average
         * of ratios, which light-time noise would bias upwards. */
        double pred = t_spec_ns(b);
        if (!b->r_sampled) {
            /* a calibrated guess counts as the first sample; otherwise this one is it */
            b->s_at_spec = b->r_known ? pred : (double)ns_spec;
            b->l_at_spec = b->r_known ? b->l_hat : (double)ns_light;
            if (!b->r_known)
                b->spec_dev = 0.1;
            b->r_known = b->r_sampled = true;
        }
        {
            double sp = clip(ns_spec, b->s_at_spec);
            b->spec_dev += ALPHA_RATIO * (fmin(fabs(sp - pred) / pred, 1.0) - b->spec_dev);
            b->s_at_spec += ALPHA_RATIO * (sp - b->s_at_spec);
            b->l_at_spec += ALPHA_RATIO * (clip(ns_light, b->l_at_spec) - b->l_at_spec);
        }
        b->ratio = b->s_at_spec / b->l_at_spec;
    }

    b->since_spec = ran_specialist ? 0 : b->since_spec + 1;

    double lat_ns = (double)ns_light + (ran_specialist ? (double)ns_spec : 0.0);
    b->lat_ring[b->lat_pos] = lat_ns / 1e6;
    b->lat_spec[b->lat_pos] = ran_specialist;
    b->lat_pos = (b->lat_pos + 1) % b->p.window;
    if (b->lat_n < b->p.window)
        b->lat_n++;
    if (b->p.horizon > 0) {
        uint64_t lat = ns_light + (ran_specialist ? ns_spec : 0);
        if (b->hz_n == b->p.horizon)
            b->hz_sum -= b->hz_ring[b->hz_pos];
        else
            b->hz_n++;
        b->hz_ring[b->hz_pos] = lat;
        b->hz_sum += lat;
        b->hz_pos = (b->hz_pos + 1) % b->p.horizon;
    }

    /* Integral on the per-frame latency error, in specialist shares. Frozen while the
     * threshold sits at a bound in the direction the error pushes (anti-windup), and
     * while the budget is out of reach (nothing to correct). */
    if (b->p.mode != BUDGET_MEAN || b->unattainable || !b->l_known)
        return;
    double e = (lat_ns - b->budget_ns) / t_spec_ns(b);
    e = e > ERR_LIMIT ? ERR_LIMIT : e < -ERR_LIMIT ? -ERR_LIMIT : e;
    bool at_max = b->threshold >= (float)b->p.max || b->f_target >= 1.0;
    bool at_min = b->threshold <= (float)b->p.min || b->f_target <= 0.0;
    /* A frame the horizon guard kept light underspends because the guard said so, not
     * because the threshold is too low: counting it would wind the term up against the
     * guard (in simulation the guard then cut 24-31% of all frames, docs/budget.md). */
    bool cut = b->horizon_cut;
    b->horizon_cut = false;
    if ((e < 0 && (at_max || cut)) || (e > 0 && at_min))
        return;
    b->integ -= KI * e;
    if (b->integ > I_LIMIT)
        b->integ = I_LIMIT;
    if (b->integ < -I_LIMIT)
        b->integ = -I_LIMIT;
}

bn_status budget_set_latency(budget_ctl *b, double ms)
{
    if (!latency_in_range(ms))
        return BN_ERR_INVALID_ARG;
    if (ms != b->p.latency_ms)
        BN_LOGI(MOD, "budget %.2f ms -> %.2f ms", b->p.latency_ms, ms);
    b->p.latency_ms = ms;
    b->budget_ns = ms * 1e6;
    return BN_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void budget_get_stats(budget_ctl *b, budget_stats *st)
{
    memset(st, 0, sizeof *st);
    st->mode = b->p.mode;
    st->budget_ms = b->p.latency_ms;
    st->threshold = b->threshold;
    st->target_spec_share = b->f_target;
    st->t_light_ms = b->l_known ? b->l_hat / 1e6 : 0.0;
    st->t_spec_ms = b->l_known ? t_spec_ns(b) / 1e6 : 0.0;
    st->unattainable = b->l_known && b->p.mode != BUDGET_OFF && b->l_hat > b->budget_ns;
    st->frames = b->frames;
    st->deadline_exits = b->deadline_exits;
    st->horizon_exits = b->horizon_exits;
    int n = b->lat_n;
    st->window_frames = n;
    if (n == 0)
        return;
    double sum = 0;
    int spec = 0;
    for (int i = 0; i < n; i++) {
        sum += b->lat_ring[i];
        spec += b->lat_spec[i];
        b->lat_scratch[i] = b->lat_ring[i];
    }
    st->mean_ms = sum / n;
    st->exit_share = 1.0 - (double)spec / n;
    qsort(b->lat_scratch, (size_t)n, sizeof(double), cmp_double);
    int k = (int)ceil(0.99 * n) - 1; /* nearest-rank p99 */
    st->p99_ms = b->lat_scratch[k < 0 ? 0 : k];
}
