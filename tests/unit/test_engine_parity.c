/* Parity of the C engine with PyTorch: golden vectors written by tools/train/export.py
 * (light logits, alpha, specialist logits for K inputs) must be reproduced within
 * max |c - t| / max(|t|, 1) <= 1e-4. Runs from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basisnet.h"
#include "cpu.h"
#include "engine_internal.h"
#include "safetensors.h"

#define TOL 1e-4

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static double rel_err(float c, float t)
{
    double d = fabs((double)c - (double)t), s = fabs((double)t);
    return d / (s > 1.0 ? s : 1.0);
}

/* Runs both stages on every golden input with a session of `threads` engine threads; asserts
 * the max error of each output. */
static void check_parity_threads(const char *model_path, const char *golden_path, int threads)
{
    char err[512] = "";
    bn_model *m = NULL;
    bn_status st = bn_model_open(model_path, &m, err, sizeof err);
    if (st != BN_OK)
        fail_msg("%s", err);
    const bn_model_info *info = bn_model_get_info(m);
    bn_session *s = NULL;
    assert_int_equal(bn_session_new(m, (bn_session_params){.threads = threads}, &s, err, sizeof err), BN_OK);

    size_t gsize = 0;
    uint8_t *gbuf = read_all(golden_path, &gsize);
    assert_non_null(gbuf);
    st_file g;
    st = st_parse(gbuf, gsize, golden_path, &g, err, sizeof err);
    if (st != BN_OK)
        fail_msg("%s", err);
    const st_tensor *in = st_find(&g, "input"), *ll = st_find(&g, "light_logits"),
                    *al = st_find(&g, "alpha"), *sl = st_find(&g, "specialist_logits");
    assert_non_null(in);
    assert_non_null(ll);
    assert_non_null(al);
    assert_non_null(sl);
    assert_int_equal(in->dtype, ST_U8);
    assert_int_equal(in->ndim, 4);
    const int K = (int)in->shape[0], nc = info->num_classes;
    const int LN = info->num_synth_layers * info->num_bases;
    assert_int_equal(in->shape[1], info->height);
    assert_int_equal(in->shape[2], info->width);
    assert_int_equal(in->shape[3], info->channels);
    assert_int_equal(ll->count, (size_t)K * nc);
    assert_int_equal(al->count, (size_t)K * LN);
    assert_int_equal(sl->count, (size_t)K * nc);
    assert_true(K >= 1);

    double e_light = 0, e_alpha = 0, e_spec = 0;
    const size_t img_bytes = (size_t)info->height * info->width * info->channels;
    for (int k = 0; k < K; k++) {
        bn_result r;
        assert_int_equal(bn_run_light(s, in->data + (size_t)k * img_bytes,
                                      (size_t)info->width * info->channels, &r), BN_OK);
        const float *lg = bn_session_logits(s, BN_STAGE_LIGHT);
        for (int i = 0; i < nc; i++)
            e_light = fmax(e_light, rel_err(lg[i], st_get_f32(ll, (size_t)k * nc + i)));
        for (int i = 0; i < LN; i++)
            e_alpha = fmax(e_alpha, rel_err(r.alpha[i], st_get_f32(al, (size_t)k * LN + i)));
        assert_int_equal(bn_run_specialist(s, &r), BN_OK);
        assert_int_equal(r.stage, BN_STAGE_SPECIALIST);
        const float *sg = bn_session_logits(s, BN_STAGE_SPECIALIST);
        for (int i = 0; i < nc; i++)
            e_spec = fmax(e_spec, rel_err(sg[i], st_get_f32(sl, (size_t)k * nc + i)));
        /* the reported answer is the argmax of the specialist's probabilities */
        for (int i = 0; i < nc; i++)
            assert_true(r.probs[i] <= r.score);
    }
    printf("parity %s, %d thread%s: K=%d max rel error light_logits %.3g, alpha %.3g, specialist_logits %.3g "
           "(tol %.0e)\n",
           model_path, threads, threads > 1 ? "s" : "", K, e_light, e_alpha, e_spec, TOL);
    assert_true(e_light <= TOL);
    assert_true(e_alpha <= TOL);
    assert_true(e_spec <= TOL);
    st_free(&g);
    free(gbuf);
    bn_session_free(s);
    bn_model_close(m);
}

/* A session with every pointwise -> depthwise pair run as a row-banded chain (engine/chain.h)
 * in bands of one row gives the same logits, bit for bit, as one run layer by layer: the
 * kernels are the same, only the order of the work changes. */
static void check_chains_identical(const char *model_path)
{
    char err[512] = "";
    bn_model *m = NULL;
    if (bn_model_open(model_path, &m, err, sizeof err) != BN_OK)
        fail_msg("%s", err);
    const bn_model_info *info = bn_model_get_info(m);
    bn_session *plain = NULL, *banded = NULL;
    setenv("BN_CHAIN", "0", 1);
    assert_int_equal(bn_session_new(m, (bn_session_params){.threads = 1}, &plain, err, sizeof err), BN_OK);
    unsetenv("BN_CHAIN");
    setenv("BN_CHAIN_MIN_KB", "0", 1);
    setenv("BN_BAND_KB", "1", 1);
    assert_int_equal(bn_session_new(m, (bn_session_params){.threads = 1}, &banded, err, sizeof err), BN_OK);
    unsetenv("BN_CHAIN_MIN_KB");
    unsetenv("BN_BAND_KB");
    assert_int_equal(bn_session_chains(plain, BN_STAGE_LIGHT) + bn_session_chains(plain, BN_STAGE_SPECIALIST), 0);
    const int chains = bn_session_chains(banded, BN_STAGE_LIGHT) + bn_session_chains(banded, BN_STAGE_SPECIALIST);
    assert_true(chains > 0);
    const size_t n = (size_t)info->height * info->width * info->channels;
    uint8_t *img = malloc(n);
    assert_non_null(img);
    uint32_t x = 12345;
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < n; i++)
            img[i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
        bn_result a, b;
        const size_t stride = (size_t)info->width * info->channels;
        /* the light logits stay those of the light stage after the specialist ran (it may
         * reuse the buffer they were computed in) */
        float light_only[BN_MAX_CLASSES];
        assert_true(info->num_classes <= BN_MAX_CLASSES);
        assert_int_equal(bn_run_light(banded, img, stride, &b), BN_OK);
        memcpy(light_only, bn_session_logits(banded, BN_STAGE_LIGHT), sizeof(float) * (size_t)info->num_classes);
        assert_int_equal(bn_classify(plain, img, stride, 2.0f, &a), BN_OK);
        assert_int_equal(bn_classify(banded, img, stride, 2.0f, &b), BN_OK);
        for (int st = 0; st < 2; st++)
            assert_memory_equal(bn_session_logits(plain, (bn_stage)st), bn_session_logits(banded, (bn_stage)st),
                                sizeof(float) * (size_t)info->num_classes);
        assert_memory_equal(light_only, bn_session_logits(banded, BN_STAGE_LIGHT),
                            sizeof(float) * (size_t)info->num_classes);
    }
    printf("chains %s (%s): %d chains, logits bit-identical to layer by layer\n", model_path,
           bn_isa_name(bn_kern_isa()), chains);
    free(img);
    bn_session_free(plain);
    bn_session_free(banded);
    bn_model_close(m);
}

/* Two and three threads answer bit for bit what one does, with synthesis reuse off (a
 * worker synthesizes the layers ahead of the convolutions, which split across the pool once
 * it is done) and on (the same image again keeps every layer: everything splits), and report
 * the same reuse; with the planned chains and with every pair chained in bands of one row
 * (each part of a split chain then runs several bands in a window of its own). */
static void check_threads_identical(const char *model_path)
{
    char err[512] = "";
    bn_model *m = NULL;
    if (bn_model_open(model_path, &m, err, sizeof err) != BN_OK)
        fail_msg("%s", err);
    const bn_model_info *info = bn_model_get_info(m);
    const size_t n = (size_t)info->height * info->width * info->channels;
    const size_t stride = (size_t)info->width * info->channels;
    uint8_t *img[2] = {malloc(n), malloc(n)};
    assert_true(img[0] && img[1]);
    uint32_t x = 777;
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < n; i++)
            img[k][i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
    setenv("BN_PAR_MIN_MADDS", "0", 1); /* split every layer that can be */
    for (int r = 0; r < 8; r++) {
        const float reuse = r & 1 ? 0.01f : 0.0f;
        const int threads = r & 2 ? 3 : 2, banded = r & 4;
        if (banded) {
            setenv("BN_CHAIN_MIN_KB", "0", 1);
            setenv("BN_BAND_KB", "1", 1);
        }
        bn_session *one = NULL, *two = NULL;
        assert_int_equal(bn_session_new(m, (bn_session_params){.threads = 1, .synth_reuse = reuse}, &one, err,
                                        sizeof err), BN_OK);
        assert_int_equal(bn_session_new(m, (bn_session_params){.threads = threads, .synth_reuse = reuse}, &two,
                                        err, sizeof err), BN_OK);
        unsetenv("BN_CHAIN_MIN_KB");
        unsetenv("BN_BAND_KB");
        if (banded)
            assert_true(bn_session_chains(two, BN_STAGE_LIGHT) + bn_session_chains(two, BN_STAGE_SPECIALIST) > 0);
        static const int frames[] = {0, 0, 1, 0};
        for (size_t f = 0; f < sizeof frames / sizeof frames[0]; f++) {
            bn_result a, b;
            assert_int_equal(bn_classify(one, img[frames[f]], stride, 2.0f, &a), BN_OK);
            assert_int_equal(bn_classify(two, img[frames[f]], stride, 2.0f, &b), BN_OK);
            assert_int_equal(a.synth_reused, b.synth_reused);
            if ((r & 1) && f == 1)
                assert_int_equal(b.synth_reused, b.synth_layers); /* the same image: all kept */
            for (int st = 0; st < 2; st++)
                assert_memory_equal(bn_session_logits(one, (bn_stage)st), bn_session_logits(two, (bn_stage)st),
                                    sizeof(float) * (size_t)info->num_classes);
        }
        bn_session_free(one);
        bn_session_free(two);
    }
    unsetenv("BN_PAR_MIN_MADDS");
    printf("threads %s (%s): 2 and 3 threads bit-identical to 1, synthesis reuse off and on, chains as planned "
           "and in bands of one row\n", model_path,
           bn_isa_name(bn_kern_isa()));
    free(img[0]);
    free(img[1]);
    bn_model_close(m);
}

/* One thread, then two (layers split across the session's worker pool). */
static void check_parity(const char *model_path, const char *golden_path)
{
    check_parity_threads(model_path, golden_path, 1);
    setenv("BN_PAR_MIN_MADDS", "0", 1); /* split every pointwise and depthwise layer */
    check_parity_threads(model_path, golden_path, 2);
    unsetenv("BN_PAR_MIN_MADDS");
    check_chains_identical(model_path);
    check_threads_identical(model_path);
}

static void test_random_tiny(void **state)
{
    (void)state;
    check_parity("tests/fixtures/random-tiny.bnm", "tests/fixtures/random-tiny.golden.safetensors");
}

static void test_shipped_model(void **state)
{
    (void)state;
    const char *m = "models/fmnist-basisnet.bnm", *g = "models/fmnist-basisnet.golden.safetensors";
    if (access(m, R_OK) != 0 || access(g, R_OK) != 0) {
        printf("parity: %s not present, skipped\n", m);
        skip();
    }
    check_parity(m, g);
}

/* Any other pair, e.g. the benchmark's paper-scale network (bench/engine/run.sh):
 * BN_PARITY_MODEL=X.bnm BN_PARITY_GOLDEN=X.golden.safetensors */
static void test_env_model(void **state)
{
    (void)state;
    const char *m = getenv("BN_PARITY_MODEL"), *g = getenv("BN_PARITY_GOLDEN");
    if (!m || !g)
        skip();
    check_parity(m, g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_tiny),
        cmocka_unit_test(test_shipped_model),
        cmocka_unit_test(test_env_model),
    };
    /* each kernel table this CPU can run (BN_CPU set: that one only, as the engine would) */
    int failed = 0, ran = 0;
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        if (getenv("BN_CPU") ? isa != (int)bn_kern_isa() : bn_kern_select((bn_isa)isa) != 0)
            continue;
        printf("parity with the %s kernels\n", bn_isa_name((bn_isa)isa));
        failed += cmocka_run_group_tests_name(bn_isa_name((bn_isa)isa), tests, NULL, NULL);
        ran++;
    }
    return ran == 0 ? 1 : failed;
}
