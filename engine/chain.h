/* Row-banded chains: consecutive convolutions computed band by band of output rows instead
 * of layer by layer, so that the rows one layer writes are still in the core's cache when
 * the next one reads them. The kernels and the results are those of the layer-by-layer
 * order, bit for bit; only the order of the work and where the intermediate rows live change:
 * an expansion read by nothing but its depthwise convolution is written into a window of
 * rows (the current band's input rows, the rows the next band shares moved to its start)
 * instead of a whole tensor that would leave the cache; other layers keep full buffers. The runner takes any run of pointwise and depthwise convolutions (residuals
 * included); the planner forms only what measured faster: an expansion (pointwise) whose
 * output leaves the cache, with the depthwise convolution that reads it.
 * docs/engine.md, "Row-banded chains". */
#ifndef BN_CHAIN_H
#define BN_CHAIN_H

#include <stddef.h>

#include "model.h"

#define BN_CHAIN_MAX 16 /* convolutions in one chain */

typedef struct {
    int start, end;           /* first and last layer index of the chain (end may be a fused add) */
    int n;                    /* convolutions in it */
    int conv[BN_CHAIN_MAX];   /* their layer indices, in order */
    int band;                 /* output rows of the last convolution per band */
    size_t window;            /* > 0: floats of the window that holds conv[0]'s output rows
                               * (a pair whose intermediate nothing else reads), else 0: every
                               * layer writes its full output buffer */
} bn_chain;

/* Default working set of one band (all of the chain's layers' rows of it) in bytes; the
 * environment variable BN_BAND_KB overrides it, BN_CHAIN=0 turns chains off. */
#define BN_BAND_BYTES (256u * 1024u)

/* Finds the chains of a stage: each pointwise -> depthwise pair whose intermediate tensor is
 * at least 1 MiB (BN_CHAIN_MIN_KB overrides; 0 forms every pair, for tests) and whose
 * weights, read again by every band, are small next to it. chain_at[i] = index in chains of
 * the chain that starts at layer i, else -1 (sd->n entries); chains has room for
 * sd->n / 2 + 1. Returns how many. */
int bn_chain_plan(const bn_stage_def *sd, size_t band_bytes, int *chain_at, bn_chain *chains);

/* The floats of layer i's window if it is the windowed intermediate of one of the chains
 * (its output buffer needs only that much), else 0 (its whole tensor). */
size_t bn_chain_window(const bn_chain *chains, int nchains, int i);

/* Extends last_use (planning of buffers by liveness) so that everything a chain reads stays
 * live until the chain's last layer: a band reads its inputs while later layers of the chain
 * are being written. */
void bn_chain_liveness(const bn_stage_def *sd, const bn_chain *chains, int nchains, int *last_use);

/* Runs one chain on one thread. outs: the stage's layer outputs; synth_w: synthesized weights
 * (indexed by a layer's synth_index); prof: per-layer ns sums, or NULL. */
void bn_chain_run(const bn_stage_def *sd, const bn_chain *c, const float *input, float *const *outs,
                  float *const *synth_w, double *prof);

/* Runs output rows [row0, row1) of a windowed chain (c->window > 0) with win (c->window
 * floats) as its window: a pool splits one chain by rows, each part with a window of its
 * own (the parts recompute the few expansion rows their bands share). */
void bn_chain_run_rows(const bn_stage_def *sd, const bn_chain *c, const float *input, float *const *outs,
                       float *const *synth_w, double *prof, int row0, int row1, float *win);

/* The band budget in bytes from the environment (0 = chains off). */
size_t bn_chain_band_bytes(void);

#endif
