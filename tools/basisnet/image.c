/* PNG / JPEG decoding, channel conversion and resizing to a model's input, shared by
 * basisnet classify and eval (declared in image.h). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* needs stddef.h and stdio.h first */
#include <png.h>

#include "image.h"

static int load_png(const char *path, int want_c, image *im, char *err, size_t errlen)
{
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&p, path)) {
        snprintf(err, errlen, "%s: %s", path, p.message);
        return -1;
    }
    p.format = want_c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    im->w = (int)p.width, im->h = (int)p.height, im->c = want_c == 1 ? 1 : 3;
    im->px = malloc(PNG_IMAGE_SIZE(p));
    if (!im->px || !png_image_finish_read(&p, NULL, im->px, 0, NULL)) {
        snprintf(err, errlen, "%s: %s", path, im->px ? p.message : "out of memory");
        png_image_free(&p);
        free(im->px);
        im->px = NULL;
        return -1;
    }
    return 0;
}

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

static int load_jpeg(const char *path, FILE *f, int want_c, image *im, char *err, size_t errlen)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    /* volatile: modified between setjmp and a possible longjmp */
    uint8_t *volatile px = NULL;
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = jpeg_on_error;
    if (setjmp(jerr.jmp)) {
        snprintf(err, errlen, "%s: JPEG: %s", path, jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        free(px);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = want_c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    im->w = (int)cinfo.output_width, im->h = (int)cinfo.output_height, im->c = cinfo.output_components;
    px = malloc((size_t)im->w * im->h * im->c);
    if (!px)
        longjmp(jerr.jmp, 1);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * im->w * im->c;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    im->px = px;
    return 0;
}

/* Decodes PNG or JPEG (by magic bytes) into gray (want_c == 1) or RGB. */
int load_image(const char *path, int want_c, image *im, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t magic[4] = {0};
    size_t n = fread(magic, 1, 4, f);
    rewind(f);
    int rc;
    if (n == 4 && !memcmp(magic, "\x89PNG", 4)) {
        fclose(f);
        return load_png(path, want_c, im, err, errlen);
    }
    if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF)
        rc = load_jpeg(path, f, want_c, im, err, errlen);
    else {
        snprintf(err, errlen, "%s: not a PNG or JPEG file", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

/* Resizes HWC 8-bit: area average when shrinking (each output pixel averages the source
 * box it covers, with fractional edge weights), bilinear when enlarging. Channels kept. */
static void resize_u8(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int dw, int dh)
{
    const double fx = (double)sw / dw, fy = (double)sh / dh;
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++)
            for (int k = 0; k < c; k++) {
                double v = 0;
                if (fx >= 1.0 && fy >= 1.0) {
                    double y0 = y * fy, y1 = y0 + fy, x0 = x * fx, x1 = x0 + fx, wsum = 0;
                    for (int sy = (int)y0; sy < (int)ceil(y1) && sy < sh; sy++) {
                        double wy = fmin(y1, sy + 1) - fmax(y0, sy);
                        for (int sx = (int)x0; sx < (int)ceil(x1) && sx < sw; sx++) {
                            double wgt = wy * (fmin(x1, sx + 1) - fmax(x0, sx));
                            v += wgt * src[((size_t)sy * sw + sx) * c + k];
                            wsum += wgt;
                        }
                    }
                    v = wsum > 0 ? v / wsum : 0;
                } else {
                    double sy = fmax((y + 0.5) * fy - 0.5, 0), sx = fmax((x + 0.5) * fx - 0.5, 0);
                    int y0 = (int)sy, x0 = (int)sx;
                    int y1 = y0 + 1 < sh ? y0 + 1 : y0, x1 = x0 + 1 < sw ? x0 + 1 : x0;
                    double ly = sy - y0, lx = sx - x0;
                    v = (1 - ly) * ((1 - lx) * src[((size_t)y0 * sw + x0) * c + k] +
                                    lx * src[((size_t)y0 * sw + x1) * c + k]) +
                        ly * ((1 - lx) * src[((size_t)y1 * sw + x0) * c + k] +
                              lx * src[((size_t)y1 * sw + x1) * c + k]);
                }
                int q = (int)lrint(v);
                dst[((size_t)y * dw + x) * c + k] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
}

/* Converts a decoded image (1 or 3 channels) to the model's channels and size. */
uint8_t *fit_image(const image *im, const bn_model_info *in)
{
    const int c = in->channels;
    uint8_t *conv = malloc((size_t)im->w * im->h * c);
    uint8_t *out = malloc((size_t)in->width * in->height * c);
    if (!conv || !out) {
        free(conv);
        free(out);
        return NULL;
    }
    for (size_t p = 0; p < (size_t)im->w * im->h; p++)
        for (int k = 0; k < c; k++) {
            const uint8_t *s = im->px + p * im->c;
            uint8_t v;
            if (im->c == c)
                v = s[k];
            else if (im->c == 1)
                v = s[0];
            else /* RGB -> gray, ITU-R BT.601 luma */
                v = (uint8_t)lrint(0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2]);
            conv[p * c + k] = (c == 1 || k < im->c) ? v : s[k % im->c];
        }
    if (im->w == in->width && im->h == in->height) {
        free(out);
        return conv;
    }
    resize_u8(conv, im->w, im->h, c, out, in->width, in->height);
    free(conv);
    return out;
}
