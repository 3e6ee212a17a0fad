/* The inference thread: pulls the latest frame from capture, runs the lightweight model,
 * lets the budget controller decide, runs the specialist when asked, and hands each result
 * to the event loop through a bounded queue with an eventfd wake-up. It never blocks on the
 * loop: when the queue is full the oldest result is dropped, counted, and its frames added
 * to the next result's `dropped`, so every frame pulled is a result or counted in one. */
#ifndef BN_INFER_H
#define BN_INFER_H

#include <stdbool.h>
#include <stdint.h>

#include "basisnet.h"
#include "bn_error.h"
#include "budget.h"
#include "capture.h"
#include "gate.h"

/* infer_result.stage of a frame the gate closed on: the last classified frame's answer,
 * reused (beside bn_stage's BN_STAGE_LIGHT and BN_STAGE_SPECIALIST). */
#define INFER_STAGE_REUSE 2

typedef struct frame_slot frame_slot;   /* frame_slot.h */

typedef struct {
    uint64_t frame_seq;         /* capture's frame counter */
    uint64_t pts_ns;
    uint64_t capture_mono_ns;   /* when the frame was captured (CLOCK_MONOTONIC) */
    uint64_t start_mono_ns;     /* inference start */
    uint64_t done_mono_ns;      /* inference end */
    uint64_t dropped;           /* frames before this one that have no result: dropped at the
                                   source, skipped by a failed engine run, or whose result was
                                   dropped from the full queue */
    int class_id;
    float score;
    int stage;                  /* bn_stage, or INFER_STAGE_REUSE */
    int reason;                 /* budget_reason */
    float threshold;
    int light_class;
    float light_score;
    uint64_t ns_light, ns_synth, ns_specialist;
    uint64_t madds;
    int synth_layers, synth_reused; /* specialist frames: layers synthesized / kept */
    bool gated;                 /* the gate ran on this frame (gate.mode auto) */
    int gate_verdict;           /* gated frames: the gate's gate_verdict (GATE_CLOSED: reused) */
    uint64_t ns_gate;           /* what the gate's decision cost */
    uint64_t reuse_age_ns;      /* reused frames: capture time since the frame answered */
} infer_result;

typedef struct infer infer;

typedef struct {
    capture *cap;               /* not owned */
    bn_session *session;        /* not owned; used only by the thread while it runs */
    budget_ctl *budget;         /* owned from infer_start on */
    int queue;                  /* results buffered for the loop */
    bool gate_on;               /* gate.mode auto: frames the gate closes on reuse the last
                                   answer (the gate is created, with its buffers, at start) */
    gate_params gate;           /* .confirm_frames: publish.change_frames, so that the gate
                                   reuses only an answer whose label the publisher confirmed */
    frame_slot *frames;         /* not owned, may be NULL: each frame and its answer are
                                   offered to it (copied only while it is held) */
} infer_params;

bn_status infer_start(const infer_params *p, infer **out, char *err, size_t errlen);
/* Stops and joins the thread (within one pull timeout plus one frame). Idempotent. */
void infer_stop(infer *in);
/* Stops if needed and frees the queue and the budget controller. */
void infer_free(infer *in);

/* Readable when results (or the end of stream) are waiting. */
int infer_eventfd(const infer *in);
/* Pops up to max results; *eos becomes true once the thread saw the end of a non-looping
 * file and every result before it has been popped. */
int infer_drain(infer *in, infer_result *out, int max, bool *eos);

/* Replaces the budget controller at the next frame (the old one is freed there). */
void infer_set_budget(infer *in, budget_ctl *b);
/* budget_set_latency at the next frame. */
void infer_set_budget_ms(infer *in, double ms);
/* Latest controller stats (refreshed every few frames by the thread). */
void infer_budget_stats(infer *in, budget_stats *st);

/* Latest gate stats (refreshed every few frames); false when the gate is off. */
bool infer_gate_stats(infer *in, gate_stats *st);

/* Loop iterations of the thread (frames and pull timeouts): proves it is alive. */
uint64_t infer_heartbeat(const infer *in);
uint64_t infer_frames(const infer *in);
uint64_t infer_results_dropped(const infer *in);
/* The last error from the engine, or the source state the thread saw ("running",
 * "lost", "eos", "closed"). */
const char *infer_source_state(const infer *in);

#endif
