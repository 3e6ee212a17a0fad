/* Engine functions outside the public contract, for the project's own tests and tools. */
#ifndef BN_ENGINE_INTERNAL_H
#define BN_ENGINE_INTERNAL_H

#include <stdint.h>

#include "basisnet.h"

/* Raw logits of the last bn_run_light / bn_run_specialist on this session (num_classes
 * floats, owned by the session). */
const float *bn_session_logits(const bn_session *s, bn_stage stage);

/* Per-layer profiling (tools: `basisnet bench --profile`): when on, each run adds every
 * layer's wall time to a per-stage array of ns (one double per layer, in layer order).
 * Turning it on clears the sums. */
void bn_session_set_profiling(bn_session *s, int on);
const double *bn_session_profile(const bn_session *s, bn_stage stage);

/* Row-banded chains (engine/chain.h) the session runs in a stage on one thread. */
int bn_session_chains(const bn_session *s, bn_stage stage);

/* CLOCK_MONOTONIC in ns (stage times, profiling). */
uint64_t bn_now_ns(void);

#endif
