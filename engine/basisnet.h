/* libbasisnet: two-stage BasisNet inference on the CPU.
 *
 * A bn_model is immutable after bn_model_open (weights copied into its own memory: the
 * file may be replaced or removed once it is open) and may be shared by threads. A
 * bn_session belongs to one thread at a time; every buffer the forward pass needs is
 * allocated in bn_session_new, so the run/classify calls allocate nothing. No GStreamer,
 * no sockets; logging goes through bn_log (see bn_log.h). */
#ifndef BASISNET_H
#define BASISNET_H

#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"

/* The project's release: basisnetd, basisnetctl and basisnet print it (--version). */
#define BASISNET_VERSION "0.1.0"

#define BN_MAX_CLASSES 1000
#define BN_LABEL_MAX 64

typedef struct bn_model bn_model;
typedef struct bn_session bn_session;

typedef enum { BN_STAGE_LIGHT = 0, BN_STAGE_SPECIALIST = 1 } bn_stage;

typedef struct {
    const char *name;           /* metadata "name" */
    int channels, height, width;        /* specialist (full) input, HWC 8-bit */
    int light_height, light_width;
    int num_classes;
    const char *const *labels;  /* num_classes strings, owned by the model */
    int num_bases;              /* N */
    int num_synth_layers;       /* L; alpha has L*N values */
    uint64_t madds_light, madds_specialist, madds_synth; /* computed by the engine */
    uint64_t params_light, params_specialist;           /* weights (bases count N times) */
    /* informational metadata, NaN / 0 / NULL when the file has none */
    double acc_test_full, acc_test_light, acc_threshold, acc_test_early_exit, acc_exit_share;
    const float *val_light_confidence; /* sorted ascending, for the budget controller */
    int n_val_light_confidence;
    const char *metadata_json;  /* the whole "basisnet" metadata document */
    int data_checksum;          /* 1: the file's data_crc32 was verified at load; 0: it has none */
    uint32_t data_crc32;        /* that checksum (when data_checksum) */
} bn_model_info;

/* Opens and validates a model file: reads it whole and verifies the data section's CRC-32
 * when the metadata has one (without one it loads with a warning through bn_log). On
 * failure returns a code (BN_ERR_IO, BN_ERR_FORMAT, BN_ERR_UNSUPPORTED, BN_ERR_NOMEM) and
 * writes a message naming the file and the field or tensor at fault into err (if
 * err != NULL). Never aborts on bad input. */
bn_status bn_model_open(const char *path, bn_model **out, char *err, size_t errlen);
/* Same, from a memory buffer (fuzzing, tests); the model keeps no pointer into it. */
bn_status bn_model_open_buffer(const void *data, size_t size, const char *name, bn_model **out,
                               char *err, size_t errlen);
void bn_model_close(bn_model *model);
const bn_model_info *bn_model_get_info(const bn_model *model);

typedef struct {
    int threads;    /* engine threads for this session (its own pool, caller included) and
                     * for OpenBLAS's im2col convolutions; 0 = 1 */
    float synth_reuse; /* 0 = off; else a synthesized layer whose weights would change by at
                        * most this fraction (||W_new - W_last|| <= synth_reuse * ||W_last||,
                        * Frobenius, exact from the bases' Gram matrix) keeps W_last */
} bn_session_params;

/* The kernel set the engine runs ("generic", "avx2", "avx512"): the best this CPU supports,
 * unless the environment variable BN_CPU names another (docs/engine.md). */
const char *bn_engine_kernels(void);

bn_status bn_session_new(const bn_model *model, bn_session_params params, bn_session **out,
                         char *err, size_t errlen);
void bn_session_free(bn_session *session);
/* Bytes the session allocated (activations, scratch, synthesized weights). */
size_t bn_session_bytes(const bn_session *session);

typedef struct {
    int class_id;               /* the answer */
    float score;                /* its softmax probability */
    bn_stage stage;             /* which stage answered */
    int light_class;
    float light_score;          /* max softmax of the lightweight model */
    const float *probs;         /* num_classes probabilities of the answering stage, owned by the session */
    const float *alpha;         /* L*N coefficients (valid after the light stage), owned by the session */
    uint64_t ns_light, ns_synth, ns_specialist; /* CLOCK_MONOTONIC ns per stage; 0 if not run
                                                 * (ns_synth with threads > 1: the time the
                                                 * convolutions waited for synthesis) */
    uint64_t madds;             /* multiply-adds spent on this input (light + synth + specialist) */
    int synth_layers, synth_reused; /* specialist runs: layers synthesized / kept (synth_reuse) */
} bn_result;

/* Stage 1: preprocess the image (HWC, 8-bit, exactly channels x height x width of the model,
 * row stride in bytes) and run the lightweight model. Fills class/score/stage as the light
 * answer, light_*, alpha, ns_light, madds. */
bn_status bn_run_light(bn_session *s, const uint8_t *image, size_t stride, bn_result *res);
/* Stage 2 (after bn_run_light on the same session): synthesize the specialist's weights from
 * alpha and run it on the full-resolution input; updates class/score/stage/probs, ns_synth,
 * ns_specialist, madds. It reads the image given to bn_run_light (normalized only now, and
 * counted in ns_specialist), which must still be there, unchanged. */
bn_status bn_run_specialist(bn_session *s, bn_result *res);
/* Both stages: the specialist runs only when light_score < threshold. threshold > 1 always
 * runs the specialist; threshold <= 0 never does. */
bn_status bn_classify(bn_session *s, const uint8_t *image, size_t stride, float threshold,
                      bn_result *res);

#endif
