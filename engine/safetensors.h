/* safetensors container parser: header length, JSON header, dtypes, shapes, offsets and
 * overlaps checked against the buffer; no tensor data is copied. Used by the model loader
 * and by the parity test for golden files. */
#ifndef BN_SAFETENSORS_H
#define BN_SAFETENSORS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"

#define ST_MAX_DIMS 5
#define ST_MAX_HEADER (16u << 20)

typedef enum { ST_F32 = 0, ST_F16, ST_U8 } st_dtype;

typedef struct {
    const char *name;           /* owned by the st_file's JSON */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t count;               /* product of shape */
    size_t begin, end;          /* byte range relative to the data section */
    const uint8_t *data;        /* buffer + 8 + header + begin (may be unaligned) */
} st_tensor;

typedef struct {
    json_t *root;               /* the parsed header */
    json_t *metadata;           /* borrowed "__metadata__" object, or NULL */
    st_tensor *tensors;
    int n_tensors;
    const uint8_t *data;        /* the data section: buffer + 8 + header length */
    size_t data_size;
} st_file;

/* Parses and validates the container; error messages start with fname. */
bn_status st_parse(const uint8_t *buf, size_t size, const char *fname, st_file *out, char *err,
                   size_t errlen);
void st_free(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
int st_find_index(const st_file *f, const char *name);
const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);
/* Formats "[a,b,c]" into buf. */
void st_shape_str(const int64_t *shape, int ndim, char *buf, size_t len);
/* Reads element i of a F32/F16 tensor as float (handles unaligned data). */
float st_get_f32(const st_tensor *t, size_t i);
/* IEEE half -> float. */
float st_half_to_float(uint16_t h);

/* Error helper shared by the engine's loaders: snprintf into err when err != NULL. */
void bn_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
