/* The HTTP server's pictures: the latest-frame slot (copies only while held, a reader's frame
 * stays valid while newer ones arrive, buffers reused), the automatic scale, the bitmap font,
 * and JPEG encoding checked by decoding it again with libjpeg. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jpeglib.h>

#include "frame_slot.h"
#include "picture.h"

enum { W = 28, H = 28 };

static capture_frame gradient(uint8_t *buf, uint64_t seq, int channels)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W * channels; x++)
            buf[y * W * channels + x] = (uint8_t)(x * 3 + y * 4 + (int)seq);
    return (capture_frame){.data = buf, .width = W, .height = H, .channels = channels,
                           .stride = (size_t)W * (size_t)channels, .seq = seq};
}

static void test_slot_copies_only_while_held(void **state)
{
    (void)state;
    frame_slot *s = frame_slot_new();
    uint8_t buf[W * H];
    capture_frame fr = gradient(buf, 1, 1);
    infer_result r = {.class_id = 8, .score = 0.97f, .stage = 1, .threshold = 0.9f};
    frame_slot_put(s, &fr, &r);
    assert_null(frame_slot_get(s)); /* nobody holds it: nothing copied */

    frame_slot_hold(s);
    frame_slot_put(s, &fr, &r);
    const frame_copy *a = frame_slot_get(s);
    assert_non_null(a);
    assert_int_equal(a->seq, 1);
    assert_int_equal(a->class_id, 8);
    assert_int_equal(a->width, W);
    assert_memory_equal(a->data, buf, sizeof buf);

    /* a newer frame arrives while a reader holds the old one: the old one is untouched */
    uint8_t buf2[W * H];
    capture_frame fr2 = gradient(buf2, 2, 1);
    r.class_id = 3;
    frame_slot_put(s, &fr2, &r);
    assert_int_equal(a->seq, 1);
    assert_memory_equal(a->data, buf, sizeof buf);
    const frame_copy *b = frame_slot_get(s);
    assert_int_equal(b->seq, 2);
    assert_int_equal(b->class_id, 3);
    frame_copy_unref(a);

    /* a row stride wider than the row is packed in the copy */
    uint8_t wide[(W + 4) * H];
    memset(wide, 0xee, sizeof wide);
    for (int y = 0; y < H; y++)
        memcpy(wide + y * (W + 4), buf + y * W, W);
    capture_frame fw = {.data = wide, .width = W, .height = H, .channels = 1, .stride = W + 4,
                        .seq = 3};
    frame_slot_put(s, &fw, &r);
    frame_copy_unref(b);
    const frame_copy *c = frame_slot_get(s);
    assert_int_equal(c->seq, 3);
    assert_memory_equal(c->data, buf, sizeof buf);
    frame_copy_unref(c);

    frame_slot_release(s); /* the last hold: the frame is forgotten */
    assert_null(frame_slot_get(s));
    frame_slot_put(s, &fr, &r);
    assert_null(frame_slot_get(s));
    frame_slot_free(s);
    frame_slot_free(NULL);
}

static void test_auto_scale(void **state)
{
    (void)state;
    assert_int_equal(picture_auto_scale(28, 28), 8);    /* 224 */
    assert_int_equal(picture_auto_scale(96, 96), 3);    /* 288 */
    assert_int_equal(picture_auto_scale(224, 224), 1);
    assert_int_equal(picture_auto_scale(640, 480), 1);
    assert_int_equal(picture_auto_scale(4, 4), PICTURE_SCALE_MAX);
}

static void test_font(void **state)
{
    (void)state;
    uint8_t img[10 * 12];
    memset(img, 0, sizeof img);
    picture_draw_text(img, 10, 12, 1, 0, 0, 1, 255, "I");
    /* 'I': the middle column top to bottom, serifs at rows 0 and 6 */
    for (int y = 0; y < 7; y++)
        assert_int_equal(img[y * 10 + 2], 255);
    assert_int_equal(img[0 * 10 + 1], 255);
    assert_int_equal(img[3 * 10 + 1], 0);
    assert_int_equal(img[7 * 10 + 2], 0);
    assert_int_equal(picture_text_width("Bag", 1), 17);
    assert_int_equal(picture_text_width("Bag", 2), 34);
    assert_int_equal(picture_text_width("", 2), 0);
    /* clipped at the edges, no write outside */
    picture_draw_text(img, 10, 12, 1, 8, 10, 3, 255, "\x01W");
}

/* Decodes a JPEG into a malloc'd image. */
static uint8_t *decode(const uint8_t *jpg, size_t len, int *w, int *h, int *c)
{
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr e;
    d.err = jpeg_std_error(&e);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, jpg, (unsigned long)len);
    assert_int_equal(jpeg_read_header(&d, TRUE), JPEG_HEADER_OK);
    jpeg_start_decompress(&d);
    *w = (int)d.output_width;
    *h = (int)d.output_height;
    *c = d.output_components;
    uint8_t *img = malloc((size_t)*w * (size_t)*h * (size_t)*c);
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = img + (size_t)d.output_scanline * (size_t)*w * (size_t)*c;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    return img;
}

static double band_mean(const uint8_t *img, int w, int rows, int c)
{
    double sum = 0;
    for (int i = 0; i < w * rows * c; i++)
        sum += img[i];
    return sum / (w * rows * c);
}

static void test_jpeg(void **state)
{
    (void)state;
    frame_slot *s = frame_slot_new();
    frame_slot_hold(s);
    for (int channels = 1; channels <= 3; channels += 2) {
        uint8_t buf[W * H * 3];
        capture_frame fr = gradient(buf, 5, channels);
        infer_result r = {.class_id = 8, .score = 0.97f, .stage = 1};
        frame_slot_put(s, &fr, &r);
        const frame_copy *f = frame_slot_get(s);
        char err[256];
        uint8_t *jpg;
        size_t len;
        picture_opts o = {.overlay = false};
        assert_int_equal(picture_jpeg(f, "Bag", &o, &jpg, &len, err, sizeof err), BN_OK);
        assert_true(len > 100);
        assert_int_equal(jpg[0], 0xff);
        assert_int_equal(jpg[1], 0xd8);
        assert_int_equal(jpg[len - 1], 0xd9);
        int w, h, c;
        uint8_t *plain = decode(jpg, len, &w, &h, &c);
        assert_int_equal(w, 224);
        assert_int_equal(h, 224);
        assert_int_equal(c, channels);
        /* nearest neighbour by 8: pixel (8x+3, 8y+3) is input pixel (x, y), give or take JPEG */
        int d = plain[(8 * 10 + 3) * 224 * c + (8 * 20 + 3) * c] - buf[10 * W * channels + 20 * channels];
        assert_true(d > -12 && d < 12);
        free(jpg);

        o.overlay = true;
        assert_int_equal(picture_jpeg(f, "Bag", &o, &jpg, &len, err, sizeof err), BN_OK);
        uint8_t *over = decode(jpg, len, &w, &h, &c);
        free(jpg);
        /* white text in the band at the top; below it the picture is unchanged */
        int white = 0;
        for (int i = 0; i < 224 * 30 * c; i++)
            white += over[i] > 200;
        assert_true(white > 100);
        double below = band_mean(over + 224 * 60 * c, 224, 100, c) -
                       band_mean(plain + 224 * 60 * c, 224, 100, c);
        assert_true(below > -3 && below < 3);
        free(over);

        o = (picture_opts){.scale = 1};
        assert_int_equal(picture_jpeg(f, "Bag", &o, &jpg, &len, err, sizeof err), BN_OK);
        free(decode(jpg, len, &w, &h, &c));
        assert_int_equal(w, W);
        free(jpg);
        free(plain);
        frame_copy_unref(f);
    }
    frame_slot_release(s);
    frame_slot_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_copies_only_while_held),
        cmocka_unit_test(test_auto_scale),
        cmocka_unit_test(test_font),
        cmocka_unit_test(test_jpeg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
