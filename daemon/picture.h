/* Pictures of a classified frame for the HTTP server: the model input scaled up by a whole
 * factor (nearest neighbour, so each input pixel stays a visible square), optionally with
 * the answer drawn on it in a built-in 5x7 bitmap font, encoded as JPEG with libjpeg-turbo.
 * Nothing here runs unless a picture is asked for. */
#ifndef BN_PICTURE_H
#define BN_PICTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"
#include "frame_slot.h"

#define PICTURE_SCALE_MAX 16
/* The automatic factor makes the shorter side at least this many pixels. */
#define PICTURE_AUTO_MIN_SIDE 200
#define PICTURE_QUALITY 85

typedef struct {
    bool overlay;               /* draw label, score and stage */
    int scale;                  /* 1..PICTURE_SCALE_MAX; 0: automatic */
} picture_opts;

/* The factor scale 0 picks for a width x height frame. */
int picture_auto_scale(int width, int height);

/* Encodes f (label: the name of f->class_id) as a baseline JPEG. *out is malloc'd. */
bn_status picture_jpeg(const frame_copy *f, const char *label, const picture_opts *o,
                       uint8_t **out, size_t *len, char *err, size_t errlen);

/* Draws text at (x, y) into an 8-bit image of the given channels, each font pixel a
 * fs x fs square of value v; characters outside printable ASCII draw as '?'. Clipped. */
void picture_draw_text(uint8_t *img, int w, int h, int channels, int x, int y, int fs,
                       uint8_t v, const char *text);
/* Width in pixels of text drawn at font scale fs. */
int picture_text_width(const char *text, int fs);

#endif
