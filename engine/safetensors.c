/* safetensors container parser (see docs/model-format.md, "Header rules"). Every number
 * from the file is range-checked before it is used in arithmetic. */
#include "safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bn_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {[ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_U8] = {"U8", 1}};

const char *st_dtype_name(st_dtype d) { return dtypes[d].name; }
size_t st_dtype_size(st_dtype d) { return dtypes[d].size; }

void st_shape_str(const int64_t *shape, int ndim, char *buf, size_t len)
{
    size_t off = 0;
    off += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
}

float st_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float st_get_f32(const st_tensor *t, size_t i)
{
    if (t->dtype == ST_F16) {
        uint16_t h;
        memcpy(&h, t->data + 2 * i, 2);
        return st_half_to_float(h);
    }
    if (t->dtype == ST_U8)
        return (float)t->data[i];
    float f;
    memcpy(&f, t->data + 4 * i, 4);
    return f;
}

static int cmp_begin(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int json_is_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

static bn_status parse_tensor(const char *fname, const char *name, json_t *v, size_t data_size,
                              st_tensor *t, char *err, size_t errlen)
{
    if (!json_is_object(v)) {
        bn_set_err(err, errlen, "%s: tensor '%s': header entry is not an object", fname, name);
        return BN_ERR_FORMAT;
    }
    t->name = name;
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) {
        bn_set_err(err, errlen, "%s: tensor '%s': 'dtype' is missing or not a string", fname, name);
        return BN_ERR_FORMAT;
    }
    int found = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(json_string_value(jd), dtypes[i].name) == 0) {
            t->dtype = (st_dtype)i;
            found = 1;
        }
    if (!found) {
        bn_set_err(err, errlen, "%s: tensor '%s': dtype '%.32s' is not supported (F32, F16, U8)",
                   fname, name, json_string_value(jd));
        return BN_ERR_UNSUPPORTED;
    }
    if (!json_is_array(js) || json_array_size(js) > ST_MAX_DIMS) {
        bn_set_err(err, errlen, "%s: tensor '%s': 'shape' must be an array of 0..%d positive integers",
                   fname, name, ST_MAX_DIMS);
        return BN_ERR_FORMAT;
    }
    t->ndim = (int)json_array_size(js);
    size_t count = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (!json_is_uint(json_array_get(js, (size_t)i), &d) || d == 0 || d > (1u << 30)) {
            bn_set_err(err, errlen, "%s: tensor '%s': shape dimension %d is not a positive integer <= 2^30",
                       fname, name, i);
            return BN_ERR_FORMAT;
        }
        t->shape[i] = (int64_t)d;
        if (count > SIZE_MAX / d / 4) {
            bn_set_err(err, errlen, "%s: tensor '%s': shape is too large", fname, name);
            return BN_ERR_FORMAT;
        }
        count *= d;
    }
    t->count = count;
    uint64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_uint(json_array_get(jo, 0), &b) ||
        !json_is_uint(json_array_get(jo, 1), &e)) {
        bn_set_err(err, errlen, "%s: tensor '%s': 'data_offsets' must be two non-negative integers",
                   fname, name);
        return BN_ERR_FORMAT;
    }
    if (b > e || e > data_size) {
        bn_set_err(err, errlen,
                   "%s: tensor '%s': data_offsets [%llu,%llu] outside the data section (%zu bytes; file truncated?)",
                   fname, name, (unsigned long long)b, (unsigned long long)e, data_size);
        return BN_ERR_FORMAT;
    }
    if (e - b != count * dtypes[t->dtype].size) {
        bn_set_err(err, errlen, "%s: tensor '%s': data_offsets span %llu bytes but shape x %s needs %zu",
                   fname, name, (unsigned long long)(e - b), dtypes[t->dtype].name,
                   count * dtypes[t->dtype].size);
        return BN_ERR_FORMAT;
    }
    t->begin = (size_t)b;
    t->end = (size_t)e;
    return BN_OK;
}

bn_status st_parse(const uint8_t *buf, size_t size, const char *fname, st_file *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (size < 8) {
        bn_set_err(err, errlen, "%s: file is %zu bytes, too short for a safetensors header", fname, size);
        return BN_ERR_FORMAT;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > size - 8) {
        bn_set_err(err, errlen,
                   "%s: header length %llu is invalid (must be 2..%u and fit in the %zu-byte file)",
                   fname, (unsigned long long)hlen, ST_MAX_HEADER, size);
        return BN_ERR_FORMAT;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        bn_set_err(err, errlen, "%s: header JSON: %s (at byte %d)", fname, jerr.text, jerr.position);
        return BN_ERR_FORMAT;
    }
    out->root = root;
    if (!json_is_object(root)) {
        bn_set_err(err, errlen, "%s: header JSON is not an object", fname);
        st_free(out);
        return BN_ERR_FORMAT;
    }
    const uint8_t *data = buf + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    out->data = data;
    out->data_size = data_size;
    size_t n = json_object_size(root);
    out->tensors = calloc(n ? n : 1, sizeof *out->tensors);
    if (!out->tensors) {
        st_free(out);
        return BN_ERR_NOMEM;
    }
    const char *key;
    json_t *v;
    bn_status st = BN_OK;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                bn_set_err(err, errlen, "%s: '__metadata__' is not an object", fname);
                st = BN_ERR_FORMAT;
                break;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    bn_set_err(err, errlen, "%s: '__metadata__' field '%.64s' is not a string", fname, mk);
                    st = BN_ERR_FORMAT;
                    break;
                }
            }
            if (st != BN_OK)
                break;
            out->metadata = v;
            continue;
        }
        st_tensor *t = &out->tensors[out->n_tensors];
        st = parse_tensor(fname, key, v, data_size, t, err, errlen);
        if (st != BN_OK)
            break;
        t->data = data + t->begin;
        out->n_tensors++;
    }
    if (st == BN_OK && out->n_tensors > 1) {
        const st_tensor **order = malloc(sizeof *order * (size_t)out->n_tensors);
        if (!order) {
            st = BN_ERR_NOMEM;
        } else {
            for (int i = 0; i < out->n_tensors; i++)
                order[i] = &out->tensors[i];
            qsort(order, (size_t)out->n_tensors, sizeof *order, cmp_begin);
            for (int i = 1; i < out->n_tensors; i++)
                if (order[i]->begin < order[i - 1]->end) {
                    bn_set_err(err, errlen, "%s: tensors '%s' and '%s' overlap in the data section",
                               fname, order[i - 1]->name, order[i]->name);
                    st = BN_ERR_FORMAT;
                    break;
                }
            free(order);
        }
    }
    if (st != BN_OK)
        st_free(out);
    return st;
}

void st_free(st_file *f)
{
    if (!f)
        return;
    free(f->tensors);
    f->tensors = NULL;
    if (f->root)
        json_decref(f->root);
    f->root = NULL;
    f->metadata = NULL;
    f->n_tensors = 0;
}

int st_find_index(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return i;
    return -1;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    int i = st_find_index(f, name);
    return i < 0 ? NULL : &f->tensors[i];
}
