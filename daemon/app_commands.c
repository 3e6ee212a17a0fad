/* Control commands from socket clients (`stats`, `set`, `reload`); the server has already
 * checked the peer's right to change state (docs/protocol.md). */
#include <string.h>

#include "app_internal.h"
#include "bn_log.h"

#define MOD "daemon"

static void cmd_set(app *a, server *srv, server_client *c, const proto_command *cmd)
{
    const proto_set *s = &cmd->set;
    budget_params bp = a->eng.bp;
    bool rebuild = false;
    if (s->has_threshold) {
        bp.mode = BUDGET_OFF;
        bp.fixed_threshold = s->threshold;
        rebuild = true;
    }
    if (s->has_threshold_min) {
        bp.min = s->threshold_min;
        rebuild = true;
    }
    if (s->has_threshold_max) {
        bp.max = s->threshold_max;
        rebuild = true;
    }
    if (s->has_budget_ms) {
        bp.latency_ms = s->budget_ms;
        if (bp.mode == BUDGET_OFF && !s->has_threshold) {
            bp.mode = BUDGET_MEAN;  /* a budget means: control to it */
            rebuild = true;
        }
    }
    char err[256];
    if (rebuild) {
        budget_stats bs;
        memset(&bs, 0, sizeof bs);
        if (a->inf)
            infer_budget_stats(a->inf, &bs);
        if (budget_params_check(&bp, err, sizeof err) != BN_OK) {
            server_send_json(srv, c, proto_error_json("set", cmd->id, err));
            return;
        }
        /* Without a running thread (no source yet) the parameters are used when it starts. */
        if (a->inf) {
            budget_ctl *b = app_budget_create(&bp, a->info, (uint64_t)(bs.t_light_ms * 1e6),
                                              (uint64_t)(bs.t_spec_ms * 1e6), err, sizeof err);
            if (!b) {
                server_send_json(srv, c, proto_error_json("set", cmd->id, err));
                return;
            }
            infer_set_budget(a->inf, b);
        }
    } else if (s->has_budget_ms && a->inf) {
        infer_set_budget_ms(a->inf, s->budget_ms);
    }
    a->eng.bp = bp;
    app_rebuild_hello(a);   /* new clients see the budget now in force */
    BN_LOGI(MOD, "set by pid %d: budget mode %s, %.3g ms, threshold [%.3g, %.3g], fixed %.3g",
            (int)server_client_pid(c), budget_mode_name(bp.mode), bp.latency_ms,
            bp.min, bp.max, bp.fixed_threshold);
    json_t *r = proto_reply_json("set", cmd->id);
    json_object_set_new(r, "budget", app_budget_json(&bp));
    server_send_json(srv, c, r);
}

/* The stats reply (~7.5 KB, ~0.3 ms to build): the server shares one among the clients that
 * ask within a short interval (server_send_cached). */
static json_t *build_stats_reply(void *user)
{
    json_t *r = proto_reply_json("stats", NULL);
    json_object_set_new(r, "stats", app_stats_json(user));
    return r;
}

void app_on_command(server *srv, server_client *c, const proto_command *cmd, void *user)
{
    app *a = user;
    switch (cmd->kind) {
    case PROTO_CMD_STATS:
        /* a reload's outcome shows in the next reply */
        server_send_cached(srv, c, cmd, a->reloads_ok + a->reloads_failed, build_stats_reply, a);
        break;
    case PROTO_CMD_SET:
        cmd_set(a, srv, c, cmd);
        server_cache_invalidate(srv);
        break;
    case PROTO_CMD_RELOAD: {
        char err[2048];
        if (app_do_reload(a, err, sizeof err) == BN_OK)
            server_send_json(srv, c, proto_reply_json("reload", cmd->id));
        else
            server_send_json(srv, c, proto_error_json("reload", cmd->id, err));
        break;
    }
    default:
        server_send_json(srv, c, proto_error_json(proto_cmd_name(cmd->kind), cmd->id,
                                                  "command not available"));
    }
}

