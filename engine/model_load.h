/* The model loader's parts (not a public interface):
 *   model.c         the file and the architecture document: input, labels, synthesized
 *                   layers, accuracy and calibration; the public bn_model_* calls
 *   model_layers.c  one stage's layers from the document: fields, shapes, inputs, MAdds
 *   model_weights.c each tensor checked against the architecture, the weights repacked
 *                   into the engine's layout, and the passes over the bound weights (basis
 *                   Gram matrices, residual adds fused into the conv before them) */
#ifndef BN_MODEL_LOAD_H
#define BN_MODEL_LOAD_H

#include <jansson.h>
#include <stdint.h>

#include "model.h"

/* __metadata__ key of the data section's CRC-32, 8 hex digits (docs/model-format.md). */
#define BN_CHECKSUM_KEY "data_crc32"

typedef struct {
    bn_model *m;
    char *err;
    size_t errlen;
    unsigned char *used;    /* per tensor of m->st */
} loader;

/* Writes "FILE: message" to the loader's error buffer and returns st. */
__attribute__((format(printf, 3, 4))) bn_status bn_load_fail(loader *L, bn_status st, const char *fmt, ...);

/* model_layers.c */
/* o[key] as an integer in [lo, hi]; what names the object in the message. */
bn_status bn_load_get_int(loader *L, json_t *o, const char *what, const char *key, long lo, long hi,
                          int *out);
/* Index of the layer called name among the stage's first upto layers, or -2. */
int bn_load_find_layer(const bn_stage_def *sd, int upto, const char *name);
/* arch[sname]: its layers (shapes, inputs, MAdds, parameters; tensors checked, not yet
 * bound), its logits and, for the light stage, its coeffs layer. */
bn_status bn_load_parse_stage(loader *L, json_t *arch, const char *sname, bn_stage_def *sd,
                              int num_bases, int is_spec, const bn_stage_def *other);

/* model_weights.c */
/* Checks that tensor "lname.suffix" exists with this shape, a supported dtype and finite
 * elements, and marks it used. */
bn_status bn_load_want_tensor(loader *L, const char *lname, const char *suffix, int ndim,
                              const int64_t *shape, const st_tensor **out);
/* Pulls every layer's weights into the engine's layout once validation has passed. */
bn_status bn_load_materialize_stage(loader *L, bn_stage_def *sd);

#endif
