/* Row-banded chains of pointwise and depthwise convolutions (chain.h). */
#include "chain.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "engine_internal.h"

static int chainable(const bn_layer *ly)
{
    return ly->op == BN_OP_CONV && (ly->pointwise || bn_conv_is_depthwise(&ly->g));
}

static int pos_of(const bn_chain *c, int layer)
{
    for (int p = 0; p < c->n; p++)
        if (c->conv[p] == layer)
            return p;
    return -1;
}

/* The layer a later layer reads as `layer`'s output: a fused add is its conv's output. */
static int producer(const bn_stage_def *sd, int layer)
{
    if (layer >= 0 && sd->layers[layer].op == BN_OP_ADD && sd->layers[layer].fuse_add)
        return layer - 1;
    return layer;
}

/* Bytes of all the chain's layers' output rows that one output row of its last layer needs. */
static size_t bytes_per_band_row(const bn_stage_def *sd, const bn_chain *c)
{
    size_t bytes = 0, rows = 1; /* rows of layer p per output row of the last one */
    for (int p = c->n - 1; p >= 0; p--) {
        const bn_conv_shape *g = &sd->layers[c->conv[p]].g;
        bytes += rows * (size_t)g->ow * (size_t)g->oc * sizeof(float);
        rows *= (size_t)g->sh;
    }
    return bytes;
}

/* Banding pays where a tensor leaves the core's cache between the layer that writes it and
 * the one that reads it (the early high-resolution expansions) and the weights, which every
 * band reads again, are small next to it. Measured (docs/engine.md): tensors that fit in L2
 * gain nothing and the shorter kernel calls cost more than the cache saves; longer chains
 * (expand -> depthwise -> project, across blocks) were slower for the same reason. */
#define CHAIN_MIN_BYTES (1024u * 1024u)
static int worth_it(const bn_stage_def *sd, const bn_chain *c)
{
    size_t inter = 0, wbytes = 0;
    for (int p = 0; p < c->n; p++) {
        const bn_layer *ly = &sd->layers[c->conv[p]];
        const bn_conv_shape *g = &ly->g;
        if (p < c->n - 1)
            inter += (size_t)g->oh * g->ow * g->oc * sizeof(float);
        wbytes += (size_t)g->oc * g->kh * g->kw * (size_t)(g->c / g->groups) * sizeof(float);
    }
    const int last_oh = sd->layers[c->conv[c->n - 1]].g.oh;
    size_t bands = (size_t)(last_oh + c->band - 1) / (size_t)c->band;
    const char *mk = getenv("BN_CHAIN_MIN_KB"); /* tests: 0 chains every pair */
    if (mk && *mk)
        return inter >= (size_t)strtoul(mk, NULL, 10) * 1024u;
    return inter >= CHAIN_MIN_BYTES && wbytes * bands * 4 <= inter;
}

/* 1 when layer `reader` is the only reader of layer i's output. */
static int read_only_by(const bn_stage_def *sd, int i, int reader)
{
    if (i == sd->logits || i == sd->coeffs)
        return 0;
    for (int j = 0; j < sd->n; j++) {
        const bn_layer *ly = &sd->layers[j];
        if (j != reader && (ly->in0 == i || ly->in1 == i || (ly->fuse_add && ly->fuse_res == i)))
            return 0;
    }
    return 1;
}

size_t bn_chain_window(const bn_chain *chains, int nchains, int i)
{
    for (int k = 0; k < nchains; k++)
        if (chains[k].window && chains[k].conv[0] == i)
            return chains[k].window;
    return 0;
}

size_t bn_chain_band_bytes(void)
{
    const char *on = getenv("BN_CHAIN");
    if (on && on[0] == '0')
        return 0;
    const char *kb = getenv("BN_BAND_KB");
    if (kb && *kb) {
        long v = strtol(kb, NULL, 10);
        return v > 0 ? (size_t)v * 1024u : 0;
    }
    return BN_BAND_BYTES;
}

int bn_chain_plan(const bn_stage_def *sd, size_t band_bytes, int *chain_at, bn_chain *chains)
{
    for (int i = 0; i < sd->n; i++)
        chain_at[i] = -1;
    if (!band_bytes)
        return 0;
    int nc = 0;
    for (int i = 0; i + 1 < sd->n; i++) {
        const bn_layer *pw = &sd->layers[i], *dw = &sd->layers[i + 1];
        if (!(chainable(pw) && pw->pointwise && chainable(dw) && !dw->pointwise && dw->in0 == i))
            continue;
        bn_chain c = {.start = i, .end = i + 1, .n = 2, .conv = {i, i + 1}};
        const int last_oh = dw->g.oh;
        size_t per_row = bytes_per_band_row(sd, &c);
        size_t band = per_row ? band_bytes / per_row : (size_t)last_oh;
        c.band = band < 1 ? 1 : band > (size_t)last_oh ? last_oh : (int)band;
        if (c.band >= last_oh || !worth_it(sd, &c))
            continue;
        if (read_only_by(sd, i, i + 1) && !pw->fuse_add) {
            const bn_conv_shape *g = &dw->g;
            const size_t rows = (size_t)c.band * (size_t)g->sh + (size_t)g->kh;
            c.window = rows * (size_t)g->w * (size_t)g->c;
        }
        chain_at[i] = nc;
        chains[nc++] = c;
        i = c.end;
    }
    return nc;
}

void bn_chain_liveness(const bn_stage_def *sd, const bn_chain *chains, int nchains, int *last_use)
{
    for (int k = 0; k < nchains; k++) {
        const bn_chain *c = &chains[k];
        for (int p = 0; p < c->n; p++) {
            const bn_layer *ly = &sd->layers[c->conv[p]];
            if (ly->in0 >= 0 && last_use[ly->in0] < c->end)
                last_use[ly->in0] = c->end;
            if (ly->fuse_add && ly->fuse_res >= 0 && last_use[ly->fuse_res] < c->end)
                last_use[ly->fuse_res] = c->end;
        }
    }
}

/* Rows [0, need) of the input of depthwise layer g that its output rows [0, rows) read. */
static int dw_input_rows(const bn_conv_shape *g, int rows)
{
    int hi = (rows - 1) * g->sh - g->ph + g->kh;
    return hi < 0 ? 0 : hi > g->h ? g->h : hi;
}

/* A pair whose intermediate lives in a window: win[0] holds the expansion's output row lo.
 * Each band's depthwise rows [r0, r1) read input rows [lo, hi); the rows [lo, hi_prev) the
 * previous band computed move to the window's start, the pointwise fills [hi_prev, hi), and
 * the depthwise runs on the window as an image of hi - lo rows whose top padding is what is
 * left of the real one (ph + lo - r0 * sh: ph at the top of the image, else 0). */
void bn_chain_run_rows(const bn_stage_def *sd, const bn_chain *c, const float *input, float *const *outs,
                       float *const *synth_w, double *prof, int row0, int row1, float *win)
{
    const bn_kern_ops *k = bn_kern();
    const bn_layer *pw = &sd->layers[c->conv[0]], *dw = &sd->layers[c->conv[1]];
    const bn_conv_shape *g = &dw->g;
    const float *x = pw->in0 < 0 ? input : outs[pw->in0];
    const float *wp = pw->synth ? synth_w[pw->synth_index] : pw->weight;
    const float *wd = dw->synth ? synth_w[dw->synth_index] : dw->weight;
    float *y = outs[c->conv[1]];
    const size_t row = (size_t)g->w * (size_t)g->c; /* floats of one intermediate row */
    int lo = 0, hi = 0;
    for (int r0 = row0; r0 < row1; r0 += c->band) {
        const int r1 = r0 + c->band < row1 ? r0 + c->band : row1;
        const int nlo = r0 * g->sh - g->ph > 0 ? r0 * g->sh - g->ph : 0;
        int nhi = (r1 - 1) * g->sh - g->ph + g->kh;
        nhi = nhi > g->h ? g->h : nhi;
        uint64_t t0 = prof ? bn_now_ns() : 0;
        if (nlo < hi && nlo > lo)
            memmove(win, win + (size_t)(nlo - lo) * row, sizeof(float) * (size_t)(hi - nlo) * row);
        if (hi < nlo)
            hi = nlo;
        lo = nlo;
        if (nhi > hi)
            k->pointwise(0, (nhi - hi) * g->w, pw->g.c, pw->g.oc, x + (size_t)hi * g->w * pw->g.c, wp, pw->bias,
                         NULL, pw->act, win + (size_t)(hi - lo) * row);
        hi = nhi;
        if (prof) {
            const uint64_t t1 = bn_now_ns();
            prof[c->conv[0]] += (double)(t1 - t0);
            t0 = t1;
        }
        bn_conv_shape sub = *g;
        sub.h = hi - lo;
        sub.ph = g->ph + lo - r0 * g->sh;
        sub.oh = r1 - r0;
        k->dwconv(&sub, win, wd, dw->bias, dw->act, y + (size_t)r0 * g->ow * g->oc, 0, r1 - r0);
        if (prof)
            prof[c->conv[1]] += (double)(bn_now_ns() - t0);
    }
}

void bn_chain_run(const bn_stage_def *sd, const bn_chain *c, const float *input, float *const *outs,
                  float *const *synth_w, double *prof)
{
    if (c->window) {
        bn_chain_run_rows(sd, c, input, outs, synth_w, prof, 0, sd->layers[c->conv[1]].g.oh, outs[c->conv[0]]);
        return;
    }
    const bn_kern_ops *k = bn_kern();
    int done[BN_CHAIN_MAX] = {0}, need[BN_CHAIN_MAX];
    const int last_rows = sd->layers[c->conv[c->n - 1]].g.oh;
    for (int r1 = c->band; ; r1 += c->band) {
        if (r1 > last_rows)
            r1 = last_rows;
        /* pull: the rows each layer must have for the last one's rows [0, r1) */
        for (int p = 0; p < c->n; p++)
            need[p] = 0;
        need[c->n - 1] = r1;
        for (int p = c->n - 1; p > 0; p--) {
            const bn_layer *ly = &sd->layers[c->conv[p]];
            int in_rows = ly->pointwise ? need[p] : dw_input_rows(&ly->g, need[p]);
            int q = pos_of(c, producer(sd, ly->in0));
            if (q >= 0 && need[q] < in_rows)
                need[q] = in_rows;
            if (ly->fuse_add && (q = pos_of(c, producer(sd, ly->fuse_res))) >= 0 && need[q] < need[p])
                need[q] = need[p];
        }
        for (int p = 0; p < c->n; p++) {
            if (need[p] <= done[p])
                continue;
            const int li = c->conv[p];
            const bn_layer *ly = &sd->layers[li];
            const bn_conv_shape *g = &ly->g;
            const float *x = ly->in0 < 0 ? input : outs[ly->in0];
            const float *w = ly->synth ? synth_w[ly->synth_index] : ly->weight;
            uint64_t t0 = prof ? bn_now_ns() : 0;
            if (ly->pointwise) {
                const float *res = !ly->fuse_add ? NULL : ly->fuse_res < 0 ? input : outs[ly->fuse_res];
                k->pointwise(done[p] * g->ow, need[p] * g->ow, g->c, g->oc, x, w, ly->bias, res,
                             ly->fuse_add ? ly->fuse_act : ly->act, outs[li]);
            } else
                k->dwconv(g, x, w, ly->bias, ly->act, outs[li], done[p], need[p]);
            if (prof)
                prof[li] += (double)(bn_now_ns() - t0);
            done[p] = need[p];
        }
        if (r1 == last_rows)
            break;
    }
}
