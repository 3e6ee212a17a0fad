/* The frame-difference gate (see gate.h and docs/gate.md). Per frame: a box-downsampled
 * gray copy; the noise of a cell difference from the previous frame (median absolute
 * deviation, a running mean of it); the difference from the last classified frame with the
 * global brightness offset and gain change removed; open when enough cells, or the mean,
 * exceed what the noise explains, or when the last answer is not settled. */
#include "gate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "debounce.h"

/* The downsampled grid's longer side stays at or below this. */
#define GRID_MAX 64
/* Cells a noise sample looks at (a median of 1024 differences is within a few per cent). */
#define NOISE_CELLS 1024
/* Noise samples before the gate may close. */
#define WARMUP 3
/* Running mean of the noise samples: exact for the first frames, then 1/16 per frame. */
#define NOISE_MEMORY 16
/* A noise sample is clipped to this multiple of the estimate (a burst of motion, a frame
 * that the camera re-exposed), so that one frame cannot blow the threshold up. */
#define NOISE_CLIP 1.5f
/* Below this a cell difference is the quantisation of 8-bit pixels, not noise. */
#define SIGMA_MIN 0.5f
/* Open when the mean |residual| exceeds this multiple of sigma: noise alone gives
 * sqrt(2/pi) = 0.80 (Gaussian) to about 1.0 (JPEG's heavier tails). */
#define MEAN_FACTOR 1.6f
/* Gain change removed between the reference and the frame: |gain - 1| at most this; the
 * variance of the reference gets this much added (gray levels squared) so a flat scene
 * does not make the fit up from noise. */
#define GAIN_MAX 0.25f
#define GAIN_RIDGE 4.0f
/* MAD of a normal distribution times this is its sigma. */
#define MAD_TO_SIGMA 1.4826f

struct gate {
    gate_params p;
    int cell, gw, gh, n;
    float *cur, *prev, *ref, *scratch; /* (gh, gw) each */
    uint32_t *rowacc;                  /* (gw) */
    bool has_prev, has_ref;
    uint64_t last_ns, ref_ns;
    float sigma;
    int n_noise;
    int ref_class;          /* the reference's answer */
    float ref_score;
    debounce deb;           /* the publisher's change debounce, fed the same answers */
    int held;               /* frames held (GATE_HELD) since the last classified one */
    bool prev_changing;     /* the frame before differed from the reference (area, mean) */
    uint64_t frames, opened, refreshes;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bn_status gate_new(const gate_params *p, gate **out, char *err, size_t errlen)
{
    *out = NULL;
    if (p->width < 1 || p->height < 1 || p->channels < 1 || p->channels > 4) {
        snprintf(err, errlen, "gate: frames of %dx%dx%d are not supported (1 to 4 channels)",
                 p->width, p->height, p->channels);
        return BN_ERR_INVALID_ARG;
    }
    if (p->refresh_ms < 1 || !(p->cell_sigmas > 0) || !(p->min_area > 0 && p->min_area <= 1) ||
        !(p->min_score >= 0 && p->min_score <= 1) || p->hold_frames < 0) {
        snprintf(err, errlen,
                 "gate: refresh_ms %d, cell_sigmas %g, min_area %g, min_score %g, hold_frames %d "
                 "out of range",
                 p->refresh_ms, p->cell_sigmas, p->min_area, p->min_score, p->hold_frames);
        return BN_ERR_INVALID_ARG;
    }
    gate *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    g->p = *p;
    g->ref_class = -1;
    debounce_init(&g->deb, p->confirm_frames);
    /* A power of two such that the grid fits GRID_MAX; at least 2x2 boxes when the frame
     * is big enough, which halves the noise for the price of nothing. */
    int cell = 1, longer = p->width > p->height ? p->width : p->height;
    int shorter = p->width < p->height ? p->width : p->height;
    while (longer / cell > GRID_MAX)
        cell *= 2;
    while (cell > 1 && shorter / cell < 1) /* a very long, thin frame: one row of cells */
        cell /= 2;
    if (cell == 1 && shorter >= 8)
        cell = 2;
    g->cell = cell;
    g->gw = p->width / cell;
    g->gh = p->height / cell;
    g->n = g->gw * g->gh;
    size_t n = (size_t)g->n;
    g->cur = calloc(n, sizeof(float));
    g->prev = calloc(n, sizeof(float));
    g->ref = calloc(n, sizeof(float));
    g->scratch = calloc(n, sizeof(float));
    g->rowacc = calloc((size_t)g->gw, sizeof(uint32_t));
    if (!g->cur || !g->prev || !g->ref || !g->scratch || !g->rowacc) {
        gate_free(g);
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    *out = g;
    return BN_OK;
}

void gate_free(gate *g)
{
    if (!g)
        return;
    free(g->cur);
    free(g->prev);
    free(g->ref);
    free(g->scratch);
    free(g->rowacc);
    free(g);
}

/* Mean gray of each cell x cell box into out (gh, gw): gray = (R + 2G + B) / 4 of the first
 * three channels, or the first channel of one- and two-channel frames. */
static void downsample(const gate *g, const uint8_t *data, size_t stride, float *out)
{
    const int c = g->p.channels, f = g->cell;
    const bool rgb = c >= 3;
    const float scale = 1.0f / (float)(f * f * (rgb ? 4 : 1));
    for (int cy = 0; cy < g->gh; cy++) {
        memset(g->rowacc, 0, sizeof(uint32_t) * (size_t)g->gw);
        for (int r = 0; r < f; r++) {
            const uint8_t *row = data + (size_t)(cy * f + r) * stride;
            if (c == 1) {
                for (int cx = 0; cx < g->gw; cx++) {
                    uint32_t s = 0;
                    for (int k = 0; k < f; k++)
                        s += row[cx * f + k];
                    g->rowacc[cx] += s;
                }
            } else if (c == 3) {
                /* one pass over the row's bytes: R + B and 2 G summed per box */
                const uint8_t *px = row;
                for (int cx = 0; cx < g->gw; cx++) {
                    uint32_t rb = 0, gg = 0;
                    for (int k = 0; k < f; k++, px += 3) {
                        rb += (uint32_t)px[0] + px[2];
                        gg += px[1];
                    }
                    g->rowacc[cx] += rb + 2 * gg;
                }
            } else {
                for (int cx = 0; cx < g->gw; cx++) {
                    const uint8_t *px = row + (size_t)cx * (size_t)f * (size_t)c;
                    uint32_t s = 0;
                    for (int k = 0; k < f; k++, px += c)
                        s += rgb ? (uint32_t)px[0] + 2u * px[1] + px[2] : px[0];
                    g->rowacc[cx] += s;
                }
            }
        }
        for (int cx = 0; cx < g->gw; cx++)
            out[cy * g->gw + cx] = (float)g->rowacc[cx] * scale;
    }
}

/* The k-th smallest of a[0..n) (Wirth's selection; reorders a). */
static float select_kth(float *a, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float x = a[k];
        int i = lo, j = hi;
        do {
            while (a[i] < x)
                i++;
            while (x < a[j])
                j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < k)
            lo = i;
        if (k < i)
            hi = j;
    }
    return a[k];
}

/* One noise sample from the difference to the previous frame: the MAD around its median,
 * robust to anything moving in less than half of the cells. */
static void update_noise(gate *g)
{
    /* at most NOISE_CELLS cells, evenly spread: the running mean does the rest */
    const int step = g->n > NOISE_CELLS ? (g->n + NOISE_CELLS - 1) / NOISE_CELLS : 1;
    int n = 0;
    for (int i = 0; i < g->n; i += step)
        g->scratch[n++] = g->cur[i] - g->prev[i];
    float med = select_kth(g->scratch, n, n / 2);
    n = 0;
    for (int i = 0; i < g->n; i += step)
        g->scratch[n++] = fabsf(g->cur[i] - g->prev[i] - med);
    float s = MAD_TO_SIGMA * select_kth(g->scratch, n, n / 2);
    if (g->n_noise == 0) {
        g->sigma = s;
    } else {
        if (g->n_noise >= WARMUP && s > NOISE_CLIP * g->sigma)
            s = NOISE_CLIP * g->sigma;
        float w = g->n_noise < NOISE_MEMORY ? 1.0f / (float)(g->n_noise + 1)
                                             : 1.0f / NOISE_MEMORY;
        g->sigma += w * (s - g->sigma);
    }
    g->n_noise++;
}

/* Compares cur with ref after removing the offset and gain between them. */
static gate_verdict compare(const gate *g, float sigma, gate_decision *d)
{
    const int n = g->n;
    double sr = 0, sd = 0, srr = 0, srd = 0;
    for (int i = 0; i < n; i++) {
        double r = g->ref[i], dd = g->cur[i] - g->ref[i];
        sr += r;
        sd += dd;
        srr += r * r;
        srd += r * dd;
    }
    double mr = sr / n, md = sd / n;
    double var = srr / n - mr * mr, cov = srd / n - mr * md;
    double b = cov / (var + GAIN_RIDGE);
    if (b > GAIN_MAX)
        b = GAIN_MAX;
    if (b < -GAIN_MAX)
        b = -GAIN_MAX;
    const float thr = (float)g->p.cell_sigmas * sigma;
    const float fb = (float)b, fmr = (float)mr, fmd = (float)md;
    int changed = 0;
    float sum_abs = 0;
    for (int i = 0; i < n; i++) {
        float e = fabsf(g->cur[i] - g->ref[i] - fmd - fb * (g->ref[i] - fmr));
        changed += e > thr;
        sum_abs += e;
    }
    d->changed_share = (float)changed / (float)n;
    d->mean_residual = sum_abs / (float)n;
    double need = ceil(g->p.min_area * n - 1e-9);
    if (need < 1)
        need = 1;
    if (changed >= need)
        return GATE_OPEN_AREA;
    if (d->mean_residual > MEAN_FACTOR * sigma)
        return GATE_OPEN_MEAN;
    return GATE_CLOSED;
}

gate_decision gate_decide(gate *g, const uint8_t *data, size_t stride, uint64_t now_ns)
{
    uint64_t t0 = mono_ns();
    gate_decision d = {0};
    downsample(g, data, stride, g->cur);
    if (g->has_prev)
        update_noise(g);
    float sigma = g->sigma > SIGMA_MIN ? g->sigma : SIGMA_MIN;
    d.sigma = sigma;
    uint64_t refresh_ns = (uint64_t)g->p.refresh_ms * 1000000ull;
    if (!g->has_ref || g->n_noise < WARMUP)
        d.verdict = GATE_OPEN_START;
    else if (now_ns < g->ref_ns || now_ns - g->ref_ns >= refresh_ns)
        d.verdict = GATE_OPEN_REFRESH;
    else
        d.verdict = compare(g, sigma, &d);
    /* An unchanged picture reuses only a settled answer: one whose label the debounce has
     * confirmed (else the change it may start would be confirmed by one answer repeated,
     * not by independent ones), scored at least min_score (else a first unsure look at a
     * new scene would stand until the refresh while the engine might do better on the
     * next frame). The score is compared as a float, so that a score of 0.9 passes
     * min_score 0.9. */
    if (d.verdict == GATE_CLOSED) {
        if (g->ref_class != g->deb.stable)
            d.verdict = GATE_OPEN_CONFIRM;
        else if (!(g->ref_score >= (float)g->p.min_score))
            d.verdict = GATE_OPEN_UNSURE;
    }
    /* While the picture keeps changing (it did on the frame before too: the first frame of
     * a change is classified at once) or the answer stays unsure, only every
     * (hold_frames + 1)-th frame is classified; the ones between reuse the last answer,
     * provided its label is confirmed (a change being confirmed is classified frame by
     * frame, as with the gate off). The first answer that differs, and so the change event,
     * comes at most hold_frames frames later than with the gate off. */
    bool changing = d.verdict == GATE_OPEN_AREA || d.verdict == GATE_OPEN_MEAN;
    if (((changing && g->prev_changing) || d.verdict == GATE_OPEN_UNSURE) &&
        g->held < g->p.hold_frames && g->ref_class == g->deb.stable) {
        d.verdict = GATE_HELD;
        g->held++;
    }
    g->prev_changing = changing;
    d.open = d.verdict != GATE_CLOSED && d.verdict != GATE_HELD;
    /* this frame is the previous one for the next noise sample (and the reference if it
     * gets committed) */
    float *t = g->prev;
    g->prev = g->cur;
    g->cur = t;
    g->has_prev = true;
    g->last_ns = now_ns;
    g->frames++;
    g->opened += d.open;
    g->refreshes += d.verdict == GATE_OPEN_REFRESH;
    d.ns = mono_ns() - t0;
    return d;
}

void gate_commit(gate *g, int class_id, float score)
{
    if (!g->has_prev)
        return;
    memcpy(g->ref, g->prev, sizeof(float) * (size_t)g->n);
    g->has_ref = true;
    g->ref_ns = g->last_ns;
    g->ref_class = class_id;
    g->ref_score = score;
    g->held = 0;
    debounce_feed(&g->deb, class_id, NULL);
}

void gate_reset(gate *g)
{
    g->has_ref = false;
    g->held = 0;
    g->prev_changing = false;
}

const char *gate_verdict_name(gate_verdict v)
{
    switch (v) {
    case GATE_CLOSED: return "closed";
    case GATE_OPEN_START: return "start";
    case GATE_OPEN_REFRESH: return "refresh";
    case GATE_OPEN_AREA: return "area";
    case GATE_OPEN_MEAN: return "mean";
    case GATE_OPEN_CONFIRM: return "confirm";
    case GATE_OPEN_UNSURE: return "unsure";
    case GATE_HELD: return "held";
    case GATE_VERDICTS: break;
    }
    return "?";
}

void gate_get_stats(const gate *g, gate_stats *st)
{
    memset(st, 0, sizeof *st);
    st->frames = g->frames;
    st->opened = g->opened;
    st->refreshes = g->refreshes;
    st->sigma = g->sigma;
    st->grid_w = g->gw;
    st->grid_h = g->gh;
    st->cell = g->cell;
}
