/* One stage of a .bnm's architecture document (docs/model-format.md): each layer's fields,
 * shapes, inputs, MAdds and parameters, checked against the layers before it; the tensors
 * each layer needs are checked by model_weights.c. */
#include "model_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[BN_OP_COUNT] = {
    [BN_OP_CONV] = "conv2d", [BN_OP_LINEAR] = "linear",   [BN_OP_ADD] = "add",
    [BN_OP_SE] = "se",       [BN_OP_AVGPOOL] = "avgpool", [BN_OP_MAXPOOL] = "maxpool",
    [BN_OP_GAP] = "gap",     [BN_OP_ACT] = "act",
};

/* ---- JSON field helpers: each names the stage, the layer and the field on failure ---- */

bn_status bn_load_get_int(loader *L, json_t *o, const char *what, const char *key, long lo, long hi,
                         int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: field '%s' must be an integer in [%ld, %ld]", what, key, lo, hi);
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
    return bn_load_fail(L, BN_ERR_FORMAT, "%s: field '%s' must be an array of 2 integers in [%ld, %ld]", what,
                        key, lo, hi);
}

static bn_status get_act(loader *L, json_t *o, const char *what, const char *key, bn_act *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: field '%s' is missing or not a string", what, key);
    int a = bn_act_parse(json_string_value(v));
    if (a < 0)
        return bn_load_fail(L, BN_ERR_UNSUPPORTED, "%s: activation '%.32s' in field '%s' is not supported", what,
                            json_string_value(v), key);
    *out = (bn_act)a;
    return BN_OK;
}

static bn_status get_bool(loader *L, json_t *o, const char *what, const char *key, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v))
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: field '%s' is missing or not a boolean", what, key);
    *out = json_is_true(v);
    return BN_OK;
}

/* ---- layers ---- */

int bn_load_find_layer(const bn_stage_def *sd, int upto, const char *name)
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
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: field '%s' must name an earlier layer or 'input'", what, key);
    const char *s = json_string_value(v);
    if (strcmp(s, "input") == 0) {
        *out = -1;
        return BN_OK;
    }
    int j = bn_load_find_layer(sd, i, s);
    if (j < 0)
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: field '%s' names '%.64s', which is not an earlier layer",
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
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: only specialist layers can be synthesized", what);
    if ((st = bn_load_want_tensor(L, ly->name, ly->synth ? "bases" : "weight", ly->synth ? ndim : ndim - 1,
                                  ly->synth ? bases_shape : bases_shape + 1, &t)))
        return st;
    int64_t bs[1] = {out_channels};
    if ((st = bn_load_want_tensor(L, ly->name, "bias", 1, bs, &tb)))
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
        return bn_load_fail(L, BN_ERR_FORMAT, "%s is not an object", what);
    json_t *jn = json_object_get(jl, "name");
    if (!json_is_string(jn) || !json_string_value(jn)[0] || strlen(json_string_value(jn)) > 200)
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: field 'name' is missing, empty or too long", what);
    ly->name = json_string_value(jn);
    snprintf(what, sizeof what, "%s layer '%s'", sname, ly->name);
    if (strcmp(ly->name, "input") == 0 || bn_load_find_layer(sd, i, ly->name) >= 0 ||
        (other && bn_load_find_layer(other, other->n, ly->name) >= 0))
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: the name is reserved or used twice", what);
    json_t *jo = json_object_get(jl, "op");
    int op = -1;
    for (int k = 0; json_is_string(jo) && k < BN_OP_COUNT; k++)
        if (strcmp(json_string_value(jo), op_names[k]) == 0)
            op = k;
    if (op < 0)
        return bn_load_fail(L, BN_ERR_UNSUPPORTED, "%s: op '%.32s' is not supported", what,
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
        if ((st = bn_load_get_int(L, jl, what, "in", 1, BN_MAX_CHANNELS, &in)) ||
            (st = bn_load_get_int(L, jl, what, "out", 1, BN_MAX_CHANNELS, &g->oc)) ||
            (st = get_pair(L, jl, what, "kernel", 1, 64, k)) ||
            (st = get_pair(L, jl, what, "stride", 1, 64, s)) ||
            (st = get_pair(L, jl, what, "padding", 0, 64, p)) ||
            (st = bn_load_get_int(L, jl, what, "groups", 1, BN_MAX_CHANNELS, &g->groups)) ||
            (st = get_act(L, jl, what, "act", &ly->act)) ||
            (st = get_bool(L, jl, what, "synth", &ly->synth)))
            return st;
        if (in != g->c)
            return bn_load_fail(L, BN_ERR_FORMAT, "%s: field 'in' is %d but its input has %d channels", what,
                                in, g->c);
        if (g->c % g->groups || g->oc % g->groups)
            return bn_load_fail(L, BN_ERR_FORMAT, "%s: 'in' %d and 'out' %d must be multiples of 'groups' %d",
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
        if ((st = bn_load_get_int(L, jl, what, "in", 1, 1 << 26, &in)) ||
            (st = bn_load_get_int(L, jl, what, "out", 1, 1 << 20, &g->oc)) ||
            (st = get_act(L, jl, what, "act", &ly->act)) ||
            (st = get_bool(L, jl, what, "synth", &ly->synth)))
            return st;
        if ((long)in != (long)g->c * g->h * g->w)
            return bn_load_fail(L, BN_ERR_FORMAT, "%s: field 'in' is %d but its input has %d x %d x %d values",
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
            return bn_load_fail(L, BN_ERR_FORMAT, "%s: field 'inputs' must be an array of 2 layer names", what);
        if ((st = resolve_input(L, sd, i, json_array_get(ji, 0), what, "inputs", &ly->in0)) ||
            (st = resolve_input(L, sd, i, json_array_get(ji, 1), what, "inputs", &ly->in1)) ||
            (st = get_act(L, jl, what, "act", &ly->act)))
            return st;
        int c2, h2, w2;
        out_shape(sd, ly->in0, &g->c, &g->h, &g->w);
        out_shape(sd, ly->in1, &c2, &h2, &w2);
        if (c2 != g->c || h2 != g->h || w2 != g->w)
            return bn_load_fail(L, BN_ERR_FORMAT, "%s: inputs have different shapes (%dx%dx%d and %dx%dx%d)",
                                what, g->c, g->h, g->w, c2, h2, w2);
        g->oc = g->c, g->oh = g->h, g->ow = g->w;
        break;
    }
    case BN_OP_SE: {
        int ch;
        if ((st = bn_load_get_int(L, jl, what, "channels", 1, BN_MAX_CHANNELS, &ch)) ||
            (st = bn_load_get_int(L, jl, what, "squeeze", 1, BN_MAX_CHANNELS, &ly->squeeze)) ||
            (st = get_act(L, jl, what, "act", &ly->act)) ||
            (st = get_act(L, jl, what, "gate", &ly->gate)))
            return st;
        if (ch != g->c)
            return bn_load_fail(L, BN_ERR_FORMAT, "%s: field 'channels' is %d but its input has %d channels",
                                what, ch, g->c);
        ly->madds = 2ull * (uint64_t)ch * (uint64_t)ly->squeeze;
        int64_t s1[2] = {ly->squeeze, ch}, s2[2] = {ch, ly->squeeze}, b1[1] = {ly->squeeze}, b2[1] = {ch};
        const st_tensor *t1, *t2, *t3, *t4;
        if ((st = bn_load_want_tensor(L, ly->name, "fc1.weight", 2, s1, &t1)) ||
            (st = bn_load_want_tensor(L, ly->name, "fc1.bias", 1, b1, &t2)) ||
            (st = bn_load_want_tensor(L, ly->name, "fc2.weight", 2, s2, &t3)) ||
            (st = bn_load_want_tensor(L, ly->name, "fc2.bias", 1, b2, &t4)))
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
            return bn_load_fail(L, BN_ERR_FORMAT, "%s: padding must be at most half the kernel", what);
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
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: the window does not fit its %dx%d input", what, g->h, g->w);
    if ((uint64_t)g->oc * g->oh * g->ow > BN_MAX_ACT_FLOATS)
        return bn_load_fail(L, BN_ERR_UNSUPPORTED, "%s: output %dx%dx%d is too large", what, g->oc, g->oh, g->ow);
    if (ly->op == BN_OP_CONV &&
        (uint64_t)g->oh * g->ow * g->kh * g->kw * (uint64_t)(g->c / g->groups) > 4ull * BN_MAX_ACT_FLOATS)
        return bn_load_fail(L, BN_ERR_UNSUPPORTED, "%s: im2col buffer would be too large", what);
    return BN_OK;
}

static bn_status find_named(loader *L, json_t *js, const char *sname, const char *key,
                            const bn_stage_def *sd, int *out)
{
    json_t *v = json_object_get(js, key);
    if (!json_is_string(v))
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: field '%s' is missing or not a string", sname, key);
    int i = bn_load_find_layer(sd, sd->n, json_string_value(v));
    if (i < 0)
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: field '%s' names '%.64s', which is not a layer", sname, key,
                            json_string_value(v));
    *out = i;
    return BN_OK;
}

bn_status bn_load_parse_stage(loader *L, json_t *arch, const char *sname, bn_stage_def *sd,
                             int num_bases, int is_spec, const bn_stage_def *other)
{
    json_t *js = json_object_get(arch, sname);
    if (!json_is_object(js))
        return bn_load_fail(L, BN_ERR_FORMAT, "basisnet metadata: field '%s' is missing or not an object", sname);
    json_t *jl = json_object_get(js, "layers");
    if (!json_is_array(jl) || json_array_size(jl) < 1 || json_array_size(jl) > BN_MAX_LAYERS)
        return bn_load_fail(L, BN_ERR_FORMAT, "%s: field 'layers' must be an array of 1..%d layers", sname,
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
