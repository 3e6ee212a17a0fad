/* A .bnm's tensors: each checked against the architecture, then the weights copied into the
 * model's own memory, repacked from PyTorch's layout into the engine's HWC kernels',
 * and the passes over the bound weights: basis Gram matrices, residual-add fusion. */
#include "model_load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tensors ---- */

bn_status bn_load_want_tensor(loader *L, const char *lname, const char *suffix, int ndim,
                             const int64_t *shape, const st_tensor **out)
{
    char tname[512];
    snprintf(tname, sizeof tname, "%s.%s", lname, suffix);
    int idx = st_find_index(&L->m->st, tname);
    if (idx < 0)
        return bn_load_fail(L, BN_ERR_FORMAT, "tensor '%s' is missing (needed by layer '%s')", tname, lname);
    const st_tensor *t = &L->m->st.tensors[idx];
    if (t->dtype == ST_U8)
        return bn_load_fail(L, BN_ERR_UNSUPPORTED, "tensor '%s': dtype U8 is only allowed in golden files", tname);
    if (t->dtype == ST_F16 && strcmp(suffix, "bases") != 0)
        return bn_load_fail(L, BN_ERR_UNSUPPORTED, "tensor '%s': dtype F16 is only supported for '*.bases'", tname);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char a[96], b[96];
        st_shape_str(t->shape, t->ndim, a, sizeof a);
        st_shape_str(shape, ndim, b, sizeof b);
        return bn_load_fail(L, BN_ERR_FORMAT, "tensor '%s': shape %s does not match the architecture's %s",
                            tname, a, b);
    }
    for (size_t i = 0; i < t->count; i++)
        if (!isfinite(st_get_f32(t, i)))
            return bn_load_fail(L, BN_ERR_FORMAT, "tensor '%s': element %zu is NaN or Inf", tname, i);
    L->used[idx] = 1;
    *out = t;
    return BN_OK;
}

typedef enum { PACK_NONE = 0, PACK_CONV, PACK_DW, PACK_P32, PACK_GEMM, PACK_LINEAR_P32, PACK_SE2 } pack_kind;

static void *owned_alloc(bn_model *m, size_t bytes)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 32;
        void **p = realloc(m->owned, sizeof *p * (size_t)cap);
        if (!p)
            return NULL;
        m->owned = p;
        m->cap_owned = cap;
    }
    void *f = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (f)
        m->owned[m->n_owned++] = f;
    return f;
}

/* Destination index of PyTorch-layout element i (within one basis) for the layer's pack. */
static size_t pack_index(pack_kind k, const bn_layer *ly, size_t i)
{
    const bn_conv_shape *g = &ly->g;
    switch (k) {
    case PACK_CONV: { /* (oc, cg, kh, kw) -> (oc, kh, kw, cg) */
        size_t cg = (size_t)(g->c / g->groups), khw = (size_t)g->kh * g->kw;
        size_t x = i % khw, ci = (i / khw) % cg, o = i / (khw * cg);
        return (o * khw + x) * cg + ci;
    }
    case PACK_DW: { /* (c, 1, kh, kw) -> (kh, kw, c) */
        size_t khw = (size_t)g->kh * g->kw;
        return (i % khw) * (size_t)g->c + i / khw;
    }
    case PACK_GEMM: { /* (oc, c, kh, kw) -> panels of 32 output channels of (oc, kh*kw*c) */
        size_t khw = (size_t)g->kh * g->kw, K = khw * (size_t)g->c;
        size_t x = i % khw, ci = (i / khw) % (size_t)g->c, o = i / K;
        return bn_p32_index((int)o, (int)(x * (size_t)g->c + ci), (int)K);
    }
    case PACK_P32: /* (oc, c, 1, 1), or se fc1 (squeeze, c) -> panels of 32 output channels (kernels.h) */
        return bn_p32_index((int)(i / (size_t)g->c), (int)(i % (size_t)g->c), g->c);
    case PACK_LINEAR_P32: { /* (out, c*h*w) -> panels of 32 outputs of (out, h*w*c) */
        size_t in = (size_t)g->c * g->h * g->w, hw = (size_t)g->h * g->w;
        size_t o = i / in, j = i % in, c = j / hw, p = j % hw;
        return bn_p32_index((int)o, (int)(p * (size_t)g->c + c), (int)in);
    }
    case PACK_SE2: /* fc2 (c, squeeze) -> panels of 32 of its c outputs */
        return bn_p32_index((int)(i / (size_t)ly->squeeze), (int)(i % (size_t)ly->squeeze), ly->squeeze);
    default: return i;
    }
}

/* Returns a copy of the tensor's data as float32 in the engine's layout (F16 -> F32,
 * repacked layouts), owned by the model: the file's bytes are not kept after loading. */
static const float *materialize(loader *L, const st_tensor *t, pack_kind k, const bn_layer *ly,
                                size_t per_basis, size_t stored)
{
    size_t n = t->count / per_basis * stored;
    float *dst = owned_alloc(L->m, n * sizeof(float));
    if (!dst)
        return NULL;
    if (t->dtype == ST_F32 && k == PACK_NONE && stored == per_basis) {
        memcpy(dst, t->data, n * sizeof(float));
        return dst;
    }
    if (stored != per_basis)
        memset(dst, 0, n * sizeof(float));
    for (size_t i = 0; i < t->count; i++) {
        size_t b = i / per_basis, j = i % per_basis;
        dst[b * stored + pack_index(k, ly, j)] = st_get_f32(t, i);
    }
    return dst;
}

/* F16 bases stay half precision (synthesis streams half the bytes), repacked. */
static const uint16_t *materialize_f16(loader *L, const st_tensor *t, pack_kind k, const bn_layer *ly,
                                       size_t per_basis, size_t stored)
{
    size_t n = t->count / per_basis * stored;
    uint16_t *dst = owned_alloc(L->m, n * sizeof(uint16_t));
    if (!dst)
        return NULL;
    if (stored != per_basis)
        memset(dst, 0, n * sizeof(uint16_t)); /* +0.0 */
    for (size_t i = 0; i < t->count; i++) {
        size_t b = i / per_basis, j = i % per_basis;
        memcpy(&dst[b * stored + pack_index(k, ly, j)], t->data + 2 * i, 2);
    }
    return dst;
}

static pack_kind layer_pack(const bn_layer *ly)
{
    const bn_conv_shape *g = &ly->g;
    if (ly->op == BN_OP_CONV) {
        if (bn_conv_is_pointwise(g))
            return PACK_P32;
        if (bn_conv_is_gemm(g))
            return PACK_GEMM;
        if (g->kh * g->kw == 1)
            return PACK_NONE;
        if (bn_conv_is_depthwise(g))
            return PACK_DW;
        return g->c / g->groups > 1 ? PACK_CONV : PACK_NONE;
    }
    if (ly->op == BN_OP_LINEAR)
        return PACK_LINEAR_P32;
    return PACK_NONE;
}

/* ---- passes over the bound weights ---- */

/* A pointwise conv without activation whose only consumer is the residual add right after it
 * (the project convolution of an inverted-residual block) takes the add into its epilogue:
 * one pass over the output instead of two. The add's output aliases the conv's (session.c). */
static void fuse_residual_adds(bn_stage_def *sd)
{
    for (int i = 0; i + 1 < sd->n; i++) {
        bn_layer *c = &sd->layers[i], *a = &sd->layers[i + 1];
        if (c->op != BN_OP_CONV || !c->pointwise || c->act != BN_ACT_NONE || a->op != BN_OP_ADD ||
            (a->in0 == i) == (a->in1 == i) || i == sd->logits || i == sd->coeffs)
            continue;
        int consumers = 0;
        for (int j = i + 1; j < sd->n; j++)
            consumers += (sd->layers[j].in0 == i) + (sd->layers[j].in1 == i);
        if (consumers != 1)
            continue;
        c->fuse_add = a->fuse_add = 1;
        c->fuse_res = a->in0 == i ? a->in1 : a->in0;
        c->fuse_act = a->act;
    }
}

/* <B_i, B_j> of a synthesized layer's bases (padding lanes are zero and add nothing):
 * ||sum_i a_i B_i||^2 = a^T G a for synthesis reuse (session.c). The bases are read in
 * chunks of GRAM_CHUNK positions, each converted to float once (F16 bases) and then used
 * for every pair: one pass over the bases instead of one per pair. */
enum { GRAM_CHUNK = 1024 };
static const double *basis_gram(loader *L, const bn_layer *ly, int n)
{
    double *g = owned_alloc(L->m, sizeof(double) * (size_t)n * (size_t)n);
    float *buf = malloc(sizeof(float) * (size_t)n * GRAM_CHUNK);
    if (!g || !buf) {
        free(buf);
        return NULL;
    }
    memset(g, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (size_t p0 = 0; p0 < ly->wstore; p0 += GRAM_CHUNK) {
        size_t len = ly->wstore - p0 < GRAM_CHUNK ? ly->wstore - p0 : GRAM_CHUNK;
        for (int i = 0; i < n; i++) {
            float *row = buf + (size_t)i * GRAM_CHUNK;
            size_t off = (size_t)i * ly->wstore + p0;
            if (ly->bases16)
                for (size_t q = 0; q < len; q++)
                    row[q] = st_half_to_float(ly->bases16[off + q]);
            else
                memcpy(row, ly->bases + off, sizeof(float) * len);
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) {
                const float *a = buf + (size_t)i * GRAM_CHUNK, *b = buf + (size_t)j * GRAM_CHUNK;
                double acc = 0;
                for (size_t q = 0; q < len; q++)
                    acc += (double)a[q] * b[q];
                g[i * n + j] += acc;
            }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            g[j * n + i] = g[i * n + j];
    free(buf);
    return g;
}

bn_status bn_load_materialize_stage(loader *L, bn_stage_def *sd)
{
    char name[512];
    for (int i = 0; i < sd->n; i++) {
        bn_layer *ly = &sd->layers[i];
        const st_tensor *t;
#define TENSOR(suffix) (snprintf(name, sizeof name, "%s.%s", ly->name, suffix), st_find(&L->m->st, name))
        if (ly->op == BN_OP_CONV || ly->op == BN_OP_LINEAR) {
            pack_kind k = layer_pack(ly);
            ly->pointwise = k == PACK_P32;
            ly->gemm = k == PACK_GEMM;
            ly->p32 = k == PACK_P32 || k == PACK_GEMM || k == PACK_LINEAR_P32;
            ly->wstore = ly->p32 ? bn_p32_floats(ly->g.oc, bn_layer_gemm_k(ly)) : ly->wcount;
            t = TENSOR(ly->synth ? "bases" : "weight");
            const void *w;
            if (ly->synth && t->dtype == ST_F16)
                w = ly->bases16 = materialize_f16(L, t, k, ly, ly->wcount, ly->wstore);
            else if (ly->synth)
                w = ly->bases = materialize(L, t, k, ly, ly->wcount, ly->wstore);
            else
                w = ly->weight = materialize(L, t, k, ly, ly->wcount, ly->wstore);
            ly->bias = materialize(L, TENSOR("bias"), PACK_NONE, ly, 1, 1);
            if (!w || !ly->bias)
                return BN_ERR_NOMEM;
            if (ly->synth && !(ly->gram = basis_gram(L, ly, L->m->info.num_bases)))
                return BN_ERR_NOMEM;
        } else if (ly->op == BN_OP_SE) {
            const size_t n1 = (size_t)ly->squeeze * ly->g.c;
            ly->w1 = materialize(L, TENSOR("fc1.weight"), PACK_P32, ly, n1, bn_p32_floats(ly->squeeze, ly->g.c));
            ly->b1 = materialize(L, TENSOR("fc1.bias"), PACK_NONE, ly, 1, 1);
            ly->w2 = materialize(L, TENSOR("fc2.weight"), PACK_SE2, ly, n1, bn_p32_floats(ly->g.c, ly->squeeze));
            ly->b2 = materialize(L, TENSOR("fc2.bias"), PACK_NONE, ly, 1, 1);
            if (!ly->w1 || !ly->b1 || !ly->w2 || !ly->b2)
                return BN_ERR_NOMEM;
        }
#undef TENSOR
    }
    fuse_residual_adds(sd);
    return BN_OK;
}

