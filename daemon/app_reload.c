/* The engine set (model, session, budget parameters) and reload. A reload is all or nothing:
 * every part of the new config is parsed, opened or checked first (config, model, session,
 * budget, socket groups, MQTT client, capture); only when all of it succeeded does anything
 * observable switch (socket access and limits, MQTT, engine, config, hello). On any failure
 * the previous config keeps running as it was. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "app_internal.h"
#include "bn_log.h"

#define MOD "daemon"

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
        snprintf(err, errlen, "model %s: %s", cfg->model, msg);
        return st;
    }
    bn_session_params sp = {.threads = cfg->engine.threads};
    st = bn_session_new(e->model, sp, &e->session, msg, sizeof msg);
    if (st != BN_OK) {
        snprintf(err, errlen, "model %s: session: %s", cfg->model, msg);
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

static bool same_source(const bn_config *x, const bn_config *y)
{
    return memcmp(&x->source, &y->source, sizeof x->source) == 0;
}

/* The new config's parts opened before anything switches. */
typedef struct {
    bn_config *cfg;
    engine_set eng;
    mqtt_client *mqtt;      /* a new client when the mqtt section changed and is enabled */
    bool mqtt_changed;
    capture *cap;           /* the new source, when it differs from the running one */
    bool new_capture;
    bool retry_capture;     /* a valid new source that is not there yet: retried */
} reload_set;

static void reload_set_free(reload_set *n)
{
    capture_close(n->cap);
    n->cap = NULL;
    mqtt_close(n->mqtt);
    n->mqtt = NULL;
    app_engine_set_free(&n->eng);
    free(n->cfg);
    n->cfg = NULL;
}

/* Steps that stop nothing of the running config. */
static bn_status reload_prepare(app *a, reload_set *n, char *err, size_t errlen)
{
    n->cfg = malloc(sizeof *n->cfg);
    if (!n->cfg) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    config_init(n->cfg);
    bn_status st = config_load(a->opt.config_path, n->cfg, err, errlen);
    if (st != BN_OK)
        return st;
    if (a->opt.socket_override)
        snprintf(n->cfg->publish.socket, sizeof n->cfg->publish.socket, "%s",
                 a->opt.socket_override);
    st = app_engine_set_open(n->cfg, &n->eng, err, errlen);
    if (st != BN_OK)
        return st;
    st = server_check_access(n->cfg->publish.group, n->cfg->publish.control_group, err, errlen);
    if (st != BN_OK)
        return st;
    n->mqtt_changed = memcmp(&a->cfg.mqtt, &n->cfg->mqtt, sizeof n->cfg->mqtt) != 0 ||
                      strcmp(a->cfg.camera, n->cfg->camera) != 0;
    if (n->mqtt_changed && n->cfg->mqtt.enabled) {
        st = mqtt_open(&n->cfg->mqtt, n->cfg->camera, &n->mqtt, err, errlen);
        if (st != BN_OK)
            return st;
    }
    const bn_model_info *ni = bn_model_get_info(n->eng.model);
    n->new_capture = !a->cap || !same_source(&a->cfg, n->cfg) || ni->width != a->info->width ||
                     ni->height != a->info->height || ni->channels != a->info->channels;
    return BN_OK;
}

/* The running pipeline is stopped (a camera cannot be opened twice). Opens the new source;
 * on an error a retry cannot fix, the caller goes back to the old one. */
static bn_status reload_open_capture(app *a, reload_set *n, char *err, size_t errlen)
{
    if (!n->new_capture)
        return BN_OK;
    app_cancel_retry(a);
    capture_close(a->cap);
    a->cap = NULL;
    bn_status st = app_open_capture(a, n->cfg, bn_model_get_info(n->eng.model), &n->cap, err,
                                    errlen);
    if (st != BN_OK && bn_status_recoverable(st)) {
        n->retry_capture = true;
        return BN_OK;
    }
    return st;
}

/* Everything opened: switch. Only server_set_access can still fail (chown/chmod of the
 * socket file); it is first, and undone if it does. */
static bn_status reload_commit(app *a, reload_set *n, char *err, size_t errlen)
{
    const publish_config *np = &n->cfg->publish, *op = &a->cfg.publish;
    bn_status st = server_set_access(a->srv, np->mode, np->group, np->control_group, err, errlen);
    if (st != BN_OK) {
        char e2[256];
        if (server_set_access(a->srv, op->mode, op->group, op->control_group, e2, sizeof e2) !=
            BN_OK)
            BN_LOGE(MOD, "cannot restore the socket's access: %s", e2);
        return st;
    }
    if (n->mqtt_changed) {
        mqtt_close(a->mqtt);
        a->mqtt = n->mqtt;
        n->mqtt = NULL;
    }
    if (strcmp(op->socket, np->socket) != 0)
        BN_LOGW(MOD, "publish.socket changed to %s: takes effect at the next restart",
                np->socket);
    server_set_limits(a->srv, np->max_clients, np->queue, np->max_line);
    app_engine_set_free(&a->eng);
    a->eng = n->eng;
    memset(&n->eng, 0, sizeof n->eng);
    a->info = bn_model_get_info(a->eng.model);
    a->cfg = *n->cfg;
    bn_log_set_level((bn_log_level)a->cfg.log_level);
    debounce_init(&a->deb, a->cfg.publish.change_frames);
    app_rebuild_hello(a);
    server_publish(a->srv, a->hello);   /* labels may have changed: tell every subscriber */
    if (n->new_capture && !n->retry_capture) {
        a->cap = n->cap;
        n->cap = NULL;
        a->src_state = CAPTURE_STARTING;    /* src_was_lost stays: "recovered" follows */
    }
    return BN_OK;
}

static bn_status reload(app *a, char *err, size_t errlen)
{
    reload_set n;
    memset(&n, 0, sizeof n);
    bn_status st = reload_prepare(a, &n, err, errlen);
    if (st != BN_OK) {
        reload_set_free(&n);
        return st;
    }
    /* From here the old pipeline stops for a moment; subscribers stay connected. */
    app_stop_infer(a);
    st = reload_open_capture(a, &n, err, errlen);
    if (st == BN_OK)
        st = reload_commit(a, &n, err, errlen);
    bool old_source_closed = st != BN_OK && n.new_capture;
    reload_set_free(&n);
    /* Inference again: on the new config's source, or (rejected) on the old one, reopened
     * when it was closed for the new. */
    char err2[1024];
    bn_status st2 = a->cap && !old_source_closed ? app_start_infer(a, err2, sizeof err2)
                                                 : app_source_begin(a, err2, sizeof err2);
    if (st2 != BN_OK) {
        BN_LOGE(MOD, "cannot restart inference after reload: %s", err2);
        a->exit_code = 1;
        g_main_loop_quit(a->loop);
    } else if (a->inf && !a->result_src) {
        app_attach_results(a);
    }
    return st;
}

bn_status app_do_reload(app *a, char *err, size_t errlen)
{
    BN_LOGI(MOD, "reloading %s", a->opt.config_path);
    sd_notify(0, "RELOADING=1");
    bn_status st = reload(a, err, errlen);
    if (st == BN_OK) {
        a->reloads_ok++;
        a->reload_error[0] = '\0';
        BN_LOGI(MOD, "reload done: model %s, camera %s", a->info->name ? a->info->name : "?",
                a->cfg.camera);
    } else {
        a->reloads_failed++;
        snprintf(a->reload_error, sizeof a->reload_error, "%s", err);
        BN_LOGE(MOD, "reload rejected, the previous config keeps running:\n%s", err);
    }
    sd_notify(0, "READY=1");
    return st;
}

bn_status app_check_config(const char *path, char *err, size_t errlen)
{
    bn_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    config_init(cfg);
    bn_status st = config_load(path, cfg, err, errlen);
    if (st == BN_OK) {
        bn_model *m = NULL;
        char msg[1024];
        st = bn_model_open(cfg->model, &m, msg, sizeof msg);
        if (st != BN_OK)
            snprintf(err, errlen, "%s: model %s: %s", path, cfg->model, msg);
        bn_model_close(m);
    }
    free(cfg);
    return st;
}
