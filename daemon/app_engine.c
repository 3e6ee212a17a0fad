/* The engine set: the model, its session and the budget parameters a config asks for, opened
 * and warmed up together; and the budget controller made from those parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_internal.h"

void app_engine_set_free(engine_set *e)
{
    bn_session_free(e->session);
    e->session = NULL;
    bn_model_close(e->model);
    e->model = NULL;
}

static void budget_params_from_config(const bn_config *cfg, budget_params *bp)
{
    budget_params_init(bp);
    bp->mode = cfg->budget.mode;
    bp->latency_ms = cfg->budget.latency_ms;
    bp->min = cfg->budget.min;
    bp->max = cfg->budget.max;
    bp->window = cfg->budget.window;
    bp->horizon = cfg->budget.horizon;
    bp->fixed_threshold = cfg->engine.threshold;
}

/* Runs both stages once on a grey image: warms caches and gives the budget controller
 * measured cost guesses, so the first real frames already respect the budget. */
static void warm_up(engine_set *e)
{
    const bn_model_info *mi = bn_model_get_info(e->model);
    size_t stride = (size_t)mi->width * (size_t)mi->channels;
    uint8_t *img = malloc(stride * (size_t)mi->height);
    e->t_light_ns = e->t_spec_ns = 0;
    if (!img)
        return;
    memset(img, 128, stride * (size_t)mi->height);
    bn_result r;
    if (bn_run_light(e->session, img, stride, &r) == BN_OK) {
        e->t_light_ns = r.ns_light;
        if (bn_run_specialist(e->session, &r) == BN_OK)
            e->t_spec_ns = r.ns_synth + r.ns_specialist;
    }
    free(img);
}

budget_ctl *app_budget_create(const budget_params *bp, const bn_model_info *mi, uint64_t t_light,
                              uint64_t t_spec, char *err, size_t errlen)
{
    budget_ctl *b = NULL;
    if (budget_new(bp, &b, err, errlen) != BN_OK)
        return NULL;
    budget_calibrate(b, mi->val_light_confidence, mi->n_val_light_confidence, t_light, t_spec);
    return b;
}

bn_status app_engine_set_open(const bn_config *cfg, engine_set *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    char msg[1024];
    bn_status st = bn_model_open(cfg->model, &e->model, msg, sizeof msg);
    if (st != BN_OK) {
        config_model_error(cfg, msg, err, errlen);   /* msg starts with the path */
        return st;
    }
    bn_session_params sp = {.threads = cfg->engine.threads, .synth_reuse = (float)cfg->engine.synth_reuse};
    st = bn_session_new(e->model, sp, &e->session, msg, sizeof msg);
    if (st != BN_OK) {
        char why[BN_PATH_MAX + 1100];
        snprintf(why, sizeof why, "%s: session: %s", cfg->model, msg);
        config_model_error(cfg, why, err, errlen);
        app_engine_set_free(e);
        return st;
    }
    budget_params_from_config(cfg, &e->bp);
    if (budget_params_check(&e->bp, msg, sizeof msg) != BN_OK) {
        snprintf(err, errlen, "%s", msg);
        app_engine_set_free(e);
        return BN_ERR_CONFIG;
    }
    warm_up(e);
    return BN_OK;
}
