/* Model loader: maps a .bnm file (docs/model-format.md), validates the container, the
 * architecture document and every tensor against it, computes MAdds, and repacks the
 * weights whose PyTorch layout differs from the engine's HWC kernels. */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bn_log.h"

typedef struct {
    bn_model *m;
    char *err;
    size_t errlen;
    unsigned char *used;    /* per tensor of m->st */
} loader;

__attribute__((format(printf, 3, 4))) static bn_status fail(loader *L, bn_status st, const char *fmt, ...)
{
    if (L->err && L->errlen) {
        int n = snprintf(L->err, L->errlen, "%s: ", L->m->fname);
        if (n >= 0 && (size_t)n < L->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(L->err + n, L->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return st;
}

static const char *const op_names[BN_OP_COUNT] = {
    [BN_OP_CONV] = "conv2d", [BN_OP_LINEAR] = "linear",   [BN_OP_ADD] = "add",
    [BN_OP_SE] = "se",       [BN_OP_AVGPOOL] = "avgpool", [BN_OP_MAXPOOL] = "maxpool",
    [BN_OP_GAP] = "gap",     [BN_OP_ACT] = "act",
};

/* ---- JSON field helpers: each names the stage, the layer and the field on failure ---- */

static bn_status get_int(loader *L, json_t *o, const char *what, const char *key, long lo, long hi,
                         int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return fail(L, BN_ERR_FORMAT, "%s: field '%s' must be an integer in [%ld, %ld]", what, key, lo, hi);
    *out = (int)json_integer_value(v);
    return BN_OK;
}

static bn_status get_pair(loader *L, json_t *o, const char *what, const char *key, long lo, long hi,
                          int out[2])
{
    json_t *v = json_object_get(o, key);
    if (!json_is_array(v) || json_array_size(v) != 2)
        goto bad;
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi)
            goto bad;
        out[i] = (int)json_integer_value(e);
    }
    return BN_OK;
bad:
    return fail(L, BN_ERR_FORMAT, "%s: field '%s' must be an array of 2 integers in [%ld, %ld]", what,
                key, lo, hi);
}

static bn_status get_act(loader *L, json_t *o, const char *what, const char *key, bn_act *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return fail(L, BN_ERR_FORMAT, "%s: field '%s' is missing or not a string", what, key);
    int a = bn_act_parse(json_string_value(v));
    if (a < 0)
        return fail(L, BN_ERR_UNSUPPORTED, "%s: activation '%.32s' in field '%s' is not supported", what,
                    json_string_value(v), key);
    *out = (bn_act)a;
    return BN_OK;
}

static bn_status get_bool(loader *L, json_t *o, const char *what, const char *key, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v))
        return fail(L, BN_ERR_FORMAT, "%s: field '%s' is missing or not a boolean", what, key);
    *out = json_is_true(v);
    return BN_OK;
}

static double get_number_opt(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- tensors ---- */

static bn_status want_tensor(loader *L, const char *lname, const char *suffix, int ndim,
                             const int64_t *shape, const st_tensor **out)
{
    char tname[512];
    snprintf(tname, sizeof tname, "%s.%s", lname, suffix);
    int idx = st_find_index(&L->m->st, tname);
    if (idx < 0)
        return fail(L, BN_ERR_FORMAT, "tensor '%s' is missing (needed by layer '%s')", tname, lname);
    const st_tensor *t = &L->m->st.tensors[idx];
    if (t->dtype == ST_U8)
        return fail(L, BN_ERR_UNSUPPORTED, "tensor '%s': dtype U8 is only allowed in golden files", tname);
    if (t->dtype == ST_F16 && strcmp(suffix, "bases") != 0)
        return fail(L, BN_ERR_UNSUPPORTED, "tensor '%s': dtype F16 is only supported for '*.bases'", tname);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char a[96], b[96];
        st_shape_str(t->shape, t->ndim, a, sizeof a);
        st_shape_str(shape, ndim, b, sizeof b);
        return fail(L, BN_ERR_FORMAT, "tensor '%s': shape %s does not match the architecture's %s",
                    tname, a, b);
    }
    for (size_t i = 0; i < t->count; i++)
        if (!isfinite(st_get_f32(t, i)))
            return fail(L, BN_ERR_FORMAT, "tensor '%s': element %zu is NaN or Inf", tname, i);
    L->used[idx] = 1;
    *out = t;
    return BN_OK;
}

typedef enum { PACK_NONE = 0, PACK_CONV, PACK_DW, PACK_LINEAR_HWC, PACK_P32 } pack_kind;

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
    case PACK_P32: /* (oc, c, 1, 1) -> panels of 32 output channels (kernels.h) */
        return bn_p32_index((int)(i / (size_t)g->c), (int)(i % (size_t)g->c), g->c);
    case PACK_LINEAR_HWC: { /* (out, c*h*w) -> (out, h*w*c) */
        size_t in = (size_t)g->c * g->h * g->w, hw = (size_t)g->h * g->w;
        size_t o = i / in, j = i % in, c = j / hw, p = j % hw;
        return o * in + p * (size_t)g->c + c;
    }
    default: return i;
    }
}

/* Returns the tensor's data as float32 in the engine's layout: straight from the mapping
 * when it already is, else a heap copy (F16 -> F32, unaligned data, repacked layouts). */
static const float *materialize(loader *L, const st_tensor *t, pack_kind k, const bn_layer *ly,
                                size_t per_basis, size_t stored)
{
    if (t->dtype == ST_F32 && k == PACK_NONE && ((uintptr_t)t->data & 3) == 0)
        return (const float *)(const void *)t->data;
    size_t n = t->count / per_basis * stored;
    float *dst = owned_alloc(L->m, n * sizeof(float));
    if (!dst)
        return NULL;
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
        if (g->kh * g->kw == 1)
            return PACK_NONE;
        if (bn_conv_is_depthwise(g))
            return PACK_DW;
        return g->c / g->groups > 1 ? PACK_CONV : PACK_NONE;
    }
    if (ly->op == BN_OP_LINEAR && g->h * g->w > 1 && g->c > 1)
        return PACK_LINEAR_HWC;
    return PACK_NONE;
}

/* ---- layers ---- */

static int find_layer(const bn_stage_def *sd, int upto, const char *name)
{
    for (int i = 0; i < upto; i++)
        if (strcmp(sd->layers[i].name, name) == 0)
            return i;
    return -2;
}

static void out_shape(const bn_stage_def *sd, int idx, int *c, int *h, int *w)
{
    if (idx < 0) {
        *c = sd->c, *h = sd->h, *w = sd->w;
    } else {
        *c = sd->layers[idx].g.oc, *h = sd->layers[idx].g.oh, *w = sd->layers[idx].g.ow;
    }
}

static bn_status resolve_input(loader *L, const bn_stage_def *sd, int i, json_t *v, const char *what,
                               const char *key, int *out)
{
    if (!json_is_string(v))
        return fail(L, BN_ERR_FORMAT, "%s: field '%s' must name an earlier layer or 'input'", what, key);
    const char *s = json_string_value(v);
    if (strcmp(s, "input") == 0) {
        *out = -1;
        return BN_OK;
    }
    int j = find_layer(sd, i, s);
    if (j < 0)
        return fail(L, BN_ERR_FORMAT, "%s: field '%s' names '%.64s', which is not an earlier layer",
                    what, key, s);
    *out = j;
    return BN_OK;
}

/* The weight of a conv or linear layer (its N bases when synthesized) and its bias.
 * bases_shape is {N, out, ...} with ndim entries; a plain weight has the shape without N. */
static bn_status want_weights(loader *L, bn_layer *ly, const char *what, int allow_synth,
                              const int64_t *bases_shape, int ndim, int out_channels)
{
    bn_status st;
    const st_tensor *t, *tb;
    if (ly->synth && !allow_synth)
        return fail(L, BN_ERR_FORMAT, "%s: only specialist layers can be synthesized", what);
    if ((st = want_tensor(L, ly->name, ly->synth ? "bases" : "weight", ly->synth ? ndim : ndim - 1,
                          ly->synth ? bases_shape : bases_shape + 1, &t)))
        return st;
    int64_t bs[1] = {out_channels};
    if ((st = want_tensor(L, ly->name, "bias", 1, bs, &tb)))
        return st;
    ly->params = t->count + tb->count;
    return BN_OK;
}

static bn_status parse_layer(loader *L, bn_stage_def *sd, const char *sname, int i, json_t *jl,
                             int num_bases, int allow_synth, const bn_stage_def *other)
{
    bn_layer *ly = &sd->layers[i];
    char what[160];
    snprintf(what, sizeof what, "%s layer %d", sname, i);
    if (!json_is_object(jl))
        return fail(L, BN_ERR_FORMAT, "%s is not an object", what);
    json_t *jn = json_object_get(jl, "name");
    if (!json_is_string(jn) || !json_string_value(jn)[0] || strlen(json_string_value(jn)) > 200)
        return fail(L, BN_ERR_FORMAT, "%s: field 'name' is missing, empty or too long", what);
    ly->name = json_string_value(jn);
    snprintf(what, sizeof what, "%s layer '%s'", sname, ly->name);
    if (strcmp(ly->name, "input") == 0 || find_layer(sd, i, ly->name) >= 0 ||
        (other && find_layer(other, other->n, ly->name) >= 0))
        return fail(L, BN_ERR_FORMAT, "%s: the name is reserved or used twice", what);
    json_t *jo = json_object_get(jl, "op");
    int op = -1;
    for (int k = 0; json_is_string(jo) && k < BN_OP_COUNT; k++)
        if (strcmp(json_string_value(jo), op_names[k]) == 0)
            op = k;
    if (op < 0)
        return fail(L, BN_ERR_UNSUPPORTED, "%s: op '%.32s' is not supported", what,
                    json_is_string(jo) ? json_string_value(jo) : "(missing)");
    ly->op = (bn_op)op;
    ly->in0 = i - 1;
    ly->in1 = -1;
    bn_status st;
    json_t *jin = json_object_get(jl, "input");
    if (jin && (st = resolve_input(L, sd, i, jin, what, "input", &ly->in0)))
        return st;
    bn_conv_shape *g = &ly->g;
    out_shape(sd, ly->in0, &g->c, &g->h, &g->w);
    g->oc = g->c, g->oh = g->h, g->ow = g->w;
    g->groups = 1;
    switch (ly->op) {
    case BN_OP_CONV: {
        int in, k[2], s[2], p[2];
        if ((st = get_int(L, jl, what, "in", 1, BN_MAX_CHANNELS, &in)) ||
            (st = get_int(L, jl, what, "out", 1, BN_MAX_CHANNELS, &g->oc)) ||
            (st = get_pair(L, jl, what, "kernel", 1, 64, k)) ||
            (st = get_pair(L, jl, what, "stride", 1, 64, s)) ||
            (st = get_pair(L, jl, what, "padding", 0, 64, p)) ||
            (st = get_int(L, jl, what, "groups", 1, BN_MAX_CHANNELS, &g->groups)) ||
            (st = get_act(L, jl, what, "act", &ly->act)) ||
            (st = get_bool(L, jl, what, "synth", &ly->synth)))
            return st;
        if (in != g->c)
            return fail(L, BN_ERR_FORMAT, "%s: field 'in' is %d but its input has %d channels", what,
                        in, g->c);
        if (g->c % g->groups || g->oc % g->groups)
            return fail(L, BN_ERR_FORMAT, "%s: 'in' %d and 'out' %d must be multiples of 'groups' %d",
                        what, g->c, g->oc, g->groups);
        g->kh = k[0], g->kw = k[1], g->sh = s[0], g->sw = s[1], g->ph = p[0], g->pw = p[1];
        g->oh = bn_out_size(g->h, g->kh, g->sh, g->ph);
        g->ow = bn_out_size(g->w, g->kw, g->sw, g->pw);
        ly->wcount = (size_t)g->oc * (size_t)(g->c / g->groups) * g->kh * g->kw;
        ly->madds = (uint64_t)g->oh * g->ow * ly->wcount;
        int64_t ws[5] = {num_bases, g->oc, g->c / g->groups, g->kh, g->kw};
        if ((st = want_weights(L, ly, what, allow_synth, ws, 5, g->oc)))
            return st;
        break;
    }
    case BN_OP_LINEAR: {
        int in;
        if ((st = get_int(L, jl, what, "in", 1, 1 << 26, &in)) ||
            (st = get_int(L, jl, what, "out", 1, 1 << 20, &g->oc)) ||
            (st = get_act(L, jl, what, "act", &ly->act)) ||
            (st = get_bool(L, jl, what, "synth", &ly->synth)))
            return st;
        if ((long)in != (long)g->c * g->h * g->w)
            return fail(L, BN_ERR_FORMAT, "%s: field 'in' is %d but its input has %d x %d x %d values",
                        what, in, g->c, g->h, g->w);
        g->oh = g->ow = 1;
        ly->wcount = (size_t)in * (size_t)g->oc;
        ly->madds = ly->wcount;
        int64_t ws[3] = {num_bases, g->oc, in};
        if ((st = want_weights(L, ly, what, allow_synth, ws, 3, g->oc)))
            return st;
        break;
    }
    case BN_OP_ADD: {
        json_t *ji = json_object_get(jl, "inputs");
        if (!json_is_array(ji) || json_array_size(ji) != 2)
            return fail(L, BN_ERR_FORMAT, "%s: field 'inputs' must be an array of 2 layer names", what);
        if ((st = resolve_input(L, sd, i, json_array_get(ji, 0), what, "inputs", &ly->in0)) ||
            (st = resolve_input(L, sd, i, json_array_get(ji, 1), what, "inputs", &ly->in1)) ||
            (st = get_act(L, jl, what, "act", &ly->act)))
            return st;
        int c2, h2, w2;
        out_shape(sd, ly->in0, &g->c, &g->h, &g->w);
        out_shape(sd, ly->in1, &c2, &h2, &w2);
        if (c2 != g->c || h2 != g->h || w2 != g->w)
            return fail(L, BN_ERR_FORMAT, "%s: inputs have different shapes (%dx%dx%d and %dx%dx%d)",
                        what, g->c, g->h, g->w, c2, h2, w2);
        g->oc = g->c, g->oh = g->h, g->ow = g->w;
        break;
    }
    case BN_OP_SE: {
        int ch;
        if ((st = get_int(L, jl, what, "channels", 1, BN_MAX_CHANNELS, &ch)) ||
            (st = get_int(L, jl, what, "squeeze", 1, BN_MAX_CHANNELS, &ly->squeeze)) ||
            (st = get_act(L, jl, what, "act", &ly->act)) ||
            (st = get_act(L, jl, what, "gate", &ly->gate)))
            return st;
        if (ch != g->c)
            return fail(L, BN_ERR_FORMAT, "%s: field 'channels' is %d but its input has %d channels",
                        what, ch, g->c);
        ly->madds = 2ull * (uint64_t)ch * (uint64_t)ly->squeeze;
        int64_t s1[2] = {ly->squeeze, ch}, s2[2] = {ch, ly->squeeze}, b1[1] = {ly->squeeze}, b2[1] = {ch};
        const st_tensor *t1, *t2, *t3, *t4;
        if ((st = want_tensor(L, ly->name, "fc1.weight", 2, s1, &t1)) ||
            (st = want_tensor(L, ly->name, "fc1.bias", 1, b1, &t2)) ||
            (st = want_tensor(L, ly->name, "fc2.weight", 2, s2, &t3)) ||
            (st = want_tensor(L, ly->name, "fc2.bias", 1, b2, &t4)))
            return st;
        ly->params = t1->count + t2->count + t3->count + t4->count;
        break;
    }
    case BN_OP_AVGPOOL:
    case BN_OP_MAXPOOL: {
        int k[2], s[2], p[2];
        if ((st = get_pair(L, jl, what, "kernel", 1, 64, k)) ||
            (st = get_pair(L, jl, what, "stride", 1, 64, s)) ||
            (st = get_pair(L, jl, what, "padding", 0, 32, p)))
            return st;
        if (2 * p[0] > k[0] || 2 * p[1] > k[1])
            return fail(L, BN_ERR_FORMAT, "%s: padding must be at most half the kernel", what);
        g->kh = k[0], g->kw = k[1], g->sh = s[0], g->sw = s[1], g->ph = p[0], g->pw = p[1];
        g->oh = bn_out_size(g->h, g->kh, g->sh, g->ph);
        g->ow = bn_out_size(g->w, g->kw, g->sw, g->pw);
        break;
    }
    case BN_OP_GAP:
        g->oh = g->ow = 1;
        break;
    case BN_OP_ACT:
        if ((st = get_act(L, jl, what, "act", &ly->act)))
            return st;
        break;
    default:
        break;
    }
    if (g->oh < 1 || g->ow < 1)
        return fail(L, BN_ERR_FORMAT, "%s: the window does not fit its %dx%d input", what, g->h, g->w);
    if ((uint64_t)g->oc * g->oh * g->ow > BN_MAX_ACT_FLOATS)
        return fail(L, BN_ERR_UNSUPPORTED, "%s: output %dx%dx%d is too large", what, g->oc, g->oh, g->ow);
    if (ly->op == BN_OP_CONV &&
        (uint64_t)g->oh * g->ow * g->kh * g->kw * (uint64_t)(g->c / g->groups) > 4ull * BN_MAX_ACT_FLOATS)
        return fail(L, BN_ERR_UNSUPPORTED, "%s: im2col buffer would be too large", what);
    return BN_OK;
}

static bn_status find_named(loader *L, json_t *js, const char *sname, const char *key,
                            const bn_stage_def *sd, int *out)
{
    json_t *v = json_object_get(js, key);
    if (!json_is_string(v))
        return fail(L, BN_ERR_FORMAT, "%s: field '%s' is missing or not a string", sname, key);
    int i = find_layer(sd, sd->n, json_string_value(v));
    if (i < 0)
        return fail(L, BN_ERR_FORMAT, "%s: field '%s' names '%.64s', which is not a layer", sname, key,
                    json_string_value(v));
    *out = i;
    return BN_OK;
}

static bn_status parse_stage(loader *L, json_t *arch, const char *sname, bn_stage_def *sd,
                             int num_bases, int is_spec, const bn_stage_def *other)
{
    json_t *js = json_object_get(arch, sname);
    if (!json_is_object(js))
        return fail(L, BN_ERR_FORMAT, "basisnet metadata: field '%s' is missing or not an object", sname);
    json_t *jl = json_object_get(js, "layers");
    if (!json_is_array(jl) || json_array_size(jl) < 1 || json_array_size(jl) > BN_MAX_LAYERS)
        return fail(L, BN_ERR_FORMAT, "%s: field 'layers' must be an array of 1..%d layers", sname,
                    BN_MAX_LAYERS);
    int n = (int)json_array_size(jl);
    sd->layers = calloc((size_t)n, sizeof *sd->layers);
    if (!sd->layers)
        return BN_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        bn_status st = parse_layer(L, sd, sname, i, json_array_get(jl, (size_t)i), num_bases, is_spec, other);
        sd->n = i + 1; /* names of parsed layers are visible to later ones */
        if (st)
            return st;
        sd->madds += sd->layers[i].madds;
        sd->params += sd->layers[i].params;
    }
    bn_status st;
    if ((st = find_named(L, js, sname, "logits", sd, &sd->logits)))
        return st;
    sd->coeffs = -1;
    if (!is_spec && (st = find_named(L, js, sname, "coeffs", sd, &sd->coeffs)))
        return st;
    return BN_OK;
}

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
 * ||sum_i a_i B_i||^2 = a^T G a for synthesis reuse (session.c). */
static const double *basis_gram(loader *L, const bn_layer *ly, int n)
{
    double *g = owned_alloc(L->m, sizeof(double) * (size_t)n * (size_t)n);
    if (!g)
        return NULL;
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double acc = 0;
            for (size_t p = 0; p < ly->wstore; p++) {
                size_t a = (size_t)i * ly->wstore + p, b = (size_t)j * ly->wstore + p;
                acc += ly->bases16 ? (double)st_half_to_float(ly->bases16[a]) * st_half_to_float(ly->bases16[b])
                                   : (double)ly->bases[a] * ly->bases[b];
            }
            g[i * n + j] = g[j * n + i] = acc;
        }
    return g;
}

/* Pulls every layer's weights into the engine's layout once validation has passed. */
static bn_status materialize_stage(loader *L, bn_stage_def *sd)
{
    char name[512];
    for (int i = 0; i < sd->n; i++) {
        bn_layer *ly = &sd->layers[i];
        const st_tensor *t;
#define TENSOR(suffix) (snprintf(name, sizeof name, "%s.%s", ly->name, suffix), st_find(&L->m->st, name))
        if (ly->op == BN_OP_CONV || ly->op == BN_OP_LINEAR) {
            pack_kind k = layer_pack(ly);
            ly->pointwise = k == PACK_P32;
            ly->wstore = ly->pointwise ? bn_p32_floats(ly->g.oc, ly->g.c) : ly->wcount;
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
            ly->w1 = materialize(L, TENSOR("fc1.weight"), PACK_NONE, ly, 1, 1);
            ly->b1 = materialize(L, TENSOR("fc1.bias"), PACK_NONE, ly, 1, 1);
            ly->w2 = materialize(L, TENSOR("fc2.weight"), PACK_NONE, ly, 1, 1);
            ly->b2 = materialize(L, TENSOR("fc2.bias"), PACK_NONE, ly, 1, 1);
            if (!ly->w1 || !ly->b1 || !ly->w2 || !ly->b2)
                return BN_ERR_NOMEM;
        }
#undef TENSOR
    }
    fuse_residual_adds(sd);
    return BN_OK;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static size_t stage_out_count(const bn_stage_def *sd, int idx)
{
    const bn_layer *ly = &sd->layers[idx];
    return (size_t)ly->g.oc * ly->g.oh * ly->g.ow;
}

static bn_status parse_input(loader *L, json_t *arch)
{
    bn_model *m = L->m;
    bn_model_info *info = &m->info;
    json_t *ji = json_object_get(arch, "input");
    if (!json_is_object(ji))
        return fail(L, BN_ERR_FORMAT, "basisnet metadata: field 'input' is missing or not an object");
    bn_status st;
    if ((st = get_int(L, ji, "input", "channels", 1, 4, &info->channels)) ||
        (st = get_int(L, ji, "input", "height", 1, BN_MAX_DIM, &info->height)) ||
        (st = get_int(L, ji, "input", "width", 1, BN_MAX_DIM, &info->width)))
        return st;
    static const char *const keys[2] = {"mean", "std"};
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(ji, keys[k]);
        if (!json_is_array(a) || json_array_size(a) != (size_t)info->channels)
            return fail(L, BN_ERR_FORMAT, "input: field '%s' must be an array of %d numbers", keys[k],
                        info->channels);
        for (int c = 0; c < info->channels; c++) {
            json_t *v = json_array_get(a, (size_t)c);
            double d = json_number_value(v);
            if (!json_is_number(v) || !isfinite(d) || fabs(d) > 1e6 || (k == 1 && !(d > 1e-12)))
                return fail(L, BN_ERR_FORMAT, "input: field '%s' element %d must be a finite number%s",
                            keys[k], c, k == 1 ? " > 0" : "");
            (k ? m->std : m->mean)[c] = (float)d;
        }
    }
    json_t *jl = json_object_get(ji, "light");
    if (!json_is_object(jl))
        return fail(L, BN_ERR_FORMAT, "input: field 'light' is missing or not an object");
    if ((st = get_int(L, jl, "input.light", "height", 1, BN_MAX_DIM, &info->light_height)) ||
        (st = get_int(L, jl, "input.light", "width", 1, BN_MAX_DIM, &info->light_width)))
        return st;
    json_t *jr = json_object_get(jl, "resize");
    const char *rs = json_is_string(jr) ? json_string_value(jr) : "";
    if (strcmp(rs, "avgpool") == 0) {
        m->resize = BN_RESIZE_AVGPOOL;
        m->pool_k = info->height / info->light_height;
        if (info->height % info->light_height || info->width % info->light_width ||
            info->width / info->light_width != m->pool_k)
            return fail(L, BN_ERR_FORMAT,
                        "input.light: resize 'avgpool' needs %dx%d to be the same exact multiple of %dx%d",
                        info->height, info->width, info->light_height, info->light_width);
    } else if (strcmp(rs, "bilinear") == 0) {
        m->resize = BN_RESIZE_BILINEAR;
    } else {
        return fail(L, BN_ERR_UNSUPPORTED, "input.light: field 'resize' must be 'avgpool' or 'bilinear'");
    }
    return BN_OK;
}

static bn_status parse_arch(loader *L)
{
    bn_model *m = L->m;
    bn_model_info *info = &m->info;
    json_t *md = m->st.metadata;
    json_t *doc = md ? json_object_get(md, "basisnet") : NULL;
    if (!doc)
        return fail(L, BN_ERR_FORMAT, "'__metadata__' has no 'basisnet' document");
    json_error_t jerr;
    m->arch = json_loads(json_string_value(doc), JSON_REJECT_DUPLICATES, &jerr);
    if (!m->arch)
        return fail(L, BN_ERR_FORMAT, "basisnet metadata JSON: %s (line %d, column %d)", jerr.text,
                    jerr.line, jerr.column);
    json_t *arch = m->arch;
    if (!json_is_object(arch))
        return fail(L, BN_ERR_FORMAT, "basisnet metadata is not a JSON object");
    info->metadata_json = json_string_value(doc);
    json_t *v = json_object_get(arch, "format_version");
    if (!json_is_integer(v))
        return fail(L, BN_ERR_FORMAT, "basisnet metadata: field 'format_version' is missing");
    if (json_integer_value(v) != 1)
        return fail(L, BN_ERR_UNSUPPORTED, "basisnet metadata: format_version %lld is not supported (1)",
                    (long long)json_integer_value(v));
    v = json_object_get(arch, "name");
    if (!json_is_string(v))
        return fail(L, BN_ERR_FORMAT, "basisnet metadata: field 'name' is missing or not a string");
    info->name = json_string_value(v);
    bn_status st;
    if ((st = parse_input(L, arch)) ||
        (st = get_int(L, arch, "basisnet metadata", "num_bases", 1, BN_MAX_BASES, &info->num_bases)))
        return st;
    int N = info->num_bases;
    m->light.c = info->channels, m->light.h = info->light_height, m->light.w = info->light_width;
    m->spec.c = info->channels, m->spec.h = info->height, m->spec.w = info->width;
    if ((st = parse_stage(L, arch, "light", &m->light, N, 0, NULL)) ||
        (st = parse_stage(L, arch, "specialist", &m->spec, N, 1, &m->light)))
        return st;

    /* classes and labels */
    size_t nc = stage_out_count(&m->light, m->light.logits);
    if (nc < 1 || nc > BN_MAX_CLASSES)
        return fail(L, BN_ERR_FORMAT, "light: logits layer has %zu outputs (1..%d classes)", nc, BN_MAX_CLASSES);
    if (stage_out_count(&m->spec, m->spec.logits) != nc)
        return fail(L, BN_ERR_FORMAT, "specialist: logits layer has %zu outputs, light has %zu",
                    stage_out_count(&m->spec, m->spec.logits), nc);
    info->num_classes = (int)nc;
    json_t *jl = json_object_get(arch, "labels");
    if (!json_is_array(jl) || json_array_size(jl) != nc)
        return fail(L, BN_ERR_FORMAT, "basisnet metadata: field 'labels' must be an array of %zu strings", nc);
    m->labels = calloc(nc, sizeof *m->labels);
    if (!m->labels)
        return BN_ERR_NOMEM;
    for (size_t i = 0; i < nc; i++) {
        json_t *s = json_array_get(jl, i);
        if (!json_is_string(s) || !json_string_value(s)[0] || strlen(json_string_value(s)) >= BN_LABEL_MAX)
            return fail(L, BN_ERR_FORMAT, "basisnet metadata: label %zu must be a string of 1..%d bytes",
                        i, BN_LABEL_MAX - 1);
        m->labels[i] = json_string_value(s);
    }
    info->labels = m->labels;

    /* synthesized layers: the order defines alpha's rows */
    json_t *jsl = json_object_get(arch, "synth_layers");
    if (!json_is_array(jsl) || json_array_size(jsl) < 1 || json_array_size(jsl) > (size_t)m->spec.n)
        return fail(L, BN_ERR_FORMAT, "basisnet metadata: field 'synth_layers' must be an array of 1..%d layer names",
                    m->spec.n);
    int nl = (int)json_array_size(jsl);
    info->num_synth_layers = nl;
    m->synth_layer = calloc((size_t)nl, sizeof *m->synth_layer);
    if (!m->synth_layer)
        return BN_ERR_NOMEM;
    for (int l = 0; l < m->spec.n; l++)
        m->spec.layers[l].synth_index = -1;
    for (int l = 0; l < nl; l++) {
        json_t *s = json_array_get(jsl, (size_t)l);
        int i = json_is_string(s) ? find_layer(&m->spec, m->spec.n, json_string_value(s)) : -2;
        if (i < 0 || !m->spec.layers[i].synth || m->spec.layers[i].synth_index >= 0)
            return fail(L, BN_ERR_FORMAT,
                        "synth_layers[%d] must name a distinct specialist layer with \"synth\": true", l);
        m->spec.layers[i].synth_index = l;
        m->synth_layer[l] = i;
        info->madds_synth += (uint64_t)N * m->spec.layers[i].wcount;
    }
    for (int i = 0; i < m->spec.n; i++)
        if (m->spec.layers[i].synth && m->spec.layers[i].synth_index < 0)
            return fail(L, BN_ERR_FORMAT, "specialist layer '%s' is synthesized but not in synth_layers",
                        m->spec.layers[i].name);
    size_t ncoef = stage_out_count(&m->light, m->light.coeffs);
    if (ncoef != (size_t)nl * (size_t)N)
        return fail(L, BN_ERR_FORMAT, "light: coeffs layer has %zu outputs, expected L*N = %d*%d", ncoef, nl, N);

    /* no tensor may go unused */
    for (int i = 0; i < m->st.n_tensors; i++)
        if (!L->used[i])
            return fail(L, BN_ERR_FORMAT, "tensor '%s' is not used by the architecture", m->st.tensors[i].name);

    info->madds_light = m->light.madds;
    info->madds_specialist = m->spec.madds;
    info->params_light = m->light.params;
    info->params_specialist = m->spec.params;

    /* informational */
    json_t *acc = json_object_get(arch, "accuracy");
    info->acc_test_full = get_number_opt(acc, "test_full");
    info->acc_test_light = get_number_opt(acc, "test_light");
    info->acc_threshold = get_number_opt(acc, "threshold");
    info->acc_test_early_exit = get_number_opt(acc, "test_early_exit");
    info->acc_exit_share = get_number_opt(acc, "exit_share");
    json_t *cal = json_object_get(json_object_get(arch, "calibration"), "val_light_confidence");
    if (json_is_array(cal) && json_array_size(cal) > 0 && json_array_size(cal) <= (1u << 20)) {
        size_t n = json_array_size(cal);
        m->val_conf = malloc(n * sizeof *m->val_conf);
        if (!m->val_conf)
            return BN_ERR_NOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            double d = json_number_value(json_array_get(cal, i));
            if (json_is_number(json_array_get(cal, i)) && d >= 0.0 && d <= 1.0)
                m->val_conf[k++] = (float)d;
        }
        qsort(m->val_conf, k, sizeof *m->val_conf, cmp_float);
        info->val_light_confidence = m->val_conf;
        info->n_val_light_confidence = (int)k;
    }
    json_t *jm = json_object_get(arch, "madds");
    double ml = get_number_opt(jm, "light"), ms = get_number_opt(jm, "specialist");
    if (isfinite(ml) && ml > 0 && (uint64_t)ml != info->madds_light)
        BN_LOGW("engine", "%s: metadata says %.0f light MAdds, the engine counts %llu", m->fname, ml,
                (unsigned long long)info->madds_light);
    if (isfinite(ms) && ms > 0 && (uint64_t)ms != info->madds_specialist)
        BN_LOGW("engine", "%s: metadata says %.0f specialist MAdds, the engine counts %llu", m->fname,
                ms, (unsigned long long)info->madds_specialist);

    if ((st = materialize_stage(L, &m->light)) || (st = materialize_stage(L, &m->spec)))
        return st;
    return BN_OK;
}

static bn_status open_common(bn_model *m, const uint8_t *buf, size_t size, char *err, size_t errlen)
{
    loader L = {.m = m, .err = err, .errlen = errlen};
    bn_status st = st_parse(buf, size, m->fname, &m->st, err, errlen);
    if (st)
        return st;
    L.used = calloc((size_t)m->st.n_tensors + 1, 1);
    if (!L.used)
        return BN_ERR_NOMEM;
    st = parse_arch(&L);
    free(L.used);
    if (st == BN_ERR_NOMEM)
        bn_set_err(err, errlen, "%s: out of memory while loading", m->fname);
    return st;
}

static bn_model *model_alloc(const char *name)
{
    bn_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->fname = strdup(name ? name : "(buffer)");
    if (!m->fname) {
        free(m);
        return NULL;
    }
    m->info.acc_test_full = m->info.acc_test_light = m->info.acc_threshold = NAN;
    m->info.acc_test_early_exit = m->info.acc_exit_share = NAN;
    return m;
}

bn_status bn_model_open_buffer(const void *data, size_t size, const char *name, bn_model **out,
                               char *err, size_t errlen)
{
    if (!out || (!data && size))
        return BN_ERR_INVALID_ARG;
    *out = NULL;
    bn_model *m = model_alloc(name);
    if (!m)
        return BN_ERR_NOMEM;
    bn_status st = open_common(m, data, size, err, errlen);
    if (st) {
        bn_model_close(m);
        return st;
    }
    *out = m;
    return BN_OK;
}

bn_status bn_model_open(const char *path, bn_model **out, char *err, size_t errlen)
{
    if (!path || !out)
        return BN_ERR_INVALID_ARG;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        bn_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return BN_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        bn_set_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return BN_ERR_IO;
    }
    bn_model *m = model_alloc(path);
    if (!m) {
        close(fd);
        return BN_ERR_NOMEM;
    }
    size_t size = (size_t)sb.st_size;
    const uint8_t *buf = (const uint8_t *)"";
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            bn_set_err(err, errlen, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            bn_model_close(m);
            return BN_ERR_IO;
        }
        m->map = p;
        m->map_size = size;
        buf = p;
    }
    close(fd);
    bn_status st = open_common(m, buf, size, err, errlen);
    if (st) {
        bn_model_close(m);
        return st;
    }
    *out = m;
    return BN_OK;
}

void bn_model_close(bn_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->light.layers);
    free(m->spec.layers);
    free(m->synth_layer);
    free(m->labels);
    free(m->val_conf);
    if (m->arch)
        json_decref(m->arch);
    st_free(&m->st);
    if (m->map)
        munmap(m->map, m->map_size);
    free(m->fname);
    free(m);
}

const bn_model_info *bn_model_get_info(const bn_model *m) { return m ? &m->info : NULL; }
