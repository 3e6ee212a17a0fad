/* Model loader and session behaviour: every class of malformed file is refused with the
 * right status and a message naming the file and the field or tensor; a valid model
 * reports its architecture; its checksum is verified; once open it does not depend on its
 * file; sessions allocate nothing per classification and honour the early-exit threshold. Runs from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basisnet.h"
#include "bn_log.h"
#include "engine_internal.h"

#define TINY "tests/fixtures/random-tiny.bnm"
#define BAD "tests/fixtures/bad-models/"

static const struct {
    const char *file;
    bn_status status;
    const char *message; /* after "<path>: " */
} bad_cases[] = {
    {"short.bnm", BN_ERR_FORMAT, "file is 3 bytes, too short for a safetensors header"},
    {"header-length.bnm", BN_ERR_FORMAT, "header length 1099511627776 is invalid"},
    {"bad-json.bnm", BN_ERR_FORMAT, "header JSON: "},
    {"not-object.bnm", BN_ERR_FORMAT, "header JSON is not an object"},
    {"duplicate-key.bnm", BN_ERR_FORMAT, "header JSON: duplicate object key near '\"l.c0.weight\"'"},
    {"truncated.bnm", BN_ERR_FORMAT, "tensor 's.b2.dw.bases': data_offsets [20776,30376] outside the data section"},
    {"bad-dtype.bnm", BN_ERR_UNSUPPORTED, "tensor 'l.c0.bias': dtype 'F64' is not supported"},
    {"u8-weight.bnm", BN_ERR_UNSUPPORTED, "tensor 'l.c0.bias': dtype U8 is only allowed in golden files"},
    {"f16-weight.bnm", BN_ERR_UNSUPPORTED, "tensor 'l.c0.bias': dtype F16 is only supported for '*.bases'"},
    {"size-mismatch.bnm", BN_ERR_FORMAT, "tensor 'l.c0.bias': data_offsets span 32 bytes but shape x F32 needs 28"},
    {"bad-shape-field.bnm", BN_ERR_FORMAT, "tensor 'l.c0.bias': shape dimension 1 is not a positive integer"},
    {"wrong-shape.bnm", BN_ERR_FORMAT,
     "tensor 's.b1.proj.bases': shape [4,16,12,1,1] does not match the architecture's [4,12,16,1,1]"},
    {"overlap.bnm", BN_ERR_FORMAT, "tensors 'l.c0.bias' and 's.stem.bias' overlap in the data section"},
    {"missing-tensor.bnm", BN_ERR_FORMAT, "tensor 's.b2.se.fc2.bias' is missing (needed by layer 's.b2.se')"},
    {"extra-tensor.bnm", BN_ERR_FORMAT, "tensor 'extra.weight' is not used by the architecture"},
    {"nan-weight.bnm", BN_ERR_FORMAT, "tensor 's.b1.dw.bases': element 1 is NaN or Inf"},
    {"no-metadata.bnm", BN_ERR_FORMAT, "'__metadata__' has no 'basisnet' document"},
    {"metadata-not-string.bnm", BN_ERR_FORMAT, "'__metadata__' field 'seed' is not a string"},
    {"arch-not-json.bnm", BN_ERR_FORMAT, "basisnet metadata JSON: "},
    {"bad-version.bnm", BN_ERR_UNSUPPORTED, "basisnet metadata: format_version 2 is not supported"},
    {"unknown-op.bnm", BN_ERR_UNSUPPORTED, "specialist layer 's.b0.dw': op 'conv3d' is not supported"},
    {"unknown-act.bnm", BN_ERR_UNSUPPORTED, "specialist layer 's.last': activation 'gelu' in field 'act' is not supported"},
    {"wrong-in.bnm", BN_ERR_FORMAT, "specialist layer 's.last': field 'in' is 13 but its input has 12 channels"},
    {"bad-kernel.bnm", BN_ERR_FORMAT, "specialist layer 's.b1.dw': field 'kernel' must be an array of 2 integers"},
    {"bad-input-ref.bnm", BN_ERR_FORMAT,
     "specialist layer 's.b0.add': field 'inputs' names 's.nowhere', which is not an earlier layer"},
    {"bad-labels.bnm", BN_ERR_FORMAT, "basisnet metadata: field 'labels' must be an array of 10 strings"},
    {"bad-synth-layers.bnm", BN_ERR_FORMAT, "synth_layers[6] must name a distinct specialist layer"},
    {"bad-resize.bnm", BN_ERR_UNSUPPORTED, "input.light: field 'resize' must be 'avgpool' or 'bilinear'"},
    {"bad-std.bnm", BN_ERR_FORMAT, "input: field 'std' element 0 must be a finite number > 0"},
    {"bad-num-bases.bnm", BN_ERR_FORMAT, "basisnet metadata: field 'num_bases' must be an integer in [1, 64]"},
    /* 8 bytes of a weight overwritten with finite values: only the checksum can tell */
    {"checksum-mismatch.bnm", BN_ERR_FORMAT,
     "data section checksum mismatch: data_crc32 2b387608 in the metadata, the 43616 data bytes hash to "},
    {"bad-checksum-field.bnm", BN_ERR_FORMAT, "'__metadata__' field 'data_crc32' must be 8 hex digits, not 'x2b387608'"},
};

static void test_bad_models(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char path[256], err[512] = "", want[640];
        snprintf(path, sizeof path, BAD "%s", bad_cases[i].file);
        bn_model *m = (bn_model *)&path; /* must be reset to NULL on failure */
        bn_status st = bn_model_open(path, &m, err, sizeof err);
        snprintf(want, sizeof want, "%s: %s", path, bad_cases[i].message);
        if (st != bad_cases[i].status || strncmp(err, want, strlen(want)) != 0)
            fail_msg("%s: got %s \"%s\", want %s \"%s...\"", bad_cases[i].file, bn_status_str(st), err,
                     bn_status_str(bad_cases[i].status), want);
        assert_null(m);
    }
}

static void test_io_errors(void **state)
{
    (void)state;
    char err[256] = "";
    bn_model *m;
    assert_int_equal(bn_model_open("tests/fixtures/bad-models/no-such.bnm", &m, err, sizeof err), BN_ERR_IO);
    assert_string_equal(err, "tests/fixtures/bad-models/no-such.bnm: cannot open: No such file or directory");
    assert_int_equal(bn_model_open("tests/fixtures", &m, err, sizeof err), BN_ERR_IO);
    assert_string_equal(err, "tests/fixtures: not a regular file");
    assert_int_equal(bn_model_open(NULL, &m, err, sizeof err), BN_ERR_INVALID_ARG);
}

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* Every prefix of a valid file is refused (never crashes, never loads). */
static void test_truncations(void **state)
{
    (void)state;
    size_t size;
    uint8_t *buf = read_all(TINY, &size);
    int refused = 0;
    for (size_t n = 0; n < size; n += (n < 64 ? 1 : 61)) {
        bn_model *m = NULL;
        char err[256];
        bn_status st = bn_model_open_buffer(buf, n, "cut.bnm", &m, err, sizeof err);
        assert_int_not_equal(st, BN_OK);
        assert_null(m);
        assert_memory_equal(err, "cut.bnm: ", 9);
        refused++;
    }
    bn_model *m = NULL;
    assert_int_equal(bn_model_open_buffer(buf, size, "whole.bnm", &m, NULL, 0), BN_OK);
    bn_model_close(m);
    assert_true(refused > 100);
    free(buf);
}

typedef struct {
    int warnings;
    char last[512];
} log_sink;

static void sink_fn(bn_log_level level, const char *module, const char *msg, void *user)
{
    log_sink *k = user;
    (void)module;
    if (level == BN_LOG_WARN) {
        k->warnings++;
        snprintf(k->last, sizeof k->last, "%s", msg);
    }
}

/* The exporter's checksum is verified (and reported); any flipped bit in the data section is
 * refused; a file without a checksum loads, with one warning naming it. */
static void test_checksum(void **state)
{
    (void)state;
    char err[512];
    bn_model *m;
    log_sink sink = {0};
    bn_log_set_callback(sink_fn, &sink);
    assert_int_equal(bn_model_open(TINY, &m, err, sizeof err), BN_OK);
    assert_int_equal(bn_model_get_info(m)->data_checksum, 1);
    assert_int_equal(bn_model_get_info(m)->data_crc32, 0x2b387608u);
    assert_int_equal(sink.warnings, 0);
    bn_model_close(m);

    assert_int_equal(bn_model_open(BAD "ok-no-checksum.bnm", &m, err, sizeof err), BN_OK);
    assert_int_equal(bn_model_get_info(m)->data_checksum, 0);
    assert_int_equal(sink.warnings, 1);
    assert_non_null(strstr(sink.last, BAD "ok-no-checksum.bnm: no 'data_crc32' in the metadata"));
    bn_model_close(m);
    bn_log_set_callback(NULL, NULL);

    size_t size;
    uint8_t *buf = read_all(TINY, &size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    int refused = 0;
    for (size_t off = 8 + hlen; off < size; off += 97) {
        buf[off] ^= 0x10;
        m = NULL;
        bn_status st = bn_model_open_buffer(buf, size, "flip.bnm", &m, err, sizeof err);
        buf[off] ^= 0x10;
        if (st != BN_ERR_FORMAT || !strstr(err, "flip.bnm: data section checksum mismatch"))
            fail_msg("bit flipped at byte %zu: got %s \"%s\"", off, bn_status_str(st), err);
        assert_null(m);
        refused++;
    }
    assert_true(refused > 400);
    free(buf);
}

/* Once open, a model does not depend on its file: the file truncated and rewritten with
 * garbage (as `cp` over it does), or the buffer freed, changes nothing it computes. */
static void make_image(uint8_t *img, int n, unsigned seed);

static void test_file_replaced(void **state)
{
    (void)state;
    char err[512], path[] = "/tmp/bn-model-replaced-XXXXXX";
    size_t size;
    uint8_t *buf = read_all(TINY, &size);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, size), (ssize_t)size);
    bn_model *fm, *bm, *ref;
    assert_int_equal(bn_model_open(path, &fm, err, sizeof err), BN_OK);
    assert_int_equal(bn_model_open_buffer(buf, size, "buf.bnm", &bm, err, sizeof err), BN_OK);
    assert_int_equal(bn_model_open(TINY, &ref, err, sizeof err), BN_OK);
    assert_int_equal(ftruncate(fd, 0), 0);      /* a mapping of it would now raise SIGBUS */
    memset(buf, 0xff, size);
    assert_int_equal(pwrite(fd, buf, 4096, 0), 4096);
    close(fd);
    unlink(path);
    free(buf);

    uint8_t img[28 * 28];
    make_image(img, 28 * 28, 3);
    bn_model *models[3] = {ref, fm, bm};
    bn_result r[3];
    bn_session *s[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bn_session_new(models[i], (bn_session_params){.threads = 1}, &s[i], err, sizeof err),
                         BN_OK);
        assert_int_equal(bn_classify(s[i], img, 28, 1.5f, &r[i]), BN_OK);
    }
    for (int i = 1; i < 3; i++) {
        assert_int_equal(r[i].class_id, r[0].class_id);
        assert_memory_equal(r[i].probs, r[0].probs, sizeof(float) * (size_t)bn_model_get_info(ref)->num_classes);
    }
    assert_string_equal(bn_model_get_info(fm)->name, "random-tiny");
    for (int i = 0; i < 3; i++) {
        bn_session_free(s[i]);
        bn_model_close(models[i]);
    }
}

static void test_info(void **state)
{
    (void)state;
    char err[256];
    bn_model *m;
    assert_int_equal(bn_model_open(TINY, &m, err, sizeof err), BN_OK);
    const bn_model_info *in = bn_model_get_info(m);
    assert_string_equal(in->name, "random-tiny");
    assert_int_equal(in->channels, 1);
    assert_int_equal(in->height, 28);
    assert_int_equal(in->width, 28);
    assert_int_equal(in->light_height, 14);
    assert_int_equal(in->num_classes, 10);
    assert_string_equal(in->labels[0], "T-shirt/top");
    assert_string_equal(in->labels[9], "Ankle boot");
    assert_int_equal(in->num_bases, 4);
    assert_int_equal(in->num_synth_layers, 7);
    /* the exporter computed these with the same rule (docs/model-format.md) */
    assert_int_equal(in->madds_light, 57248);
    assert_int_equal(in->madds_specialist, 159528);
    assert_int_equal(in->madds_synth, 7840);
    /* parameters: 52808-byte file, F32 only: all tensor elements of the two stages */
    assert_int_equal((in->params_light + in->params_specialist) * 4, 43616);
    assert_true(in->n_val_light_confidence > 0);
    for (int i = 1; i < in->n_val_light_confidence; i++)
        assert_true(in->val_light_confidence[i - 1] <= in->val_light_confidence[i]);
    assert_true(isnan(in->acc_test_full)); /* random fixture: no accuracy */
    assert_non_null(strstr(in->metadata_json, "\"synth_layers\""));
    bn_model_close(m);
}

static void make_image(uint8_t *img, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        img[i] = (uint8_t)(seed >> 16);
    }
}

static void test_session(void **state)
{
    (void)state;
    char err[256];
    bn_model *m;
    bn_session *s;
    assert_int_equal(bn_model_open(TINY, &m, err, sizeof err), BN_OK);
    assert_int_equal(bn_session_new(m, (bn_session_params){.threads = 0}, &s, err, sizeof err), BN_OK);
    assert_true(bn_session_bytes(s) > 28 * 28 * 4);
    assert_true(bn_session_bytes(s) < 1 << 20);
    uint8_t img[28 * 28], padded[28 * 40];
    make_image(img, 28 * 28, 7);
    bn_result r, r2;

    /* threshold > 1: the specialist always answers */
    assert_int_equal(bn_classify(s, img, 28, 1.5f, &r), BN_OK);
    assert_int_equal(r.stage, BN_STAGE_SPECIALIST);
    assert_true(r.ns_light > 0 && r.ns_specialist > 0);
    const bn_model_info *in = bn_model_get_info(m);
    assert_int_equal(r.madds, in->madds_light + in->madds_synth + in->madds_specialist);
    float sum = 0;
    for (int i = 0; i < in->num_classes; i++)
        sum += r.probs[i];
    assert_float_equal(sum, 1.0f, 1e-5);
    for (int l = 0; l < in->num_synth_layers; l++) {
        float a = 0;
        for (int k = 0; k < in->num_bases; k++)
            a += r.alpha[l * in->num_bases + k];
        assert_float_equal(a, 1.0f, 1e-5);
    }
    int spec_class = r.class_id;
    float spec_score = r.score;

    /* threshold 0: never */
    assert_int_equal(bn_classify(s, img, 28, 0.0f, &r), BN_OK);
    assert_int_equal(r.stage, BN_STAGE_LIGHT);
    assert_int_equal(r.ns_specialist, 0);
    assert_int_equal(r.madds, in->madds_light);
    assert_int_equal(r.class_id, r.light_class);

    /* a threshold just above / at the light score decides */
    assert_int_equal(bn_classify(s, img, 28, r.light_score, &r2), BN_OK);
    assert_int_equal(r2.stage, BN_STAGE_LIGHT);
    assert_int_equal(bn_classify(s, img, 28, nextafterf(r.light_score, 2.0f), &r2), BN_OK);
    assert_int_equal(r2.stage, BN_STAGE_SPECIALIST);

    /* a row stride larger than the width gives the same answer */
    memset(padded, 0xAA, sizeof padded);
    for (int y = 0; y < 28; y++)
        memcpy(padded + y * 40, img + y * 28, 28);
    assert_int_equal(bn_classify(s, padded, 40, 2.0f, &r2), BN_OK);
    assert_int_equal(r2.class_id, spec_class);
    assert_float_equal(r2.score, spec_score, 0);

    /* bad arguments */
    assert_int_equal(bn_run_light(s, img, 27, &r), BN_ERR_INVALID_ARG);
    bn_session *s2;
    assert_int_equal(bn_session_new(m, (bn_session_params){.threads = 1}, &s2, err, sizeof err), BN_OK);
    assert_int_equal(bn_run_specialist(s2, &r), BN_ERR_INVALID_ARG); /* light stage first */
    bn_session_free(s2);

    /* classify allocates nothing: the heap's in-use byte count does not move */
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 20; i++) {
        make_image(img, 28 * 28, (unsigned)i);
        assert_int_equal(bn_classify(s, img, 28, 2.0f, &r), BN_OK);
    }
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(before.uordblks, after.uordblks);
    assert_int_equal(before.hblks, after.hblks);

    bn_session_free(s);
    bn_model_close(m);
}

/* F16 bases load and give the F32 model's answer up to half-precision rounding. */
/* Synthesis reuse: off by default; a layer whose alpha would move its weights by at most
 * synth_reuse (relative) keeps them. Same image twice: every layer kept and the answer is
 * bit-identical to a session without reuse; a tiny tolerance keeps nothing when the image
 * changes; kept weights are the ones of the frame that synthesized them. */
static void test_synth_reuse(void **state)
{
    (void)state;
    char err[256];
    bn_model *m;
    assert_int_equal(bn_model_open(TINY, &m, err, sizeof err), BN_OK);
    const bn_model_info *in = bn_model_get_info(m);
    const int L = in->num_synth_layers, nc = in->num_classes;
    assert_true(L > 0);
    bn_session *off, *tiny, *loose;
    assert_int_equal(bn_session_new(m, (bn_session_params){.threads = 0}, &off, err, sizeof err), BN_OK);
    assert_int_equal(bn_session_new(m, (bn_session_params){.synth_reuse = 1e-7f}, &tiny, err, sizeof err), BN_OK);
    assert_int_equal(bn_session_new(m, (bn_session_params){.synth_reuse = 0.5f}, &loose, err, sizeof err), BN_OK);
    uint8_t a[28 * 28], b[28 * 28];
    make_image(a, sizeof a, 7);
    make_image(b, sizeof b, 1234);
    bn_result r, ra, rb;
    float pa[64], pb[64];
    assert_true(nc <= 64);

    assert_int_equal(bn_classify(off, a, 28, 1.5f, &ra), BN_OK);
    memcpy(pa, ra.probs, sizeof(float) * (size_t)nc);
    assert_int_equal(ra.synth_layers, L);
    assert_int_equal(ra.synth_reused, 0);
    assert_int_equal(bn_classify(off, a, 28, 1.5f, &ra), BN_OK);
    assert_int_equal(ra.synth_reused, 0); /* off: always synthesized */
    assert_int_equal(bn_classify(off, b, 28, 1.5f, &rb), BN_OK);
    memcpy(pb, rb.probs, sizeof(float) * (size_t)nc);

    for (int k = 0; k < 2; k++) {
        bn_session *s = k ? loose : tiny;
        assert_int_equal(bn_classify(s, a, 28, 1.5f, &r), BN_OK);
        assert_int_equal(r.synth_reused, 0); /* nothing to reuse yet */
        assert_int_equal(bn_classify(s, a, 28, 1.5f, &r), BN_OK);
        assert_int_equal(r.synth_reused, L);
        assert_memory_equal(r.probs, pa, sizeof(float) * (size_t)nc);
        assert_int_equal(bn_classify(s, b, 28, 1.5f, &r), BN_OK);
        if (k == 0) {
            assert_int_equal(r.synth_reused, 0);
            assert_memory_equal(r.probs, pb, sizeof(float) * (size_t)nc);
        }
        int kept_b = r.synth_reused;
        /* back to a: if every layer kept a's weights through b, a's answer is exact */
        assert_int_equal(bn_classify(s, a, 28, 1.5f, &r), BN_OK);
        if (kept_b == L) {
            assert_int_equal(r.synth_reused, L);
            assert_memory_equal(r.probs, pa, sizeof(float) * (size_t)nc);
        }
        printf("synth_reuse %g: image b kept %d of %d layers\n", k ? 0.5 : 1e-7, kept_b, L);
    }
    bn_session_free(off), bn_session_free(tiny), bn_session_free(loose);
    bn_model_close(m);
}

static void test_f16_bases(void **state)
{
    (void)state;
    char err[256];
    bn_model *m32, *m16;
    bn_session *s32, *s16;
    assert_int_equal(bn_model_open(TINY, &m32, err, sizeof err), BN_OK);
    if (bn_model_open(BAD "ok-f16-bases.bnm", &m16, err, sizeof err) != BN_OK)
        fail_msg("%s", err);
    assert_int_equal(bn_session_new(m32, (bn_session_params){.threads = 1}, &s32, err, sizeof err), BN_OK);
    assert_int_equal(bn_session_new(m16, (bn_session_params){.threads = 1}, &s16, err, sizeof err), BN_OK);
    uint8_t img[28 * 28];
    double max_err = 0;
    for (unsigned k = 0; k < 8; k++) {
        make_image(img, 28 * 28, 100 + k);
        bn_result a, b;
        assert_int_equal(bn_classify(s32, img, 28, 2.0f, &a), BN_OK);
        assert_int_equal(bn_classify(s16, img, 28, 2.0f, &b), BN_OK);
        const float *la = bn_session_logits(s32, BN_STAGE_SPECIALIST), *lb = bn_session_logits(s16, BN_STAGE_SPECIALIST);
        for (int i = 0; i < 10; i++)
            max_err = fmax(max_err, fabs(la[i] - lb[i]) / fmax(fabs(la[i]), 1.0));
    }
    printf("f16 bases: max rel logit difference to f32 %.3g\n", max_err);
    assert_true(max_err > 0);    /* the bases really were rounded */
    assert_true(max_err < 1e-2); /* half precision: ~1e-3 relative per weight */
    bn_session_free(s32);
    bn_session_free(s16);
    bn_model_close(m32);
    bn_model_close(m16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_models), cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_truncations), cmocka_unit_test(test_info),
        cmocka_unit_test(test_session), cmocka_unit_test(test_f16_bases),
        cmocka_unit_test(test_synth_reuse), cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_file_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
