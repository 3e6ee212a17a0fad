/* The frame-difference gate (docs/gate.md): decides per frame whether the scene changed
 * since the last classified frame, so that an unchanged frame reuses that frame's answer
 * instead of running the engine, and only an answer that is settled (its label confirmed,
 * its score at least min_score); while the picture keeps changing, or the answer stays
 * unsure, every (hold_frames + 1)-th frame is classified. Works on the model-sized input (uint8, HWC, 1 to 4
 * channels) through a box-downsampled gray copy; the threshold follows the camera's own
 * noise, estimated online from consecutive frames. No allocation after gate_new. */
#ifndef BN_GATE_H
#define BN_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"

/* Defaults of the config keys (docs/config.md, gate:). */
#define GATE_REFRESH_MS_DEFAULT 1000
#define GATE_CELL_SIGMAS_DEFAULT 4.0
#define GATE_MIN_AREA_DEFAULT 0.02
#define GATE_MIN_SCORE_DEFAULT 0.9
#define GATE_HOLD_FRAMES_DEFAULT 2

typedef struct {
    int width, height, channels;  /* the frames' size (the model input) */
    int refresh_ms;               /* a frame older than this since the last classified one
                                     is classified anyway */
    double cell_sigmas;           /* a cell changed: |residual| > cell_sigmas x noise sigma */
    double min_area;              /* share of changed cells that opens the gate */
    double min_score;             /* an answer scored below this is reused only while held
                                     (hold_frames), never by a closed gate (0 to 1) */
    int confirm_frames;           /* consecutive answers that confirm a new label, as the
                                     publisher's change debounce counts them
                                     (publish.change_frames); <= 1: every answer is confirmed */
    int hold_frames;              /* while the picture keeps changing, or stays on an unsure
                                     answer, at most this many frames in a row reuse the last
                                     (confirmed) answer before one is classified; 0: none */
} gate_params;

typedef enum {
    GATE_CLOSED = 0,     /* unchanged: reuse the last answer */
    GATE_OPEN_START,     /* no reference yet, or the noise estimate is still warming up */
    GATE_OPEN_REFRESH,   /* the last classification is refresh_ms old */
    GATE_OPEN_AREA,      /* more than min_area of the cells changed */
    GATE_OPEN_MEAN,      /* the mean residual is well above the noise (a diffuse change) */
    /* Unchanged, but the last answer is not settled, so the frame is classified anyway: */
    GATE_OPEN_CONFIRM,   /* its label is not yet confirmed (a change still being debounced) */
    GATE_OPEN_UNSURE,    /* its score is below min_score */
    /* The picture still changing since the frame before (area or mean), or the answer
     * unsure, but its label confirmed and fewer than hold_frames frames held since the last
     * classified one: reuse it (a change event at most hold_frames frames late). */
    GATE_HELD,
    GATE_VERDICTS
} gate_verdict;

typedef struct {
    gate_verdict verdict;
    bool open;           /* classify: verdict is neither GATE_CLOSED nor GATE_HELD */
    float changed_share; /* share of cells over the threshold (0 when not compared) */
    float mean_residual; /* mean |residual| over the cells, gray levels */
    float sigma;         /* noise sigma of a cell difference used for this frame */
    uint64_t ns;         /* what the decision cost (CLOCK_MONOTONIC) */
} gate_decision;

typedef struct {
    uint64_t frames, opened, refreshes;
    float sigma;         /* current noise estimate (cell difference, gray levels) */
    int grid_w, grid_h, cell; /* the downsampled grid and its box size in pixels */
} gate_stats;

typedef struct gate gate;

/* Checks p and allocates every buffer the gate needs. */
bn_status gate_new(const gate_params *p, gate **out, char *err, size_t errlen);
void gate_free(gate *g);

/* One frame (width x height x channels as in the params, rows `stride` bytes apart),
 * captured at now_ns (any monotonic clock). Updates the noise estimate. A frame that is
 * classified afterwards must be committed with gate_commit. */
gate_decision gate_decide(gate *g, const uint8_t *data, size_t stride, uint64_t now_ns);
/* The frame of the last gate_decide was classified, with this answer: it becomes the
 * reference, and the answer the one a closed gate lets the caller reuse. The class feeds
 * the gate's copy of the change debounce (confirm_frames), which sees the same answers as
 * the publisher's: every classified one, and reused ones only when they repeat the
 * confirmed label (no-ops for a debounce). */
void gate_commit(gate *g, int class_id, float score);
/* Forget the reference (the next frame is classified). The noise estimate and the
 * confirmed label stay. */
void gate_reset(gate *g);

/* "closed", "start", "refresh", "area", "mean", "confirm", "unsure", "held" (the names
 * stats use). */
const char *gate_verdict_name(gate_verdict v);
void gate_get_stats(const gate *g, gate_stats *st);

#endif
