/* Daemon statistics: frame counters and fixed-bucket latency histograms per stage, kept by
 * the event loop; rendered as JSON for the "stats" reply and converted from that JSON to the
 * Prometheus text exposition format (basisnetctl stats --prometheus). */
#ifndef BN_STATS_H
#define BN_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gate.h"

#define STATS_NBUCKETS 15       /* finite bucket bounds; one more bucket for +Inf */
#define STATS_RECENT 1024       /* latest total latencies kept for exact p50/p99 */

typedef enum {
    LAT_LIGHT = 0,
    LAT_SYNTH,
    LAT_SPECIALIST,
    LAT_TOTAL,
    LAT_CAPTURE_TO_PUBLISH,
    LAT_GATE,                   /* the gate's decision, on every frame while it is on */
    LAT_COUNT
} lat_kind;

typedef struct {
    uint64_t counts[STATS_NBUCKETS + 1];   /* not cumulative; last = above every bound */
    uint64_t n;
    double sum_ms, max_ms;
} latency_hist;

typedef struct {
    uint64_t classified, light, specialist, deadline;
    uint64_t synth_layers, synth_reused; /* layer syntheses due / skipped (engine.synth_reuse) */
    uint64_t gate_reused;       /* frames the gate closed on: the last answer republished */
    uint64_t gate_verdicts[GATE_VERDICTS]; /* frames the gate decided on, by gate_verdict */
    latency_hist hist[LAT_COUNT];
    double recent_total[STATS_RECENT];
    int recent_n, recent_pos;
} daemon_stats;

/* Upper bounds of the finite buckets, milliseconds. */
double stats_bucket_bound_ms(int i);
const char *stats_lat_name(lat_kind k);

void stats_init(daemon_stats *s);
void latency_hist_observe(latency_hist *h, double ms);
/* One classified frame. Stage times that were not run are passed as 0 and not observed. */
void stats_observe_frame(daemon_stats *s, int stage, bool deadline, double ms_light,
                         double ms_synth, double ms_specialist, double ms_total,
                         double ms_capture_to_publish);
/* A frame the gate closed on (not counted as classified; no stage latencies). */
void stats_observe_reuse(daemon_stats *s, double ms_capture_to_publish);
/* The gate's verdict and cost on a frame (reused or classified). */
void stats_observe_gate(daemon_stats *s, int verdict, double ms_gate);
/* {"closed":N,"start":N,...}: the frames the gate decided on, by verdict. */
json_t *stats_gate_verdicts_json(const daemon_stats *s);
/* Frames published: classified plus reused. */
uint64_t stats_frames_published(const daemon_stats *s);
/* gate_reused / published, synth_reused / synth_layers (0 when none). */
double stats_gate_reused_share(const daemon_stats *s);
double stats_synth_reused_share(const daemon_stats *s);
/* Quantile (0..1) of the recent total latencies; 0 when none. */
double stats_recent_quantile(const daemon_stats *s, double q);
/* Share of classified frames answered by the lightweight model (0 when none). */
double stats_exit_share(const daemon_stats *s);

/* {"count":N,"sum":..,"mean":..,"max":..,"buckets":[{"le":0.25,"count":N},...,{"le":"+Inf",..}]} */
json_t *latency_hist_json(const latency_hist *h);
/* {"light":{...},"synth":{...},...,"total":{...,"p50":..,"p99":..}} */
json_t *stats_latency_json(const daemon_stats *s);

/* Prometheus text exposition of a stats reply object (the "stats" member of the reply).
 * Returns a malloc'd string, or NULL when the object lacks the expected members. */
char *stats_to_prometheus(const json_t *stats);

#endif
