/* Protocol v1: message encoding round-trips through a JSON parser, command parsing accepts
 * exactly the documented commands and keys, filters, and the change debouncer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "debounce.h"
#include "protocol.h"

static json_t *reparse(json_t *msg, size_t *len_out)
{
    size_t len;
    char *line = proto_dump_line(msg, &len);
    json_decref(msg);
    assert_non_null(line);
    assert_int_equal(strlen(line), len);
    assert_true(len >= 3);
    assert_string_equal(line + len - 2, "}\n");
    assert_null(memchr(line, '\n', len - 1));   /* exactly one line */
    json_error_t e;
    json_t *o = json_loadb(line, len, 0, &e);
    assert_non_null(o);
    free(line);
    if (len_out)
        *len_out = len;
    return o;
}

static void test_label_message(void **state)
{
    (void)state;
    proto_label m = {.seq = 42, .pts_ns = 1234567890, .time_ns = 1700000000123456789LL,
                     .label = "Sneaker", .class_id = 7, .score = 0.973456, .stage = 1,
                     .reason = NULL, .threshold = 0.91, .ms_light = 0.4567, .ms_synth = 0.1,
                     .ms_specialist = 1.25, .ms_total = 1.8067, .ms_capture_to_publish = 12.5,
                     .dropped_frames = 3};
    json_t *o = reparse(proto_label_json(&m), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "label");
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 42);
    assert_int_equal(json_integer_value(json_object_get(o, "pts_ns")), 1234567890);
    assert_string_equal(json_string_value(json_object_get(o, "time")), "2023-11-14T22:13:20.123Z");
    assert_string_equal(json_string_value(json_object_get(o, "label")), "Sneaker");
    assert_int_equal(json_integer_value(json_object_get(o, "class")), 7);
    assert_float_equal(json_real_value(json_object_get(o, "score")), 0.9735, 1e-9);
    assert_string_equal(json_string_value(json_object_get(o, "stage")), "specialist");
    assert_null(json_object_get(o, "reason"));
    assert_float_equal(json_real_value(json_object_get(o, "threshold")), 0.91, 1e-9);
    json_t *lat = json_object_get(o, "latency_ms");
    assert_float_equal(json_real_value(json_object_get(lat, "light")), 0.457, 1e-9);
    assert_float_equal(json_real_value(json_object_get(lat, "specialist")), 1.25, 1e-9);
    assert_float_equal(json_real_value(json_object_get(lat, "total")), 1.807, 1e-9);
    assert_float_equal(json_real_value(json_object_get(lat, "capture_to_publish")), 12.5, 1e-9);
    assert_int_equal(json_integer_value(json_object_get(o, "dropped_frames")), 3);
    assert_null(json_object_get(o, "synth_reused")); /* engine.synth_reuse off */
    json_decref(o);

    /* synthesis reuse on: the layers kept on this specialist frame */
    m.synth_reuse_on = true;
    m.synth_reused = 17;
    o = reparse(proto_label_json(&m), NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "synth_reused")), 17);
    json_decref(o);
    m.synth_reused = 0;
    o = reparse(proto_label_json(&m), NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "synth_reused")), 0);
    json_decref(o);

    m.stage = 0;
    m.reason = "deadline";
    o = reparse(proto_label_json(&m), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "stage")), "light");
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "deadline");
    assert_null(json_object_get(json_object_get(o, "latency_ms"), "gate")); /* gate off */
    assert_null(json_object_get(o, "age_ms"));
    assert_null(json_object_get(o, "synth_reused")); /* the specialist did not run */
    assert_null(json_object_get(o, "gate"));
    json_decref(o);

    /* the gate closed: the last answer, "stage":"reuse", its age, the gate's cost */
    m.stage = PROTO_STAGE_REUSE;
    m.reason = NULL;
    m.gated = true;
    m.ms_light = m.ms_synth = m.ms_specialist = 0;
    m.ms_gate = m.ms_total = 0.0042;
    m.ms_age = 233.3334;
    m.gate = "held";
    o = reparse(proto_label_json(&m), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "gate")), "held");
    assert_string_equal(json_string_value(json_object_get(o, "stage")), "reuse");
    assert_string_equal(json_string_value(json_object_get(o, "label")), "Sneaker");
    assert_float_equal(json_real_value(json_object_get(o, "age_ms")), 233.333, 1e-9);
    lat = json_object_get(o, "latency_ms");
    assert_float_equal(json_real_value(json_object_get(lat, "gate")), 0.004, 1e-9);
    assert_float_equal(json_real_value(json_object_get(lat, "total")), 0.004, 1e-9);
    assert_float_equal(json_real_value(json_object_get(lat, "light")), 0, 0);
    json_decref(o);
}

static void test_label_escapes_strings(void **state)
{
    (void)state;
    proto_label m = {.label = "T-shirt/\"top\"\n", .time_ns = 0};
    json_t *o = reparse(proto_label_json(&m), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "label")), "T-shirt/\"top\"\n");
    assert_string_equal(json_string_value(json_object_get(o, "time")), "1970-01-01T00:00:00.000Z");
    json_decref(o);
}

static void test_other_messages(void **state)
{
    (void)state;
    json_t *o = reparse(proto_change_json(9, 5000, 0, "Bag", 8, 0.8, NULL, 3), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "change");
    assert_true(json_is_null(json_object_get(o, "previous")));
    assert_int_equal(json_integer_value(json_object_get(o, "frames")), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "pts_ns")), 5000);
    json_decref(o);
    o = reparse(proto_change_json(10, 6000, 0, "Coat", 4, 0.8, "Bag", 3), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "previous")), "Bag");
    json_decref(o);

    o = reparse(proto_source_json(0, "lost", "Cannot identify device '/dev/video9'"), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "lost");
    json_decref(o);

    o = reparse(proto_reply_json("ping", "\"abc\""), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "reply");
    assert_true(json_is_true(json_object_get(o, "ok")));
    assert_string_equal(json_string_value(json_object_get(o, "id")), "abc");
    json_decref(o);

    o = reparse(proto_error_json("set", "17", "permission denied"), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(o, "cmd")), "set");
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 17);
    json_decref(o);
    o = reparse(proto_error_json(NULL, "", "bad"), NULL);
    assert_null(json_object_get(o, "cmd"));
    assert_null(json_object_get(o, "id"));
    json_decref(o);

    /* text that is not UTF-8 (a parser's error quoting the input cut mid-character, a file
     * name): still a message, the bad bytes as U+FFFD (found by fuzz_command) */
    static const char bad_json[] = "{\"cmd\":\"&\\\xe1\x86\x86\x86\x86\x86\x86\x86\x86\"}";
    proto_command cmd;
    char err[256];
    assert_int_not_equal(proto_parse_command(bad_json, sizeof bad_json - 1, &cmd, err, sizeof err),
                         BN_OK);
    o = reparse(proto_error_json(NULL, NULL, err), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "error");
    assert_non_null(strstr(json_string_value(json_object_get(o, "error")), "malformed JSON"));
    json_decref(o);
    o = reparse(proto_source_json(0, "lost", "no file '/srv/caf\xe9.mkv'"), NULL);
    assert_string_equal(json_string_value(json_object_get(o, "message")),
                        "no file '/srv/caf\xef\xbf\xbd.mkv'");
    json_decref(o);
}

static bn_status parse(const char *s, proto_command *c, char *err)
{
    return proto_parse_command(s, strlen(s), c, err, 256);
}

static void test_parse_valid(void **state)
{
    (void)state;
    proto_command c;
    char err[256];
    assert_int_equal(parse("{\"cmd\":\"ping\"}", &c, err), BN_OK);
    assert_int_equal(c.kind, PROTO_CMD_PING);
    assert_string_equal(c.id, "");
    assert_int_equal(parse(" {\"cmd\":\"stats\",\"id\":\"x1\"} ", &c, err), BN_OK);
    assert_int_equal(c.kind, PROTO_CMD_STATS);
    assert_string_equal(c.id, "\"x1\"");
    assert_int_equal(parse("{\"cmd\":\"reload\",\"id\":5}", &c, err), BN_OK);
    assert_int_equal(c.kind, PROTO_CMD_RELOAD);
    assert_string_equal(c.id, "5");
    assert_true(proto_cmd_needs_control(PROTO_CMD_RELOAD));
    assert_true(proto_cmd_needs_control(PROTO_CMD_SET));
    assert_false(proto_cmd_needs_control(PROTO_CMD_SUBSCRIBE));
    assert_false(proto_cmd_needs_control(PROTO_CMD_STATS));

    assert_int_equal(parse("{\"cmd\":\"subscribe\",\"labels\":[\"Bag\",\"Coat\"],"
                           "\"min_score\":0.5,\"changes\":true}", &c, err), BN_OK);
    assert_int_equal(c.kind, PROTO_CMD_SUBSCRIBE);
    assert_false(c.filter.all_labels);
    assert_int_equal(c.filter.n_labels, 2);
    assert_string_equal(c.filter.labels[1], "Coat");
    assert_float_equal(c.filter.min_score, 0.5, 0);
    assert_true(c.filter.changes_only);

    assert_int_equal(parse("{\"cmd\":\"subscribe\"}", &c, err), BN_OK);
    assert_true(c.filter.all_labels);
    assert_false(c.filter.changes_only);

    assert_int_equal(parse("{\"cmd\":\"set\",\"budget_ms\":12.5}", &c, err), BN_OK);
    assert_true(c.set.has_budget_ms);
    assert_false(c.set.has_threshold);
    assert_float_equal(c.set.budget_ms, 12.5, 0);
    assert_int_equal(parse("{\"cmd\":\"set\",\"threshold_min\":0.2,\"threshold_max\":0.9}", &c,
                           err), BN_OK);
    assert_true(c.set.has_threshold_min && c.set.has_threshold_max);
    assert_int_equal(parse("{\"cmd\":\"set\",\"threshold\":1}", &c, err), BN_OK);
    assert_true(c.set.has_threshold);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        bn_status st;
        const char *msg_part;
        proto_cmd_kind kind;
    } cases[] = {
        {"", BN_ERR_FORMAT, "malformed JSON", PROTO_CMD_COUNT},
        {"{\"cmd\":", BN_ERR_FORMAT, "malformed JSON", PROTO_CMD_COUNT},
        {"[1,2]", BN_ERR_FORMAT, "JSON object", PROTO_CMD_COUNT},
        {"\"ping\"", BN_ERR_FORMAT, "malformed JSON", PROTO_CMD_COUNT},
        {"{}", BN_ERR_INVALID_ARG, "missing \"cmd\"", PROTO_CMD_COUNT},
        {"{\"cmd\":5}", BN_ERR_INVALID_ARG, "must be a string", PROTO_CMD_COUNT},
        {"{\"cmd\":\"reboot\"}", BN_ERR_INVALID_ARG, "unknown command 'reboot'", PROTO_CMD_COUNT},
        {"{\"cmd\":\"ping\",\"x\":1}", BN_ERR_INVALID_ARG, "unknown key 'x'", PROTO_CMD_PING},
        {"{\"cmd\":\"ping\",\"cmd\":\"stats\"}", BN_ERR_FORMAT, "duplicate", PROTO_CMD_COUNT},
        {"{\"cmd\":\"subscribe\",\"labels\":\"Bag\"}", BN_ERR_INVALID_ARG, "array", PROTO_CMD_SUBSCRIBE},
        {"{\"cmd\":\"subscribe\",\"labels\":[1]}", BN_ERR_INVALID_ARG, "labels[0]", PROTO_CMD_SUBSCRIBE},
        {"{\"cmd\":\"subscribe\",\"min_score\":\"high\"}", BN_ERR_INVALID_ARG, "number", PROTO_CMD_SUBSCRIBE},
        {"{\"cmd\":\"subscribe\",\"min_score\":2}", BN_ERR_INVALID_ARG, "from 0 to 1", PROTO_CMD_SUBSCRIBE},
        {"{\"cmd\":\"subscribe\",\"changes\":1}", BN_ERR_INVALID_ARG, "true or false", PROTO_CMD_SUBSCRIBE},
        {"{\"cmd\":\"set\"}", BN_ERR_INVALID_ARG, "set needs one of", PROTO_CMD_SET},
        {"{\"cmd\":\"set\",\"budget_ms\":-1}", BN_ERR_INVALID_ARG, "budget_ms", PROTO_CMD_SET},
        {"{\"cmd\":\"set\",\"budget_ms\":\"5\"}", BN_ERR_INVALID_ARG, "number", PROTO_CMD_SET},
        {"{\"cmd\":\"set\",\"threshold_min\":0.9,\"threshold_max\":0.5}", BN_ERR_INVALID_ARG,
         "above threshold_max", PROTO_CMD_SET},
        {"{\"cmd\":\"set\",\"budget-ms\":5}", BN_ERR_INVALID_ARG, "unknown key", PROTO_CMD_SET},
        {"{\"cmd\":\"ping\",\"id\":[1]}", BN_ERR_INVALID_ARG, "'id'", PROTO_CMD_COUNT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_command c;
        char err[256];
        bn_status st = parse(cases[i].line, &c, err);
        if (st != cases[i].st || !strstr(err, cases[i].msg_part) || c.kind != cases[i].kind)
            fail_msg("case %zu '%s': status %d kind %d err '%s'", i, cases[i].line, st, c.kind,
                     err);
    }
    /* labels list longer than the limit */
    char big[8192] = "{\"cmd\":\"subscribe\",\"labels\":[";
    for (int i = 0; i <= PROTO_MAX_FILTER_LABELS; i++)
        strcat(big, i ? ",\"a\"" : "\"a\"");
    strcat(big, "]}");
    proto_command c;
    char err[256];
    assert_int_equal(parse(big, &c, err), BN_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "at most"));
    /* not NUL-terminated input is bounded by len */
    const char buf[] = {'{', '"', 'c', 'm', 'd', '"', ':', '"', 'p', 'i', 'n', 'g', '"', '}', 'X'};
    assert_int_equal(proto_parse_command(buf, 14, &c, err, sizeof err), BN_OK);
    assert_int_equal(proto_parse_command(buf, 15, &c, err, sizeof err), BN_ERR_FORMAT);
}

static void test_filters(void **state)
{
    (void)state;
    proto_filter f;
    proto_filter_init(&f);
    assert_true(proto_filter_pass_label(&f, "Bag", 0.0));
    assert_true(proto_filter_pass_change(&f, "Bag"));
    f.min_score = 0.5;
    assert_false(proto_filter_pass_label(&f, "Bag", 0.49));
    assert_true(proto_filter_pass_label(&f, "Bag", 0.5));
    f.all_labels = false;
    f.n_labels = 1;
    strcpy(f.labels[0], "Coat");
    assert_false(proto_filter_pass_label(&f, "Bag", 0.9));
    assert_true(proto_filter_pass_label(&f, "Coat", 0.9));
    assert_false(proto_filter_pass_change(&f, "Bag"));
    f.changes_only = true;
    assert_false(proto_filter_pass_label(&f, "Coat", 0.9));
    assert_true(proto_filter_pass_change(&f, "Coat"));
    f.n_labels = 0;     /* empty list: nothing passes */
    assert_false(proto_filter_pass_change(&f, "Coat"));
}

static void test_debounce(void **state)
{
    (void)state;
    debounce d;
    debounce_init(&d, 3);
    int prev = 99;
    /* first stable label after 3 frames */
    assert_false(debounce_feed(&d, 1, &prev));
    assert_false(debounce_feed(&d, 1, &prev));
    assert_true(debounce_feed(&d, 1, &prev));
    assert_int_equal(prev, -1);
    assert_int_equal(d.stable, 1);
    /* a 2-frame blip does not change it */
    assert_false(debounce_feed(&d, 2, &prev));
    assert_false(debounce_feed(&d, 2, &prev));
    assert_false(debounce_feed(&d, 1, &prev));
    /* an interrupted run starts over */
    assert_false(debounce_feed(&d, 2, &prev));
    assert_false(debounce_feed(&d, 3, &prev));
    assert_false(debounce_feed(&d, 2, &prev));
    assert_false(debounce_feed(&d, 2, &prev));
    assert_true(debounce_feed(&d, 2, &prev));
    assert_int_equal(prev, 1);
    assert_int_equal(d.stable, 2);
    /* frames = 1 (or less): every new class is a change */
    debounce_init(&d, 0);
    assert_true(debounce_feed(&d, 5, &prev));
    assert_false(debounce_feed(&d, 5, &prev));
    assert_true(debounce_feed(&d, 6, &prev));
    assert_int_equal(prev, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_message),
        cmocka_unit_test(test_label_escapes_strings),
        cmocka_unit_test(test_other_messages),
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_debounce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
