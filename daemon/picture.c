/* Frame pictures (see picture.h): whole-factor nearest-neighbour scaling, the answer drawn in
 * a dark band at the top, and libjpeg-turbo's encoder writing to memory. */
#include "picture.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "infer.h"

/* The classic 5x7 LCD font, ASCII 32..126: five columns per glyph, bit 0 the top row
 * (bit 7 a descender row for g, j, p, q, y and the comma). */
static const uint8_t font5x7[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},
    {0x36, 0x49, 0x56, 0x20, 0x50}, {0x00, 0x08, 0x07, 0x03, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x2A, 0x1C, 0x7F, 0x1C, 0x2A}, {0x08, 0x08, 0x3E, 0x08, 0x08},
    {0x00, 0x80, 0x70, 0x30, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x00, 0x60, 0x60, 0x00},
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},
    {0x72, 0x49, 0x49, 0x49, 0x46}, {0x21, 0x41, 0x49, 0x4D, 0x33}, {0x18, 0x14, 0x12, 0x7F, 0x10},
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x31}, {0x41, 0x21, 0x11, 0x09, 0x07},
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x46, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x00, 0x14, 0x00, 0x00},
    {0x00, 0x40, 0x34, 0x00, 0x00}, {0x00, 0x08, 0x14, 0x22, 0x41}, {0x14, 0x14, 0x14, 0x14, 0x14},
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x59, 0x09, 0x06}, {0x3E, 0x41, 0x5D, 0x59, 0x4E},
    {0x7C, 0x12, 0x11, 0x12, 0x7C}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},
    {0x7F, 0x41, 0x41, 0x41, 0x3E}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01},
    {0x3E, 0x41, 0x41, 0x51, 0x73}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},
    {0x7F, 0x02, 0x1C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},
    {0x26, 0x49, 0x49, 0x49, 0x32}, {0x03, 0x01, 0x7F, 0x01, 0x03}, {0x3F, 0x40, 0x40, 0x40, 0x3F},
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63},
    {0x03, 0x04, 0x78, 0x04, 0x03}, {0x61, 0x59, 0x49, 0x4D, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x41},
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x41, 0x7F}, {0x04, 0x02, 0x01, 0x02, 0x04},
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x03, 0x07, 0x08, 0x00}, {0x20, 0x54, 0x54, 0x78, 0x40},
    {0x7F, 0x28, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x28}, {0x38, 0x44, 0x44, 0x28, 0x7F},
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x00, 0x08, 0x7E, 0x09, 0x02}, {0x18, 0xA4, 0xA4, 0x9C, 0x78},
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x20, 0x40, 0x40, 0x3D, 0x00},
    {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x78, 0x04, 0x78},
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0xFC, 0x18, 0x24, 0x24, 0x18},
    {0x18, 0x24, 0x24, 0x18, 0xFC}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x24},
    {0x04, 0x04, 0x3F, 0x44, 0x24}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C},
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x4C, 0x90, 0x90, 0x90, 0x7C},
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x77, 0x00, 0x00},
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x02, 0x01, 0x02, 0x04, 0x02},
};

#define GLYPH_ADVANCE 6     /* five columns and one of space */
#define GLYPH_ROWS 8        /* seven and the descender */

int picture_text_width(const char *text, int fs)
{
    int n = (int)strlen(text);
    return n > 0 ? (n * GLYPH_ADVANCE - 1) * fs : 0;
}

void picture_draw_text(uint8_t *img, int w, int h, int channels, int x, int y, int fs,
                       uint8_t v, const char *text)
{
    for (; *text; text++, x += GLYPH_ADVANCE * fs) {
        unsigned char ch = (unsigned char)*text;
        const uint8_t *g = font5x7[(ch >= 32 && ch <= 126 ? ch : '?') - 32];
        for (int col = 0; col < 5; col++)
            for (int row = 0; row < GLYPH_ROWS; row++) {
                if (!(g[col] >> row & 1))
                    continue;
                for (int dy = 0; dy < fs; dy++) {
                    int py = y + row * fs + dy;
                    if (py < 0 || py >= h)
                        continue;
                    for (int dx = 0; dx < fs; dx++) {
                        int px = x + col * fs + dx;
                        if (px < 0 || px >= w)
                            continue;
                        memset(img + ((size_t)py * (size_t)w + (size_t)px) * (size_t)channels,
                               v, (size_t)channels);
                    }
                }
            }
    }
}

int picture_auto_scale(int width, int height)
{
    int side = width < height ? width : height;
    if (side <= 0)
        return 1;
    int k = (PICTURE_AUTO_MIN_SIDE + side - 1) / side;
    return k < 1 ? 1 : k > PICTURE_SCALE_MAX ? PICTURE_SCALE_MAX : k;
}

static const char *stage_name(int stage)
{
    switch (stage) {
    case BN_STAGE_SPECIALIST: return "specialist";
    case INFER_STAGE_REUSE: return "reuse";
    default: return "light";
    }
}

/* The answer in a darkened band along the top: the label, then score and stage. The font
 * grows with the picture while both lines fit. */
static void draw_overlay(uint8_t *img, int w, int h, int c, const frame_copy *f, const char *label)
{
    char l1[80], l2[80];
    snprintf(l1, sizeof l1, "%.40s", label);
    snprintf(l2, sizeof l2, "%.3f %s", (double)f->score, stage_name(f->stage));
    int longest = picture_text_width(l1, 1) > picture_text_width(l2, 1)
                      ? picture_text_width(l1, 1)
                      : picture_text_width(l2, 1);
    int fs = 1;
    while (fs < 4 && longest * (fs + 1) + 8 <= w && (2 * GLYPH_ROWS + 3) * (fs + 1) <= h / 3)
        fs++;
    int band = (2 * GLYPH_ROWS + 3) * fs;
    if (band > h)
        band = h;
    for (int y = 0; y < band; y++) {
        uint8_t *p = img + (size_t)y * (size_t)w * (size_t)c;
        for (size_t i = 0; i < (size_t)w * (size_t)c; i++)
            p[i] = (uint8_t)(p[i] / 4);
    }
    picture_draw_text(img, w, h, c, 2 * fs, fs, fs, 255, l1);
    picture_draw_text(img, w, h, c, 2 * fs, (GLYPH_ROWS + 2) * fs, fs, 255, l2);
}

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_jpeg_error(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Only what stays unchanged after setjmp lives in this frame, so longjmp clobbers nothing. */
static bn_status encode(const uint8_t *img, int w, int h, int c, uint8_t **out, size_t *len,
                        char *err, size_t errlen)
{
    struct jpeg_compress_struct cinfo;
    jpeg_err je;
    unsigned char *buf = NULL;
    unsigned long blen = 0;
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = on_jpeg_error;
    if (setjmp(je.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buf);
        snprintf(err, errlen, "JPEG encoding failed: %s", je.msg);
        return BN_ERR_INTERNAL;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buf, &blen);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = c;
    cinfo.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, PICTURE_QUALITY, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(img + (size_t)cinfo.next_scanline * (size_t)w * (size_t)c);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buf;
    *len = blen;
    return BN_OK;
}

bn_status picture_jpeg(const frame_copy *f, const char *label, const picture_opts *o,
                       uint8_t **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    int k = o->scale > 0 ? o->scale : picture_auto_scale(f->width, f->height);
    int c = f->channels == 1 ? 1 : 3;
    if (f->channels != 1 && f->channels != 3) {
        snprintf(err, errlen, "cannot picture a %d-channel frame", f->channels);
        return BN_ERR_UNSUPPORTED;
    }
    int w = f->width * k, h = f->height * k;
    uint8_t *img = malloc((size_t)w * (size_t)h * (size_t)c);
    if (!img) {
        snprintf(err, errlen, "out of memory for a %dx%d picture", w, h);
        return BN_ERR_NOMEM;
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *src = f->data + (size_t)(y / k) * (size_t)f->width * (size_t)c;
        uint8_t *dst = img + (size_t)y * (size_t)w * (size_t)c;
        if (y % k) {
            memcpy(dst, dst - (size_t)w * (size_t)c, (size_t)w * (size_t)c);
            continue;
        }
        for (int x = 0; x < f->width; x++)
            for (int r = 0; r < k; r++)
                memcpy(dst + ((size_t)x * (size_t)k + (size_t)r) * (size_t)c,
                       src + (size_t)x * (size_t)c, (size_t)c);
    }
    if (o->overlay)
        draw_overlay(img, w, h, c, f, label);

    bn_status st = encode(img, w, h, c, out, len, err, errlen);
    free(img);
    return st;
}
