/* The latest-frame slot (see frame_slot.h): a mutex around one pointer swap, and a spare
 * buffer the inference thread reuses when nobody still reads the frame it replaced. */
#include "frame_slot.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

struct frame_slot {
    atomic_int holds;
    GMutex lock;                /* protects latest */
    frame_copy *latest;
    frame_copy *spare;          /* the putting thread's only */
};

frame_slot *frame_slot_new(void)
{
    frame_slot *s = calloc(1, sizeof *s);
    if (s)
        g_mutex_init(&s->lock);
    return s;
}

void frame_copy_unref(const frame_copy *f)
{
    frame_copy *m = (frame_copy *)f;
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        free(m);
}

void frame_slot_free(frame_slot *s)
{
    if (!s)
        return;
    frame_copy_unref(s->latest);
    free(s->spare);
    g_mutex_clear(&s->lock);
    free(s);
}

void frame_slot_hold(frame_slot *s)
{
    if (s)
        atomic_fetch_add(&s->holds, 1);
}

void frame_slot_release(frame_slot *s)
{
    if (!s)
        return;
    if (atomic_fetch_sub(&s->holds, 1) == 1)
        frame_slot_clear(s);
}

void frame_slot_put(frame_slot *s, const capture_frame *fr, const infer_result *r)
{
    if (!s || atomic_load_explicit(&s->holds, memory_order_relaxed) <= 0)
        return;
    size_t row = (size_t)fr->width * (size_t)fr->channels;
    size_t need = row * (size_t)fr->height;
    frame_copy *f = s->spare;
    s->spare = NULL;
    if (f && f->cap < need) {
        free(f);
        f = NULL;
    }
    if (!f) {
        f = malloc(sizeof *f + need);
        if (!f)
            return;
        f->cap = need;
    }
    atomic_init(&f->refs, 1);
    f->width = fr->width;
    f->height = fr->height;
    f->channels = fr->channels;
    f->seq = fr->seq;
    f->capture_mono_ns = fr->capture_mono_ns;
    f->class_id = r->class_id;
    f->score = r->score;
    f->stage = r->stage;
    f->threshold = r->threshold;
    for (int y = 0; y < fr->height; y++)
        memcpy(f->data + (size_t)y * row, fr->data + (size_t)y * fr->stride, row);
    g_mutex_lock(&s->lock);
    frame_copy *old = s->latest;
    s->latest = f;
    g_mutex_unlock(&s->lock);
    /* The slot's reference to the old frame: when it was the last, the buffer is reused. */
    if (old && atomic_fetch_sub(&old->refs, 1) == 1)
        s->spare = old;
}

const frame_copy *frame_slot_get(frame_slot *s)
{
    if (!s)
        return NULL;
    g_mutex_lock(&s->lock);
    frame_copy *f = s->latest;
    if (f)
        atomic_fetch_add(&f->refs, 1);
    g_mutex_unlock(&s->lock);
    return f;
}

void frame_slot_clear(frame_slot *s)
{
    if (!s)
        return;
    g_mutex_lock(&s->lock);
    frame_copy *f = s->latest;
    s->latest = NULL;
    g_mutex_unlock(&s->lock);
    frame_copy_unref(f);
}
