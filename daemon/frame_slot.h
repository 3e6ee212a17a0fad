/* The latest classified frame, kept for the HTTP server's pictures (/snapshot.jpg,
 * /stream.mjpg, the page): the inference thread copies each frame with its answer into a
 * reference-counted buffer while someone holds the slot (the HTTP server is on), and the
 * event loop takes a reference to the newest one. Nobody holding it: one atomic load per
 * frame, no copy. */
#ifndef BN_FRAME_SLOT_H
#define BN_FRAME_SLOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "infer.h"

/* A frame as classified, with the answer published for it. Read-only once published. */
typedef struct {
    atomic_int refs;
    int width, height, channels;    /* the model input: HWC 8-bit, rows packed */
    uint64_t seq;                   /* capture's frame counter */
    uint64_t capture_mono_ns;
    int class_id;
    float score;
    int stage;                      /* bn_stage, or INFER_STAGE_REUSE */
    float threshold;
    size_t cap;                     /* bytes allocated for data */
    uint8_t data[];
} frame_copy;

typedef struct frame_slot frame_slot;

frame_slot *frame_slot_new(void);
/* Frees the slot and its frames (references still held stay valid until released).
 * Idempotent on NULL. */
void frame_slot_free(frame_slot *s);
/* Copying starts with the first hold and stops when every hold is released (loop thread). */
void frame_slot_hold(frame_slot *s);
void frame_slot_release(frame_slot *s);
/* Inference thread: keeps fr and its answer r when held; otherwise does nothing. NULL s:
 * nothing. Allocates only when the previous buffer is still in use or too small. */
void frame_slot_put(frame_slot *s, const capture_frame *fr, const infer_result *r);
/* A new reference to the newest frame, NULL before the first one. */
const frame_copy *frame_slot_get(frame_slot *s);
/* Forgets the newest frame (a new source or model: its frames are no longer the input). */
void frame_slot_clear(frame_slot *s);
void frame_copy_unref(const frame_copy *f);

#endif
