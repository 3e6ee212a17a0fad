/* Images for the toolbox: PNG / JPEG decoded into gray or RGB, then converted to a model's
 * channels and input size (image.c). Shared by basisnet classify and eval. */
#ifndef BN_TOOL_IMAGE_H
#define BN_TOOL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "basisnet.h"

typedef struct {
    uint8_t *px; /* (h, w, c) 8-bit, rows packed */
    int w, h, c;
} image;

/* Decodes PNG or JPEG (by magic bytes) into gray (want_c == 1) or RGB; im->px is malloc'd.
 * 0, or -1 with a message naming the file in err. */
int load_image(const char *path, int want_c, image *im, char *err, size_t errlen);
/* A malloc'd copy of im in the model's channels (BT.601 luma for RGB -> gray) and input size
 * (area average when shrinking, bilinear when enlarging); NULL when out of memory. */
uint8_t *fit_image(const image *im, const bn_model_info *in);

#endif
