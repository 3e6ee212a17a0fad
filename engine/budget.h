/* Budget controller: picks the early-exit threshold frame by frame so that the latency per
 * frame holds a budget (mean or deadline), from measured stage costs. No clock inside: the
 * caller passes measured times, so the controller is deterministic and simulation-tested.
 *
 * Lifecycle and threading: budget_new() allocates every buffer once; the per-frame calls
 * (budget_next_threshold, budget_should_run_specialist, budget_observe) allocate nothing.
 * One budget_ctl belongs to one thread at a time (the inference thread); a caller that
 * reads stats or sets the budget from another thread serializes with its own mutex.
 *
 * Per frame, the caller does:
 *     float thr = budget_next_threshold(b);
 *     bn_run_light(...)                                        -> light_score, ns_light
 *     budget_decision d = budget_should_run_specialist(b, light_score, elapsed_ns);
 *     if (d.run) bn_run_specialist(...)                         -> ns_synth + ns_specialist
 *     budget_observe(b, light_score, ns_light, ran ? ns_synth + ns_specialist : 0, ran);
 * and reports d.reason ("threshold", "specialist", "deadline", "horizon") in the label message.
 * The equations and limits are in docs/budget.md. */
#ifndef BN_BUDGET_H
#define BN_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"

/* The one budget mode enum: the config (budget.mode), `set` and the controller share it. */
typedef enum {
    BUDGET_OFF = 0,       /* fixed threshold, no control */
    BUDGET_MEAN,          /* mean latency per frame <= budget */
    BUDGET_DEADLINE,      /* every frame <= budget: skip the specialist when it cannot fit */
} budget_mode;

/* "off", "mean", "deadline", NULL: indexed by budget_mode. */
extern const char *const budget_mode_names[];
/* The spelling of m, or "unknown". */
const char *budget_mode_name(budget_mode m);

/* The one accepted range of a latency budget per frame, in ms (config, `set`, basisnetctl). */
#define BUDGET_LATENCY_MS_MIN 0.1
#define BUDGET_LATENCY_MS_MAX 10000.0

typedef struct {
    budget_mode mode;
    double latency_ms;       /* budget B per frame; > 0 unless mode is off */
    double min, max;         /* threshold bounds, 0 <= min <= max; max is the most
                                specialist-heavy threshold the controller may choose,
                                min the least (never exit below min confidence) */
    int window;              /* recent frames kept (confidences, latencies); >= 1 */
    int horizon;             /* mean mode: no run of `horizon` consecutive frames may spend
                                more than horizon x budget by the controller's prediction
                                (0: no such guard, the mean holds only in the long run) */
    double fixed_threshold;  /* the threshold in mode off (engine.threshold) */
} budget_params;

typedef struct budget_ctl budget_ctl;

/* Defaults: mode mean, 50 ms, min 0, max 1, window 256, horizon 100, fixed threshold 0.9. */
void budget_params_init(budget_params *p);

/* Validates p without allocating: BN_OK, or BN_ERR_INVALID_ARG with the message below. */
bn_status budget_params_check(const budget_params *p, char *err, size_t errlen);

/* Validates p and allocates the controller. BN_ERR_INVALID_ARG with a message naming the
 * field (e.g. "budget: min 0.9 > max 0.5") on bad params; BN_ERR_NOMEM. */
bn_status budget_new(const budget_params *p, budget_ctl **out, char *err, size_t errlen);
void budget_free(budget_ctl *b);

/* Optional start-up calibration, before the first frame: `sorted_conf` are light-model
 * confidences on validation data sorted ascending (bn_model_info.val_light_confidence),
 * used as the confidence window until real frames replace them; t_light_ns and t_spec_ns
 * are cost guesses (t_spec = synthesis + specialist), 0 when unknown. A model's MAdds
 * ratio times a measured light time is a fair t_spec guess. Safe to call with n == 0. */
void budget_calibrate(budget_ctl *b, const float *sorted_conf, int n, uint64_t t_light_ns,
                      uint64_t t_spec_ns);

/* Threshold for the next frame: frames whose light confidence is below it go to the
 * specialist. Off: the fixed threshold. Mean: the confidence quantile that sends the share
 * of frames the budget allows to the specialist, corrected by the integral term, clamped
 * to [min, max]. Deadline: max (the per-frame gate below decides). */
float budget_next_threshold(budget_ctl *b);

typedef enum {
    BUDGET_EXIT_CONFIDENT = 0, /* light confidence >= threshold: light answer */
    BUDGET_RUN_SPECIALIST,     /* run synthesis + specialist */
    BUDGET_EXIT_DEADLINE,      /* deadline mode: the specialist would not finish in time */
    BUDGET_EXIT_HORIZON,       /* mean mode: the last `horizon` frames' budget is spent */
} budget_reason;

typedef struct {
    bool run;                  /* run the specialist */
    budget_reason reason;
    double predicted_total_ms; /* elapsed + predicted specialist time (if it ran) */
} budget_decision;

/* Decision for the current frame after the light stage, against the threshold from the
 * last budget_next_threshold(). elapsed_ns: time already spent on this frame (at least the
 * light stage). In deadline mode the specialist runs only if elapsed + a conservative
 * prediction of its time fits in the budget. In mean mode with a horizon H, it runs only if
 * the previous H - 1 frames' measured latencies + elapsed + the predicted specialist time
 * fit in H x budget. Call once per frame (it counts deadline and horizon exits). */
budget_decision budget_should_run_specialist(budget_ctl *b, float light_score,
                                             uint64_t elapsed_ns);
/* "threshold", "specialist", "deadline", "horizon": the reason word for messages. */
const char *budget_reason_name(budget_reason r);

/* After a frame: its light confidence, the light time, the synthesis + specialist time
 * (0 when it did not run) and whether the specialist ran. */
void budget_observe(budget_ctl *b, float light_score, uint64_t ns_light, uint64_t ns_spec,
                    bool ran_specialist);

/* Live change of the budget (basisnetctl set budget-ms X). The integral term is kept:
 * the bias it learned does not depend on the budget. BN_ERR_INVALID_ARG if ms <= 0. */
bn_status budget_set_latency(budget_ctl *b, double ms);

typedef struct {
    budget_mode mode;
    double budget_ms;
    double mean_ms, p99_ms;    /* observed latency per frame (light + spec) over the window */
    int window_frames;         /* frames those figures cover */
    double exit_share;         /* share of those frames answered by the light model */
    double threshold;          /* current threshold */
    double target_spec_share;  /* f the controller aims at (after the integral term) */
    double t_light_ms, t_spec_ms; /* current cost estimates (t_spec: synth + specialist) */
    bool unattainable;         /* t_light alone exceeds the budget */
    uint64_t frames;           /* frames observed since creation */
    uint64_t deadline_exits;   /* frames answered light because of the deadline */
    uint64_t horizon_exits;    /* frames answered light because the horizon's budget was spent */
} budget_stats;

/* Not const: the p99 sorts the latency window in a scratch buffer allocated at creation. */
void budget_get_stats(budget_ctl *b, budget_stats *st);

#endif
