/* Model loader: reads a .bnm file (docs/model-format.md) into memory, verifies the data
 * section's checksum, validates the container, the architecture document and every tensor
 * against it, computes MAdds, and copies the weights into the engine's own memory in the
 * layout of its HWC kernels; the file's bytes are freed once loaded, so nothing depends on
 * the file afterwards. This file reads the file and the document's top level;
 * model_layers.c and model_weights.c do the stages and the tensors (model_load.h). */
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
#include <zlib.h>

#include "bn_log.h"
#include "model_load.h"

bn_status bn_load_fail(loader *L, bn_status st, const char *fmt, ...)
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

static double get_number_opt(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
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
        return bn_load_fail(L, BN_ERR_FORMAT, "basisnet metadata: field 'input' is missing or not an object");
    bn_status st;
    if ((st = bn_load_get_int(L, ji, "input", "channels", 1, 4, &info->channels)) ||
        (st = bn_load_get_int(L, ji, "input", "height", 1, BN_MAX_DIM, &info->height)) ||
        (st = bn_load_get_int(L, ji, "input", "width", 1, BN_MAX_DIM, &info->width)))
        return st;
    static const char *const keys[2] = {"mean", "std"};
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(ji, keys[k]);
        if (!json_is_array(a) || json_array_size(a) != (size_t)info->channels)
            return bn_load_fail(L, BN_ERR_FORMAT, "input: field '%s' must be an array of %d numbers", keys[k],
                                info->channels);
        for (int c = 0; c < info->channels; c++) {
            json_t *v = json_array_get(a, (size_t)c);
            double d = json_number_value(v);
            if (!json_is_number(v) || !isfinite(d) || fabs(d) > 1e6 || (k == 1 && !(d > 1e-12)))
                return bn_load_fail(L, BN_ERR_FORMAT, "input: field '%s' element %d must be a finite number%s",
                                    keys[k], c, k == 1 ? " > 0" : "");
            (k ? m->std : m->mean)[c] = (float)d;
        }
    }
    json_t *jl = json_object_get(ji, "light");
    if (!json_is_object(jl))
        return bn_load_fail(L, BN_ERR_FORMAT, "input: field 'light' is missing or not an object");
    if ((st = bn_load_get_int(L, jl, "input.light", "height", 1, BN_MAX_DIM, &info->light_height)) ||
        (st = bn_load_get_int(L, jl, "input.light", "width", 1, BN_MAX_DIM, &info->light_width)))
        return st;
    json_t *jr = json_object_get(jl, "resize");
    const char *rs = json_is_string(jr) ? json_string_value(jr) : "";
    if (strcmp(rs, "avgpool") == 0) {
        m->resize = BN_RESIZE_AVGPOOL;
        m->pool_k = info->height / info->light_height;
        if (info->height % info->light_height || info->width % info->light_width ||
            info->width / info->light_width != m->pool_k)
            return bn_load_fail(L, BN_ERR_FORMAT,
                                "input.light: resize 'avgpool' needs %dx%d to be the same exact multiple of %dx%d",
                                info->height, info->width, info->light_height, info->light_width);
    } else if (strcmp(rs, "bilinear") == 0) {
        m->resize = BN_RESIZE_BILINEAR;
    } else {
        return bn_load_fail(L, BN_ERR_UNSUPPORTED, "input.light: field 'resize' must be 'avgpool' or 'bilinear'");
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
        return bn_load_fail(L, BN_ERR_FORMAT, "'__metadata__' has no 'basisnet' document");
    json_error_t jerr;
    m->arch = json_loads(json_string_value(doc), JSON_REJECT_DUPLICATES, &jerr);
    if (!m->arch)
        return bn_load_fail(L, BN_ERR_FORMAT, "basisnet metadata JSON: %s (line %d, column %d)", jerr.text,
                            jerr.line, jerr.column);
    json_t *arch = m->arch;
    if (!json_is_object(arch))
        return bn_load_fail(L, BN_ERR_FORMAT, "basisnet metadata is not a JSON object");
    info->metadata_json = json_string_value(doc);
    json_t *v = json_object_get(arch, "format_version");
    if (!json_is_integer(v))
        return bn_load_fail(L, BN_ERR_FORMAT, "basisnet metadata: field 'format_version' is missing");
    if (json_integer_value(v) != 1)
        return bn_load_fail(L, BN_ERR_UNSUPPORTED, "basisnet metadata: format_version %lld is not supported (1)",
                            (long long)json_integer_value(v));
    v = json_object_get(arch, "name");
    if (!json_is_string(v))
        return bn_load_fail(L, BN_ERR_FORMAT, "basisnet metadata: field 'name' is missing or not a string");
    info->name = json_string_value(v);
    bn_status st;
    if ((st = parse_input(L, arch)) ||
        (st = bn_load_get_int(L, arch, "basisnet metadata", "num_bases", 1, BN_MAX_BASES, &info->num_bases)))
        return st;
    int N = info->num_bases;
    m->light.c = info->channels, m->light.h = info->light_height, m->light.w = info->light_width;
    m->spec.c = info->channels, m->spec.h = info->height, m->spec.w = info->width;
    if ((st = bn_load_parse_stage(L, arch, "light", &m->light, N, 0, NULL)) ||
        (st = bn_load_parse_stage(L, arch, "specialist", &m->spec, N, 1, &m->light)))
        return st;

    /* classes and labels */
    size_t nc = stage_out_count(&m->light, m->light.logits);
    if (nc < 1 || nc > BN_MAX_CLASSES)
        return bn_load_fail(L, BN_ERR_FORMAT, "light: logits layer has %zu outputs (1..%d classes)", nc,
                            BN_MAX_CLASSES);
    if (stage_out_count(&m->spec, m->spec.logits) != nc)
        return bn_load_fail(L, BN_ERR_FORMAT, "specialist: logits layer has %zu outputs, light has %zu",
                            stage_out_count(&m->spec, m->spec.logits), nc);
    info->num_classes = (int)nc;
    json_t *jl = json_object_get(arch, "labels");
    if (!json_is_array(jl) || json_array_size(jl) != nc)
        return bn_load_fail(L, BN_ERR_FORMAT,
                            "basisnet metadata: field 'labels' must be an array of %zu strings", nc);
    m->labels = calloc(nc, sizeof *m->labels);
    if (!m->labels)
        return BN_ERR_NOMEM;
    for (size_t i = 0; i < nc; i++) {
        json_t *s = json_array_get(jl, i);
        if (!json_is_string(s) || !json_string_value(s)[0] || strlen(json_string_value(s)) >= BN_LABEL_MAX)
            return bn_load_fail(L, BN_ERR_FORMAT, "basisnet metadata: label %zu must be a string of 1..%d bytes",
                                i, BN_LABEL_MAX - 1);
        m->labels[i] = json_string_value(s);
    }
    info->labels = m->labels;

    /* synthesized layers: the order defines alpha's rows */
    json_t *jsl = json_object_get(arch, "synth_layers");
    if (!json_is_array(jsl) || json_array_size(jsl) < 1 || json_array_size(jsl) > (size_t)m->spec.n)
        return bn_load_fail(L, BN_ERR_FORMAT,
                            "basisnet metadata: field 'synth_layers' must be an array of 1..%d layer names",
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
        int i = json_is_string(s) ? bn_load_find_layer(&m->spec, m->spec.n, json_string_value(s)) : -2;
        if (i < 0 || !m->spec.layers[i].synth || m->spec.layers[i].synth_index >= 0)
            return bn_load_fail(L, BN_ERR_FORMAT,
                                "synth_layers[%d] must name a distinct specialist layer with \"synth\": true", l);
        m->spec.layers[i].synth_index = l;
        m->synth_layer[l] = i;
        info->madds_synth += (uint64_t)N * m->spec.layers[i].wcount;
    }
    for (int i = 0; i < m->spec.n; i++)
        if (m->spec.layers[i].synth && m->spec.layers[i].synth_index < 0)
            return bn_load_fail(L, BN_ERR_FORMAT, "specialist layer '%s' is synthesized but not in synth_layers",
                                m->spec.layers[i].name);
    size_t ncoef = stage_out_count(&m->light, m->light.coeffs);
    if (ncoef != (size_t)nl * (size_t)N)
        return bn_load_fail(L, BN_ERR_FORMAT, "light: coeffs layer has %zu outputs, expected L*N = %d*%d",
                            ncoef, nl, N);

    /* no tensor may go unused */
    for (int i = 0; i < m->st.n_tensors; i++)
        if (!L->used[i])
            return bn_load_fail(L, BN_ERR_FORMAT, "tensor '%s' is not used by the architecture",
                                m->st.tensors[i].name);

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

    if ((st = bn_load_materialize_stage(L, &m->light)) || (st = bn_load_materialize_stage(L, &m->spec)))
        return st;
    return BN_OK;
}

/* CRC-32 (zlib's, the IEEE 802.3 polynomial; Python's zlib.crc32) of the whole data
 * section, stored by the exporter as 8 hex digits in __metadata__["data_crc32"]. */
static bn_status verify_checksum(loader *L)
{
    bn_model *m = L->m;
    json_t *v = m->st.metadata ? json_object_get(m->st.metadata, BN_CHECKSUM_KEY) : NULL;
    if (!v)
        return BN_OK;
    const char *s = json_string_value(v);
    char *end = NULL;
    unsigned long want = strtoul(s, &end, 16);
    if (strlen(s) != 8 || strspn(s, "0123456789abcdefABCDEF") != 8 || *end)
        return bn_load_fail(L, BN_ERR_FORMAT, "'__metadata__' field '" BN_CHECKSUM_KEY
                            "' must be 8 hex digits, not '%.16s'", s);
    uint32_t got = (uint32_t)crc32_z(0L, m->st.data, m->st.data_size);
    if (got != (uint32_t)want)
        return bn_load_fail(L, BN_ERR_FORMAT,
                            "data section checksum mismatch: " BN_CHECKSUM_KEY " %08lx in the metadata, "
                            "the %zu data bytes hash to %08x (the file is damaged or was changed "
                            "after export)", want, m->st.data_size, (unsigned)got);
    m->info.data_checksum = 1;
    m->info.data_crc32 = got;
    return BN_OK;
}

static bn_status open_common(bn_model *m, const uint8_t *buf, size_t size, char *err, size_t errlen)
{
    loader L = {.m = m, .err = err, .errlen = errlen};
    bn_status st = st_parse(buf, size, m->fname, &m->st, err, errlen);
    if (st)
        return st;
    if ((st = verify_checksum(&L)))
        return st;
    L.used = calloc((size_t)m->st.n_tensors + 1, 1);
    if (!L.used)
        return BN_ERR_NOMEM;
    st = parse_arch(&L);
    free(L.used);
    if (st == BN_ERR_NOMEM)
        bn_set_err(err, errlen, "%s: out of memory while loading", m->fname);
    /* Every weight is a copy now (model_weights.c): the caller's bytes may go. */
    for (int i = 0; i < m->st.n_tensors; i++)
        m->st.tensors[i].data = NULL;
    m->st.data = NULL;
    if (st == BN_OK && !m->info.data_checksum)
        BN_LOGW("engine", "%s: no '" BN_CHECKSUM_KEY "' in the metadata: the weights' integrity is "
                "not verified (re-export the model, or add it with tools/train/add_checksum.py)",
                m->fname);
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

/* The whole file into memory: the model must not depend on the file once it is loaded
 * (a file replaced in place, e.g. by cp, would change or vanish under a mapping). A file
 * that shrinks while it is read is validated as what was read. */
static bn_status read_file(int fd, const char *path, size_t size, uint8_t **out, size_t *got,
                           char *err, size_t errlen)
{
    /* A large file's buffer is asked for in transparent huge pages: faulting 70 MB in in
     * 4 KiB pages costs more than reading it; for a few MB the compaction a huge page may
     * need costs more than the faults (docs/engine.md, "Loading and validation"). */
    const size_t huge = 2u << 20;
    uint8_t *buf = size >= 8 * huge ? aligned_alloc(huge, (size + huge - 1) / huge * huge)
                                    : malloc(size ? size : 1);
    if (!buf) {
        bn_set_err(err, errlen, "%s: out of memory for its %zu bytes", path, size);
        return BN_ERR_NOMEM;
    }
    if (size >= 8 * huge)
        madvise(buf, size, MADV_HUGEPAGE);
    size_t n = 0;
    while (n < size) {
        ssize_t r = read(fd, buf + n, size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            bn_set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            free(buf);
            return BN_ERR_IO;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *out = buf;
    *got = n;
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
    uint8_t *buf = NULL;
    size_t size = 0;
    bn_status st = read_file(fd, path, (size_t)sb.st_size, &buf, &size, err, errlen);
    close(fd);
    if (st)
        return st;
    bn_model *m = model_alloc(path);
    if (!m) {
        free(buf);
        return BN_ERR_NOMEM;
    }
    st = open_common(m, buf, size, err, errlen);
    free(buf);
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
    free(m->fname);
    free(m);
}

const bn_model_info *bn_model_get_info(const bn_model *m) { return m ? &m->info : NULL; }
