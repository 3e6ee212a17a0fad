/* Inference session: plans and allocates every buffer of the forward pass once (layer
 * outputs share buffers by liveness, both stages share one pool), then runs the light
 * stage, the synthesis and the specialist without allocating. */
#include <cblas.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bn_log.h"
#include "chain.h"
#include "cpu.h"
#include "engine_internal.h"
#include "model.h"
#include "pool.h"

/* Layers below this many MAdds run on the caller alone: splitting a layer of a few
 * microseconds costs more than it saves (docs/engine.md, threads). BN_PAR_MIN_MADDS
 * overrides it (tests split every layer with 0). */
#define PAR_MIN_MADDS 200000ull

struct bn_session {
    const bn_model *m;
    float **light_out, **spec_out;  /* per layer output, pointers into the pool */
    float *light_in, *spec_in;      /* stage inputs (HWC) */
    float *col, *se_tmp;            /* scratch (col: one per pool thread, col_floats apart) */
    size_t col_floats;
    float *win;                     /* chain windows of pool parts 1.. (win_floats apart) */
    size_t win_floats;
    float *mean_row, *std_row;      /* mean[x % C], std[x % C] over one image row */
    float *prep_tmp;                /* preprocessing scratch (bn_prep_scratch) */
    float **synth_w;                /* L synthesized weight tensors, packed like weights */
    float *alpha, *light_probs, *spec_probs, *light_logits;
    double *prof[2];                /* per-layer ns sums when profiling (light, specialist) */
    int profiling;
    void *block;                    /* the one allocation behind all of the above */
    bn_pool *pool;                  /* params.threads workers (NULL or 1 thread: caller only) */
    uint64_t par_min_madds;         /* smallest layer split across the pool */
    float reuse_tol;                /* params.synth_reuse */
    unsigned char *synth_pending;   /* L: layer l is to be synthesized before it runs */
    int synth_shared;               /* synth_w share one scratch (no reuse: nothing is kept) */
    uint64_t ns_synth;              /* synthesis time inside the last specialist run (pipelined:
                                     * the time the convolutions waited for it) */
    int pipelined;                  /* this specialist run: a worker synthesizes ahead */
    _Atomic int synth_upto;         /* pipelined: layers [0, synth_upto) have their weights */
    float *alpha_last;              /* L*N: the alpha each synth_w[l] was synthesized from;
                                     * NaN until its first synthesis (never "close") */
    size_t bytes;
    int light_done;
    const uint8_t *image;           /* bn_run_light's image, until spec_in is made from it */
    size_t image_stride;
    int spec_ready;                 /* spec_in holds the normalized image of the last bn_run_light */
    int *chain_at[2];               /* per stage (light, specialist): chain starting at layer i, or -1 */
    bn_chain *chains[2];
    int nchains[2];
};


uint64_t bn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t layer_out_floats(const bn_layer *ly)
{
    return (size_t)ly->g.oc * ly->g.oh * ly->g.ow;
}

/* Greedy liveness-based assignment of layer outputs to buffers. buf_of[i] = buffer index;
 * buf_size[b] grows to the largest tensor it holds. Returns the number of buffers. */
static int plan_stage(const bn_stage_def *sd, int *buf_of, size_t *buf_size, int nbuf_in, int *last_use,
                      int *owner, const bn_chain *chains, int nchains)
{
    for (int i = 0; i < sd->n; i++)
        last_use[i] = i;
    for (int i = 0; i < sd->n; i++) {
        const bn_layer *ly = &sd->layers[i];
        if (ly->in0 >= 0)
            last_use[ly->in0] = i;
        if (ly->in1 >= 0)
            last_use[ly->in1] = i;
    }
    last_use[sd->logits] = sd->n;
    if (sd->coeffs >= 0)
        last_use[sd->coeffs] = sd->n;
    bn_chain_liveness(sd, chains, nchains, last_use);
    int nbuf = 0;
    for (int i = 0; i < sd->n; i++) {
        for (int b = 0; b < nbuf; b++)
            if (owner[b] >= 0 && last_use[owner[b]] < i)
                owner[b] = -1;
        if (sd->layers[i].op == BN_OP_ADD && sd->layers[i].fuse_add) { /* aliases its conv */
            buf_of[i] = buf_of[i - 1];
            owner[buf_of[i]] = i;
            continue;
        }
        const size_t window = bn_chain_window(chains, nchains, i);
        size_t need = window ? window : layer_out_floats(&sd->layers[i]);
        int best = -1;
        for (int b = 0; b < nbuf; b++) {
            if (owner[b] >= 0)
                continue;
            size_t have = b < nbuf_in ? buf_size[b] : 0;
            if (best < 0)
                best = b;
            else {
                size_t hb = best < nbuf_in ? buf_size[best] : 0;
                /* prefer the smallest buffer that fits, else the largest one */
                if ((have >= need && (hb < need || have < hb)) || (hb < need && have > hb))
                    best = b;
            }
        }
        if (best < 0)
            best = nbuf++;
        owner[best] = i;
        buf_of[i] = best;
        if (buf_size[best] < need)
            buf_size[best] = need;
    }
    return nbuf;
}

#define ALIGN_FLOATS 16 /* 64 bytes */
static size_t round_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

bn_status bn_session_new(const bn_model *m, bn_session_params params, bn_session **out, char *err,
                         size_t errlen)
{
    if (!m || !out)
        return BN_ERR_INVALID_ARG;
    *out = NULL;
    int threads = params.threads > 0 ? params.threads : 1;
    if (threads > 64)
        threads = 64;
    /* OpenBLAS (only the im2col path, non-MobileNet shapes) stays on one thread: its own
     * spinning workers would fight the session pool for the same cores */
    openblas_set_num_threads(1);

    const bn_model_info *info = &m->info;
    int maxn = m->light.n > m->spec.n ? m->light.n : m->spec.n;
    int *light_buf = calloc((size_t)maxn, sizeof(int)), *spec_buf = calloc((size_t)maxn, sizeof(int));
    int *last_use = calloc((size_t)maxn + 1, sizeof(int)), *owner = malloc(sizeof(int) * (size_t)maxn);
    size_t *buf_size = calloc((size_t)maxn, sizeof(size_t)), *synth_off = NULL;
    bn_session *s = calloc(1, sizeof *s);
    bn_status st = BN_ERR_NOMEM;
    if (!light_buf || !spec_buf || !last_use || !owner || !buf_size || !s)
        goto done;
    const bn_stage_def *stages[2] = {&m->light, &m->spec};
    int *nchains = s->nchains;
    const size_t band_bytes = bn_chain_band_bytes();
    for (int k = 0; k < 2; k++) {
        s->chain_at[k] = malloc(sizeof(int) * (size_t)(stages[k]->n + 1));
        s->chains[k] = malloc(sizeof(bn_chain) * (size_t)(stages[k]->n / 2 + 1));
        if (!s->chain_at[k] || !s->chains[k])
            goto done;
        nchains[k] = bn_chain_plan(stages[k], band_bytes, s->chain_at[k], s->chains[k]);
        for (int c = 0; c < nchains[k]; c++) {
            const bn_chain *ch = &s->chains[k][c];
            BN_LOGD("engine", "%s: %s chain %s .. %s: %d convolutions in bands of %d rows", m->fname,
                    k ? "specialist" : "light", stages[k]->layers[ch->start].name,
                    stages[k]->layers[ch->end].name, ch->n, ch->band);
        }
    }
    for (int i = 0; i < maxn; i++)
        owner[i] = -1;
    int nb1 = plan_stage(&m->light, light_buf, buf_size, 0, last_use, owner, s->chains[0], nchains[0]);
    for (int i = 0; i < maxn; i++)
        owner[i] = -1;
    int nb2 = plan_stage(&m->spec, spec_buf, buf_size, nb1, last_use, owner, s->chains[1], nchains[1]);
    int nbuf = nb1 > nb2 ? nb1 : nb2;

    size_t col = 0, se = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < stages[k]->n; i++) {
            const bn_layer *ly = &stages[k]->layers[i];
            if (ly->op == BN_OP_CONV) {
                size_t c = bn_conv2d_scratch(&ly->g);
                col = c > col ? c : col;
            } else if (ly->op == BN_OP_SE) {
                size_t t = (size_t)ly->g.c + (size_t)ly->squeeze;
                se = t > se ? t : se;
            }
        }
    size_t win = 0; /* the largest chain window: pool parts 1.. each have one */
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < nchains[k]; c++)
            win = s->chains[k][c].window > win ? s->chains[k][c].window : win;
    const int L = info->num_synth_layers, N = info->num_bases, nc = info->num_classes;
    /* float layout of the block */
    size_t off = 0, o_buf[BN_MAX_LAYERS];
    for (int b = 0; b < nbuf; b++) {
        o_buf[b] = off;
        off += round_up(buf_size[b]);
    }
    size_t o_lin = off;
    off += round_up((size_t)info->channels * info->light_height * info->light_width);
    size_t o_sin = off;
    off += round_up((size_t)info->channels * info->height * info->width);
    size_t o_col = off;
    off += round_up(col) * (size_t)threads;
    size_t o_win = off;
    off += round_up(win) * (size_t)(threads - 1);
    size_t o_norm = off;
    off += 2 * round_up((size_t)info->width * info->channels);
    size_t o_prep = off;
    off += round_up(bn_prep_scratch(info->width, info->channels, info->light_width));
    size_t o_se = off;
    off += round_up(se);
    /* Synthesized weights: with synthesis reuse each layer keeps its own buffer across
     * frames, and so it does with more than one thread (a worker synthesizes the layers
     * ahead of the convolutions, bn_run_specialist). Otherwise nothing outlives the layer's
     * run, so every layer is synthesized into one scratch (the layers of a chain side by
     * side) just before it runs, and the weights are written to and read from the cache
     * instead of memory. */
    const int shared = !(params.synth_reuse > 0) && threads == 1;
    size_t synth_floats = 0;
    if (!(synth_off = calloc(L > 0 ? (size_t)L : 1, sizeof(size_t))))
        goto done;
    for (int l = 0; l < L; l++) {
        size_t need = round_up(m->spec.layers[m->synth_layer[l]].wstore);
        synth_off[l] = shared ? 0 : synth_floats;
        synth_floats = shared ? (need > synth_floats ? need : synth_floats) : synth_floats + need;
    }
    for (int c = 0; shared && c < nchains[1]; c++) {
        size_t at = 0;
        for (int i = s->chains[1][c].start; i <= s->chains[1][c].end; i++) {
            const bn_layer *ly = &m->spec.layers[i];
            if (!ly->synth)
                continue;
            synth_off[ly->synth_index] = at;
            at += round_up(ly->wstore);
        }
        synth_floats = at > synth_floats ? at : synth_floats;
    }
    size_t o_syn = off;
    off += synth_floats;
    size_t o_alpha = off;
    off += round_up((size_t)L * N);
    size_t o_alast = off;
    off += round_up((size_t)L * N);
    size_t o_lp = off;
    off += round_up((size_t)nc);
    size_t o_ll = off; /* the light logits, kept: the specialist may reuse their buffer */
    off += round_up((size_t)nc);
    size_t o_sp = off;
    off += round_up((size_t)nc);
    size_t o_ptr = off; /* pointer arrays after the floats */
    size_t nptr = (size_t)m->light.n + (size_t)m->spec.n + (size_t)L;
    size_t o_prof = off * sizeof(float) + nptr * sizeof(float *);
    size_t bytes = o_prof + ((size_t)m->light.n + (size_t)m->spec.n) * sizeof(double);
    s->block = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!s->block) {
        bn_set_err(err, errlen, "%s: cannot allocate %zu bytes for a session", m->fname, bytes);
        goto done;
    }
    float *f = s->block;
    float **ptrs = (float **)(void *)(f + o_ptr);
    s->m = m;
    s->light_out = ptrs;
    s->spec_out = ptrs + m->light.n;
    s->synth_w = ptrs + m->light.n + m->spec.n;
    for (int i = 0; i < m->light.n; i++)
        s->light_out[i] = f + o_buf[light_buf[i]];
    for (int i = 0; i < m->spec.n; i++)
        s->spec_out[i] = f + o_buf[spec_buf[i]];
    s->light_in = f + o_lin;
    s->spec_in = f + o_sin;
    s->col = f + o_col;
    s->col_floats = round_up(col);
    s->win = f + o_win;
    s->win_floats = round_up(win);
    s->mean_row = f + o_norm;
    s->std_row = f + o_norm + round_up((size_t)info->width * info->channels);
    s->se_tmp = f + o_se;
    s->prep_tmp = f + o_prep;
    /* zeroed below with the whole block: the padding lanes of packed panels, which
     * synthesis does not write (bn_synthesize_p32), start at zero */
    for (int l = 0; l < L; l++)
        s->synth_w[l] = f + o_syn + synth_off[l];
    s->synth_shared = shared;
    s->prof[0] = (double *)(void *)((char *)s->block + o_prof);
    s->prof[1] = s->prof[0] + m->light.n;
    s->alpha = f + o_alpha;
    s->light_probs = f + o_lp;
    s->light_logits = f + o_ll;
    s->spec_probs = f + o_sp;
    /* touch everything once so that the first classify does not page-fault */
    memset(s->block, 0, off * sizeof(float));
    for (int x = 0; x < info->width * info->channels; x++) {
        s->mean_row[x] = m->mean[x % info->channels];
        s->std_row[x] = m->std[x % info->channels];
    }
    memset(s->prof[0], 0, bytes - o_prof);
    s->alpha_last = f + o_alast;
    const char *pm = getenv("BN_PAR_MIN_MADDS");
    s->par_min_madds = pm && *pm ? strtoull(pm, NULL, 10) : PAR_MIN_MADDS;
    s->reuse_tol = params.synth_reuse > 0 ? params.synth_reuse : 0;
    if (!(s->synth_pending = calloc(L > 0 ? (size_t)L : 1, 1))) {
        st = BN_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < (size_t)L * N; i++)
        s->alpha_last[i] = NAN;
    if (threads > 1 && !(s->pool = bn_pool_new(threads)))
        BN_LOGW("engine", "%s: cannot start %d engine threads, running on one", m->fname, threads);
    s->bytes = bytes + sizeof *s + (size_t)L;
    *out = s;
    s = NULL;
    st = BN_OK;
done:
    if (st == BN_ERR_NOMEM && err && !err[0])
        bn_set_err(err, errlen, "%s: out of memory creating a session", m->fname);
    free(light_buf);
    free(spec_buf);
    free(last_use);
    free(owner);
    free(buf_size);
    free(synth_off);
    bn_session_free(s);
    return st;
}

void bn_session_free(bn_session *s)
{
    if (!s)
        return;
    bn_pool_free(s->pool);
    free(s->block);
    free(s->synth_pending);
    for (int k = 0; k < 2; k++) {
        free(s->chain_at[k]);
        free(s->chains[k]);
    }
    free(s);
}

size_t bn_session_bytes(const bn_session *s) { return s ? s->bytes : 0; }

/* One layer split across the pool: output rows (pointwise: pixels in micro-kernel multiples,
 * depthwise: output image rows) are cut into equal parts. */
typedef struct {
    const bn_layer *ly;
    const float *x, *w, *res;
    bn_act act;
    float *y;
} par_layer;

static int split_at(int n, int unit, int part, int parts)
{
    int units = (n + unit - 1) / unit;
    int at = (int)((long)units * part / parts) * unit;
    return at < n ? at : n;
}

static void par_pointwise(void *ctx, int part, int parts)
{
    const par_layer *j = ctx;
    const bn_conv_shape *g = &j->ly->g;
    int m = g->h * g->w, m0 = split_at(m, 24, part, parts), m1 = split_at(m, 24, part + 1, parts);
    if (m0 < m1)
        bn_kern()->pointwise(m0, m1, g->c, g->oc, j->x, j->w, j->ly->bias, j->res, j->act, j->y);
}

/* Any other convolution (thin stem, im2col + GEMM, depthwise) split by output rows: a part
 * runs the layer on the sub-image its rows read, whose top padding is what is left of the
 * real one, with its own scratch. */
typedef struct {
    const bn_layer *ly;
    const float *x, *w;
    float *y;
    const bn_session *s;
} par_conv;

/* Convolutions whose output rows come out the same whichever rows a call computes: the
 * engine's own kernels (depthwise, the thin stem kernel, im2col + the packed GEMM), not
 * OpenBLAS's sgemm (the generic table's thin and im2col path), whose sums can depend on
 * the number of rows. */
static int rows_split_exact(const bn_layer *ly)
{
    return bn_conv_is_depthwise(&ly->g) || ly->gemm || (bn_conv_is_thin(&ly->g) && bn_kern_isa() != BN_ISA_GENERIC);
}

static void par_conv_rows(void *ctx, int part, int parts)
{
    const par_conv *j = ctx;
    const bn_layer *ly = j->ly;
    const bn_conv_shape *g = &ly->g;
    const int y0 = split_at(g->oh, 1, part, parts), y1 = split_at(g->oh, 1, part + 1, parts);
    if (y0 >= y1)
        return;
    if (bn_conv_is_depthwise(g)) {
        bn_kern()->dwconv(g, j->x, j->w, ly->bias, ly->act, j->y, y0, y1);
        return;
    }
    const int lo = y0 * g->sh - g->ph > 0 ? y0 * g->sh - g->ph : 0;
    bn_conv_shape sub = *g;
    sub.h = g->h - lo;
    sub.ph = g->ph + lo - y0 * g->sh;
    sub.oh = y1 - y0;
    const float *x = j->x + (size_t)lo * g->w * g->c;
    float *y = j->y + (size_t)y0 * g->ow * g->oc, *col = j->s->col + (size_t)part * j->s->col_floats;
    if (ly->gemm)
        bn_kern()->conv_gemm(&sub, x, j->w, ly->bias, ly->act, y, col);
    else
        bn_conv2d(&sub, x, j->w, ly->bias, ly->act, y, col);
}

/* A windowed chain split by output rows, each part in a window of its own. */
typedef struct {
    const bn_session *s;
    const bn_stage_def *sd;
    const bn_chain *c;
    const float *input;
    float *const *outs;
    double *prof;
} par_chain;

static void par_chain_rows(void *ctx, int part, int parts)
{
    const par_chain *j = ctx;
    const int oh = j->sd->layers[j->c->conv[1]].g.oh;
    const int r0 = split_at(oh, 1, part, parts), r1 = split_at(oh, 1, part + 1, parts);
    float *win = part ? j->s->win + (size_t)(part - 1) * j->s->win_floats : j->outs[j->c->conv[0]];
    if (r0 < r1) /* the profile is part 0's time */
        bn_chain_run_rows(j->sd, j->c, j->input, j->outs, j->s->synth_w, part ? NULL : j->prof, r0, r1, win);
}

/* Synthesizes one marked layer's weights from the session's alpha and unmarks it. */
static void synth_layer(bn_session *s, const bn_layer *ly)
{
    const int N = s->m->info.num_bases, l = ly->synth_index;
    const float *a = s->alpha + (size_t)l * N;
    if (ly->p32)
        bn_synthesize_p32(ly->bases, ly->bases16, N, ly->g.oc, bn_layer_gemm_k(ly), a, s->synth_w[l]);
    else if (ly->bases16)
        bn_synthesize_f16(ly->bases16, N, ly->wstore, a, s->synth_w[l]);
    else
        bn_synthesize(ly->bases, N, ly->wstore, a, s->synth_w[l]);
    if (ly->p32 && s->synth_shared) /* keeps the padding lanes zero, as packing made them */
        bn_p32_zero_padding(ly->g.oc, bn_layer_gemm_k(ly), s->synth_w[l]);
    s->synth_pending[l] = 0;
}

/* Pipelined (bn_run_specialist): waits until the worker has synthesized layers 0..to;
 * the time waited counts as synthesis. Returns 1 when it waited. */
static int synth_wait(bn_session *s, int to)
{
    if (atomic_load_explicit(&s->synth_upto, memory_order_acquire) > to)
        return 0;
    const uint64_t t0 = bn_now_ns();
    for (int i = 0; atomic_load_explicit(&s->synth_upto, memory_order_acquire) <= to; i++) {
        bn_cpu_relax();
        if ((i & 1023) == 1023)
            sched_yield(); /* the worker was descheduled: let it run */
    }
    s->ns_synth += bn_now_ns() - t0;
    return 1;
}

/* Synthesizes the layers from..to of the specialist that bn_run_specialist marked, just
 * before they run: their weights are then still in the cache when the convolution reads
 * them, instead of coming back from memory after a synthesis of every layer up front.
 * Adds the time to s->ns_synth; returns how many layers it synthesized (pipelined: waits
 * for the worker instead, synth_wait). */
static int synth_due(bn_session *s, int from, int to)
{
    if (s->pipelined)
        return synth_wait(s, to);
    int done = 0;
    const bn_model *m = s->m;
    for (int i = from; i <= to; i++) {
        const bn_layer *ly = &m->spec.layers[i];
        if (!ly->synth || !s->synth_pending[ly->synth_index])
            continue;
        uint64_t t0 = bn_now_ns();
        synth_layer(s, ly);
        s->ns_synth += bn_now_ns() - t0;
        done++;
    }
    return done;
}

static void run_stage(bn_session *s, int stage, const float *input, float **outs, double *prof)
{
    const bn_stage_def *sd = stage ? &s->m->spec : &s->m->light;
    const int threads = bn_pool_threads(s->pool);
    uint64_t t_prev = s->profiling ? bn_now_ns() : 0;
    for (int i = 0; i < sd->n; i++) {
        const bn_layer *ly = &sd->layers[i];
        const int ci = s->chain_at[stage][i];
        /* the specialist's weights for this layer (or chain), outside its profile time */
        if (stage && synth_due(s, i, ci >= 0 ? s->chains[stage][ci].end : i) && s->profiling)
            t_prev = bn_now_ns();
        /* while a worker synthesizes ahead, the layers run on this thread; once it is done,
         * split across the pool */
        if (s->pipelined && !bn_pool_busy(s->pool))
            s->pipelined = 0;
        const int par = s->pipelined ? 1 : threads;
        if (ci >= 0) { /* the chain band by band (chain.h); windowed ones split by rows */
            const bn_chain *c = &s->chains[stage][ci];
            if (par > 1 && c->window) {
                par_chain j = {s, sd, c, input, outs, s->profiling ? prof : NULL};
                bn_pool_run(s->pool, par, par_chain_rows, &j);
            } else
                bn_chain_run(sd, c, input, outs, s->synth_w, s->profiling ? prof : NULL);
            i = c->end;
            if (s->profiling)
                t_prev = bn_now_ns();
            continue;
        }
        const float *x = ly->in0 < 0 ? input : outs[ly->in0];
        float *y = outs[i];
        const bn_conv_shape *g = &ly->g;
        const float *w = ly->synth ? s->synth_w[ly->synth_index] : ly->weight;
        switch (ly->op) {
        case BN_OP_CONV:
            if (ly->pointwise) {
                par_layer j = {ly, x, w, !ly->fuse_add ? NULL : ly->fuse_res < 0 ? input : outs[ly->fuse_res],
                               ly->fuse_add ? ly->fuse_act : ly->act, y};
                bn_pool_run(s->pool, ly->madds >= s->par_min_madds ? par : 1, par_pointwise, &j);
            } else if (par > 1 && ly->madds >= s->par_min_madds && rows_split_exact(ly)) {
                par_conv j = {ly, x, w, y, s};
                bn_pool_run(s->pool, par, par_conv_rows, &j);
            } else if (ly->gemm) {
                bn_kern()->conv_gemm(g, x, w, ly->bias, ly->act, y, s->col);
            } else
                bn_conv2d(g, x, w, ly->bias, ly->act, y, s->col);
            break;
        case BN_OP_LINEAR:
            bn_kern()->gemv(x, g->c * g->h * g->w, g->oc, w, ly->bias, ly->act, y);
            break;
        case BN_OP_ADD:
            if (ly->fuse_add) /* done in the conv's epilogue; y is the conv's output */
                break;
            bn_add(x, ly->in1 < 0 ? input : outs[ly->in1], layer_out_floats(ly), ly->act, y);
            break;
        case BN_OP_SE:
            bn_se(x, g->h * g->w, g->c, ly->squeeze, ly->w1, ly->b1, ly->w2, ly->b2, ly->act, ly->gate, y,
                  s->se_tmp);
            break;
        case BN_OP_AVGPOOL:
            bn_avgpool(g, x, y);
            break;
        case BN_OP_MAXPOOL:
            bn_maxpool(g, x, y);
            break;
        case BN_OP_GAP:
            bn_gap(x, g->h * g->w, g->c, y);
            break;
        case BN_OP_ACT:
            memcpy(y, x, layer_out_floats(ly) * sizeof(float));
            bn_bias_act(y, 1, (int)layer_out_floats(ly), NULL, ly->act);
            break;
        default:
            break;
        }
        if (s->profiling) {
            uint64_t t = bn_now_ns();
            prof[i] += (double)(t - t_prev);
            t_prev = t;
        }
    }
}

/* ||sum (a - last)_i B_i|| <= tol * ||sum last_i B_i||, exactly, from the Gram matrix;
 * false while last is NaN (not synthesized yet). */
static int synth_close(const double *gram, int n, const float *a, const float *last, float tol)
{
    double dd = 0, ww = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double g = gram[i * n + j];
            dd += ((double)a[i] - last[i]) * ((double)a[j] - last[j]) * g;
            ww += (double)last[i] * last[j] * g;
        }
    return dd <= (double)tol * tol * ww;
}

static int argmax(const float *p, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[best])
            best = i;
    return best;
}

/* Derives the light input from the 8-bit image (the preprocess kernel, cpu.h). With avgpool
 * the full-resolution normalized input is made only if the specialist runs (most frames
 * exit at the light stage): the pooled values are the same either way. Bilinear reads the
 * normalized rows, so it makes both at once. */
static void preprocess(bn_session *s, const uint8_t *image, size_t stride)
{
    const bn_model *m = s->m;
    const bn_model_info *info = &m->info;
    const int pool = m->resize == BN_RESIZE_AVGPOOL;
    bn_kern()->preprocess(image, stride, info->height, info->width, info->channels, s->mean_row,
                          s->std_row, pool ? NULL : s->spec_in, pool ? m->pool_k : 0,
                          info->light_height, info->light_width, s->light_in, s->prep_tmp);
    s->image = image;
    s->image_stride = stride;
    s->spec_ready = !pool;
}

static void preprocess_specialist(bn_session *s)
{
    const bn_model_info *info = &s->m->info;
    if (s->spec_ready)
        return;
    bn_kern()->preprocess(s->image, s->image_stride, info->height, info->width, info->channels,
                          s->mean_row, s->std_row, s->spec_in, 0, 0, 0, NULL, s->prep_tmp);
    s->spec_ready = 1;
}

bn_status bn_run_light(bn_session *s, const uint8_t *image, size_t stride, bn_result *res)
{
    if (!s || !image || !res)
        return BN_ERR_INVALID_ARG;
    const bn_model *m = s->m;
    const bn_model_info *info = &m->info;
    if (stride < (size_t)info->width * info->channels)
        return BN_ERR_INVALID_ARG;
    uint64_t t0 = bn_now_ns();
    /* the workers stay awake through the stage (one that slept since the last frame wakes
     * during the preprocessing, not at the first split layer) */
    bn_pool_hold(s->pool, 1);
    preprocess(s, image, stride);
    run_stage(s, 0, s->light_in, s->light_out, s->prof[0]);
    bn_pool_hold(s->pool, 0);
    const int nc = info->num_classes, L = info->num_synth_layers, N = info->num_bases;
    memcpy(s->light_logits, s->light_out[m->light.logits], sizeof(float) * (size_t)nc);
    bn_softmax(s->light_logits, nc, s->light_probs);
    const float *coef = s->light_out[m->light.coeffs];
    for (int l = 0; l < L; l++)
        bn_softmax(coef + (size_t)l * N, N, s->alpha + (size_t)l * N);
    memset(res, 0, sizeof *res);
    res->light_class = res->class_id = argmax(s->light_probs, nc);
    res->light_score = res->score = s->light_probs[res->class_id];
    res->stage = BN_STAGE_LIGHT;
    res->probs = s->light_probs;
    res->alpha = s->alpha;
    res->madds = info->madds_light;
    res->ns_light = bn_now_ns() - t0;
    s->light_done = 1;
    return BN_OK;
}

/* Synthesis ahead (bn_run_specialist with threads; bn_pool_start runs it as part 1 of 2 on a
 * worker): synthesizes the pending layers in layer order, publishing how far it got. */
static void synth_ahead(void *ctx, int part, int parts)
{
    (void)part, (void)parts;
    bn_session *s = ctx;
    const bn_stage_def *sd = &s->m->spec;
    for (int i = 0; i < sd->n; i++) {
        const bn_layer *ly = &sd->layers[i];
        if (ly->synth && s->synth_pending[ly->synth_index])
            synth_layer(s, ly);
        atomic_store_explicit(&s->synth_upto, i + 1, memory_order_release);
    }
}

bn_status bn_run_specialist(bn_session *s, bn_result *res)
{
    if (!s || !res || !s->light_done)
        return BN_ERR_INVALID_ARG;
    const bn_model *m = s->m;
    const bn_model_info *info = &m->info;
    const int N = info->num_bases;
    uint64_t t0 = bn_now_ns();
    bn_pool_hold(s->pool, 1);
    res->synth_layers = info->num_synth_layers;
    res->synth_reused = 0;
    /* which layers need new weights; run_stage synthesizes each just before it runs */
    for (int l = 0; l < info->num_synth_layers; l++) {
        const bn_layer *ly = &m->spec.layers[m->synth_layer[l]];
        const float *a = s->alpha + (size_t)l * N;
        float *last = s->alpha_last + (size_t)l * N;
        if (s->reuse_tol > 0 && synth_close(ly->gram, N, a, last, s->reuse_tol)) {
            res->synth_reused++;
            s->synth_pending[l] = 0;
            continue;
        }
        memcpy(last, a, sizeof(float) * (size_t)N);
        s->synth_pending[l] = 1;
    }
    s->ns_synth = bn_now_ns() - t0;
    if (res->synth_reused < info->num_synth_layers) {
        /* with threads: a worker synthesizes the layers in order while this thread runs the
         * convolutions, each waiting only for its own layer's weights; once the worker is
         * done the remaining layers are split across the pool. Synthesis streams the bases
         * from memory and gains little from a second thread; the convolutions do. */
        atomic_store_explicit(&s->synth_upto, 0, memory_order_relaxed);
        s->pipelined = bn_pool_start(s->pool, 2, synth_ahead, s);
    }
    preprocess_specialist(s);
    run_stage(s, 1, s->spec_in, s->spec_out, s->prof[1]);
    if (s->pipelined) {
        bn_pool_wait(s->pool);
        s->pipelined = 0;
    }
    bn_pool_hold(s->pool, 0);
    bn_softmax(s->spec_out[m->spec.logits], info->num_classes, s->spec_probs);
    res->class_id = argmax(s->spec_probs, info->num_classes);
    res->score = s->spec_probs[res->class_id];
    res->stage = BN_STAGE_SPECIALIST;
    res->probs = s->spec_probs;
    uint64_t total = bn_now_ns() - t0;
    res->ns_synth = s->ns_synth;
    res->ns_specialist = total > s->ns_synth ? total - s->ns_synth : 0;
    res->madds = info->madds_light + info->madds_synth + info->madds_specialist;
    return BN_OK;
}

bn_status bn_classify(bn_session *s, const uint8_t *image, size_t stride, float threshold, bn_result *res)
{
    bn_status st = bn_run_light(s, image, stride, res);
    if (st != BN_OK)
        return st;
    if (res->light_score < threshold)
        st = bn_run_specialist(s, res);
    return st;
}

/* Logits of the last run (tests and tools): the light stage's, or the specialist's. */
const float *bn_session_logits(const bn_session *s, bn_stage stage)
{
    if (!s)
        return NULL;
    if (stage == BN_STAGE_LIGHT)
        return s->light_logits;
    return s->spec_out[s->m->spec.logits];
}

void bn_session_set_profiling(bn_session *s, int on)
{
    if (!s)
        return;
    s->profiling = on;
    memset(s->prof[0], 0, sizeof(double) * (size_t)(s->m->light.n + s->m->spec.n));
}

int bn_session_chains(const bn_session *s, bn_stage stage)
{
    return s ? s->nchains[stage == BN_STAGE_LIGHT ? 0 : 1] : 0;
}

const double *bn_session_profile(const bn_session *s, bn_stage stage)
{
    return s ? s->prof[stage == BN_STAGE_LIGHT ? 0 : 1] : NULL;
}
