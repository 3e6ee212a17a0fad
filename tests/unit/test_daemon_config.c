/* Tests for the YAML config loader (daemon/config.c): defaults, every key, relative path
 * resolution, the example configs, and the exact message for each class of error.
 * Run from the repository root (fixtures are in tests/fixtures/config/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

#define FIXTURE(name) "tests/fixtures/config/" name

/* bn_config is ~40 KiB; one per test on the heap keeps the stack small under ASan. */
static int setup_cfg(void **state)
{
    *state = calloc(1, sizeof(bn_config));
    return *state ? 0 : -1;
}

static int teardown_cfg(void **state)
{
    free(*state);
    return 0;
}

static bn_status load_text(const char *name, const char *text, bn_config *cfg, char *err,
                           size_t errlen)
{
    return config_load_buffer(name, text, strlen(text), cfg, err, errlen);
}

static void cwd_join(char *out, size_t outlen, const char *rel)
{
    char cwd[BN_PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(out, outlen, "%s/%s", cwd, rel);
}

/* Every key a loaded config holds, as a test expects it. expect_config checks each field; one
 * a want leaves out is expected empty: "" for a string (NULL in the want), 0 or false else. */
typedef struct {
    const char *camera, *model;
    int log_level, stats_interval_s;
    struct {
        source_kind kind;
        const char *device, *path;
        bool loop;
        const char *pattern, *pipeline;
        int width, height, fps;
        source_format format;
        aspect_mode aspect;
        int n_controls;
        const source_control *controls;   /* n_controls of them, in order */
        int retry_initial_ms, retry_max_ms;
    } source;
    engine_config engine;
    budget_config budget;
    struct {
        const char *socket;
        unsigned mode;
        const char *group, *control_group;
        int max_clients, queue, max_line, change_frames;
    } publish;
    struct {
        bool enabled;
        const char *host;
        int port;
        const char *client_id, *topic_prefix;
        int qos;
        bool retain;
        int keepalive;
        const char *ca_file, *cert_file, *key_file, *username, *password_file;
        int queue;
        bool publish_labels;
    } mqtt;
} config_want;

/* Field f of the config against the same field of the want (a NULL string meaning ""). */
#define EXPECT_INT(f) assert_int_equal(cfg->f, w->f)
#define EXPECT_STR(f) assert_string_equal(cfg->f, w->f ? w->f : "")
#define EXPECT_EXACT(f) assert_true(cfg->f == w->f) /* doubles: the literals themselves */

static void expect_config(const bn_config *cfg, const config_want *w)
{
    EXPECT_STR(camera);
    EXPECT_STR(model);
    EXPECT_INT(log_level);
    EXPECT_INT(stats_interval_s);

    EXPECT_INT(source.kind);
    EXPECT_STR(source.device);
    EXPECT_STR(source.path);
    EXPECT_INT(source.loop);
    EXPECT_STR(source.pattern);
    EXPECT_STR(source.pipeline);
    EXPECT_INT(source.width);
    EXPECT_INT(source.height);
    EXPECT_INT(source.fps);
    EXPECT_INT(source.format);
    EXPECT_INT(source.aspect);
    EXPECT_INT(source.n_controls);
    for (int i = 0; i < w->source.n_controls; i++) {
        assert_string_equal(cfg->source.controls[i].name, w->source.controls[i].name);
        assert_int_equal(cfg->source.controls[i].value, w->source.controls[i].value);
    }
    EXPECT_INT(source.retry_initial_ms);
    EXPECT_INT(source.retry_max_ms);

    EXPECT_INT(engine.threads);
    EXPECT_EXACT(engine.threshold);
    EXPECT_INT(budget.mode);
    EXPECT_EXACT(budget.latency_ms);
    EXPECT_EXACT(budget.min);
    EXPECT_EXACT(budget.max);
    EXPECT_INT(budget.window);
    EXPECT_INT(budget.horizon);

    EXPECT_STR(publish.socket);
    EXPECT_INT(publish.mode);
    EXPECT_STR(publish.group);
    EXPECT_STR(publish.control_group);
    EXPECT_INT(publish.max_clients);
    EXPECT_INT(publish.queue);
    EXPECT_INT(publish.max_line);
    EXPECT_INT(publish.change_frames);

    EXPECT_INT(mqtt.enabled);
    EXPECT_STR(mqtt.host);
    EXPECT_INT(mqtt.port);
    EXPECT_STR(mqtt.client_id);
    EXPECT_STR(mqtt.topic_prefix);
    EXPECT_INT(mqtt.qos);
    EXPECT_INT(mqtt.retain);
    EXPECT_INT(mqtt.keepalive);
    EXPECT_STR(mqtt.ca_file);
    EXPECT_STR(mqtt.cert_file);
    EXPECT_STR(mqtt.key_file);
    EXPECT_STR(mqtt.username);
    EXPECT_STR(mqtt.password_file);
    EXPECT_INT(mqtt.queue);
    EXPECT_INT(mqtt.publish_labels);
}

#undef EXPECT_INT
#undef EXPECT_STR
#undef EXPECT_EXACT

static void test_defaults(void **state)
{
    bn_config *cfg = *state;
    memset(cfg, 0xA5, sizeof *cfg);
    config_init(cfg);
    expect_config(cfg, &(config_want){
        .camera = "camera",
        .log_level = 2, /* BN_LOG_INFO */
        .stats_interval_s = 10,
        .source = {.kind = SOURCE_V4L2, .pattern = "smpte", .width = 640, .height = 480,
                   .fps = 30, .format = PIXFMT_AUTO, .aspect = ASPECT_CROP,
                   .retry_initial_ms = 500, .retry_max_ms = 10000},
        .engine = {.threads = 1, .threshold = 0.9},
        .budget = {.mode = BUDGET_OFF, .latency_ms = 50.0, .min = 0.5, .max = 0.99,
                   .window = 256, .horizon = 100},
        .publish = {.socket = "/run/basisnetd/basisnetd.sock", .mode = 0660, .max_clients = 64,
                    .queue = 256, .max_line = 4096, .change_frames = 3},
        .mqtt = {.enabled = false, .port = 1883, .client_id = "basisnetd-camera",
                 .topic_prefix = "basisnet/camera", .qos = 0, .retain = true, .keepalive = 60,
                 .queue = 1000, .publish_labels = false},
    });
}

/* A minimal file leaves every optional key at its default (the loader initializes). */
static void test_minimal_file_gets_defaults(void **state)
{
    bn_config *cfg = *state, *ref = calloc(1, sizeof *ref);
    assert_non_null(ref);
    char err[1024], want[BN_PATH_MAX + 64];
    memset(cfg, 0x5A, sizeof *cfg);
    assert_int_equal(config_load(FIXTURE("good-minimal.yaml"), cfg, err, sizeof err), BN_OK);
    assert_string_equal(err, "");
    cwd_join(want, sizeof want, "tests/fixtures/config/model.bnm");
    assert_string_equal(cfg->model, want);
    assert_int_equal(cfg->source.kind, SOURCE_TEST);
    config_init(ref);
    memcpy(ref->model, cfg->model, sizeof ref->model);
    ref->source.kind = SOURCE_TEST;
    /* Positions of the keys written (config_where), none for the defaults. */
    char where[BN_PATH_MAX + 128];
    config_where(cfg, "source.kind", where, sizeof where);
    assert_string_equal(where, "tests/fixtures/config/good-minimal.yaml:4:3: key 'source.kind'");
    config_where(cfg, "source.fps", where, sizeof where);
    assert_string_equal(where, "tests/fixtures/config/good-minimal.yaml: key 'source.fps' (default)");
    ref->origin = cfg->origin;
    assert_memory_equal(cfg, ref, sizeof *ref);
    free(ref);
}

static void test_every_key(void **state)
{
    bn_config *cfg = *state;
    char err[1024], model[BN_PATH_MAX + 64], clip[BN_PATH_MAX + 64], cert[BN_PATH_MAX + 64],
        key[BN_PATH_MAX + 64], password[BN_PATH_MAX + 64];
    assert_int_equal(config_load(FIXTURE("good-full.yaml"), cfg, err, sizeof err), BN_OK);
    assert_string_equal(err, "");
    cwd_join(model, sizeof model, "tests/fixtures/config/models/full.bnm");
    cwd_join(clip, sizeof clip, "tests/fixtures/config/clips/door.mkv");
    cwd_join(cert, sizeof cert, "tests/fixtures/config/tls/client.crt");
    cwd_join(key, sizeof key, "tests/fixtures/config/tls/client.key");
    cwd_join(password, sizeof password, "tests/fixtures/config/../secrets/mqtt-password");
    expect_config(cfg, &(config_want){
        .camera = "front-door_2.cam",
        .model = model,
        .log_level = 3,
        .stats_interval_s = 30,
        .source = {.kind = SOURCE_FILE, .device = "/dev/video2", .path = clip, .loop = true,
                   .pattern = "ball", .pipeline = "videotestsrc pattern=snow ! videoconvert",
                   .width = 1280, .height = 720, .fps = 15, .format = PIXFMT_MJPEG,
                   .aspect = ASPECT_LETTERBOX, .n_controls = 3,
                   .controls = (const source_control[]){{"brightness", 128},
                                                        {"white_balance_automatic", 0},
                                                        {"exposure_time_absolute", -3}},
                   .retry_initial_ms = 250, .retry_max_ms = 30000},
        .engine = {.threads = 2, .threshold = 0.75},
        .budget = {.mode = BUDGET_DEADLINE, .latency_ms = 12.5, .min = 0.3, .max = 0.95,
                   .window = 512, .horizon = 50},
        .publish = {.socket = "/tmp/bn-full.sock", .mode = 0640, .group = "video",
                    .control_group = "wheel", .max_clients = 8, .queue = 32, .max_line = 1024,
                    .change_frames = 5},
        .mqtt = {.enabled = true, .host = "broker.example.org", .port = 8883,
                 .client_id = "door-cam", .topic_prefix = "home/cameras/door", .qos = 1,
                 .retain = false, .keepalive = 30, .ca_file = "/etc/ssl/certs/ca.pem",
                 .cert_file = cert, .key_file = key, .username = "door",
                 .password_file = password, .queue = 50, .publish_labels = true},
    });
}

static void test_relative_paths_resolve_against_config_dir(void **state)
{
    bn_config *cfg = *state;
    char err[1024], want[BN_PATH_MAX + 64];
    const char *text = "model: ../models/m.bnm\n"
                       "source: {kind: file, path: ./clips//a.mkv}\n"
                       "mqtt: {host: h, username: u, password_file: /abs/pw}\n";
    assert_int_equal(load_text("/srv/cams/door.yaml", text, cfg, err, sizeof err), BN_OK);
    assert_string_equal(cfg->model, "/srv/cams/../models/m.bnm");
    assert_string_equal(cfg->source.path, "/srv/cams/clips//a.mkv");
    assert_string_equal(cfg->mqtt.password_file, "/abs/pw");

    /* A config at the root of the file system. */
    assert_int_equal(load_text("/door.yaml", text, cfg, err, sizeof err), BN_OK);
    assert_string_equal(cfg->model, "/../models/m.bnm");

    /* A relative config path is anchored to the current directory. */
    assert_int_equal(load_text("etc/door.yaml", text, cfg, err, sizeof err), BN_OK);
    cwd_join(want, sizeof want, "etc/../models/m.bnm");
    assert_string_equal(cfg->model, want);
    assert_int_equal(load_text("door.yaml", text, cfg, err, sizeof err), BN_OK);
    cwd_join(want, sizeof want, "../models/m.bnm");
    assert_string_equal(cfg->model, want);

    /* Strings that are not paths stay as written. */
    assert_int_equal(load_text("/srv/door.yaml",
                               "model: m\nsource: {kind: v4l2, device: video0}\n"
                               "publish: {socket: run/x.sock}\n",
                               cfg, err, sizeof err),
                     BN_OK);
    assert_string_equal(cfg->source.device, "video0");
    assert_string_equal(cfg->publish.socket, "run/x.sock");
}

/* The configs shipped in configs/ must load, and mean what their comments say. */
static void test_example_configs_load(void **state)
{
    bn_config *cfg = *state;
    char err[2048], want[BN_PATH_MAX + 64];
    assert_int_equal(config_load("configs/sample.yaml", cfg, err, sizeof err), BN_OK);
    assert_string_equal(err, "");
    assert_int_equal(cfg->source.kind, SOURCE_FILE);
    cwd_join(want, sizeof want, "configs/../samples/fmnist-sample.mkv");
    assert_string_equal(cfg->source.path, want);
    cwd_join(want, sizeof want, "configs/../models/fmnist-basisnet.bnm");
    assert_string_equal(cfg->model, want);

    assert_int_equal(config_load("configs/camera.yaml", cfg, err, sizeof err), BN_OK);
    assert_string_equal(err, "");
    assert_int_equal(cfg->source.kind, SOURCE_V4L2);
    assert_string_equal(cfg->source.device, "/dev/video0");
    assert_string_equal(cfg->publish.group, "basisnetd");
    assert_false(cfg->mqtt.enabled);

    assert_int_equal(config_load("configs/test.yaml", cfg, err, sizeof err), BN_OK);
    assert_string_equal(err, "");
    assert_int_equal(cfg->source.kind, SOURCE_TEST);
}

/* One fixture per class of error, with the exact message a user sees. */
static const struct {
    const char *fixture;
    const char *message;
} fixture_errors[] = {
    {"bad-unknown-key.yaml", ":4:3: unknown key 'source.fsp' (did you mean 'source.fps'?)"},
    {"bad-wrong-type.yaml",
     ":4:8: key 'source.fps': expected an integer from 1 to 240, got \"thirty\""},
    {"bad-out-of-range.yaml",
     ":4:8: key 'source.fps': expected an integer from 1 to 240, got \"500\"\n"
     "@:6:14: key 'engine.threshold': expected a number from 0 to 1, got \"1.5\""},
    {"bad-missing-required.yaml", ":1:1: missing required key 'model'"},
    {"bad-enum.yaml",
     ":3:9: key 'source.kind': expected one of v4l2, file, test, pipeline, rtsp, got \"usb\""},
    {"bad-duplicate.yaml", ":5:3: duplicate key 'source.fps' (first given at line 4, column 3)"},
    {"bad-not-utf8.yaml", ":4:12: not valid UTF-8 (byte 0xe9); the config must be UTF-8 text"},
    {"bad-syntax.yaml",
     ":4:1: not valid YAML: did not find expected ',' or ']' (while parsing a flow sequence "
     "at line 3, column 9)"},
    {"bad-tab.yaml",
     ":3:1: not valid YAML: found character that cannot start any token (while scanning for "
     "the next token at line 3, column 1); indent with spaces, YAML does not allow tabs there"},
    {"bad-top-level.yaml", ":1:1: expected a mapping of keys at the top level, got a list"},
    {"bad-empty.yaml",
     ":1:1: the file is empty; a config needs at least the keys 'model' and 'source'"},
    {"bad-too-long.yaml",
     ":4:9: key 'camera': expected a string of at most 63 bytes, got 70 bytes"},
    {"bad-password.yaml",
     ":7:3: key 'mqtt.password': a password is not accepted in the config file; put it in a "
     "file readable only by the daemon and give that file's path as mqtt.password_file"},
    {"bad-kind-needs-key.yaml",
     ":3:3: missing required key 'source.device' (needed when source.kind is v4l2)"},
    {"bad-min-max.yaml", ":6:3: key 'budget.min': 0.9 is greater than budget.max 0.6"},
    {"bad-mode.yaml",
     ":5:9: key 'publish.mode': expected an octal file mode from 0000 to 0777 such as 0660, "
     "got \"660\""},
    {"bad-mqtt-no-host.yaml", ":4:1: missing required key 'mqtt.host'"},
    {"bad-deep-nesting.yaml",
     ":4:76: brackets nested more than 64 deep; a config needs three levels at most"},
    {"bad-second-document.yaml",
     ":5:1: a second YAML document; a config file holds exactly one"},
    {"bad-controls.yaml",
     ":6:17: key 'source.controls.brightness': expected an integer, got \"bright\"\n"
     "@:7:5: key 'source.controls': expected a control name of lower-case letters, digits and "
     "'_' (as `basisnet probe` lists them), got \"Contrast\"\n"
     "@:9:5: duplicate key 'source.controls.gain' (first given at line 8, column 5)"},
    {"bad-crop.yaml",
     ":7:8: key 'source.crop.y': expected an integer from 0 to 7680 (pixels from the frame's "
     "left or top edge), got \"-2\"\n"
     "@:8:12: key 'source.crop.width': expected an integer from 1 to 7680 (a crop needs a "
     "positive size), got \"0\""},
    {"bad-crop-outside.yaml",
     ":6:3: key 'source.crop': 300,0 40x40 lies outside the 320x240 frame (x + width = 340 > "
     "320) (source.width x source.height)"},
    /* Every problem is reported, not just the first: per-key problems in file order,
     * then the checks that need the whole file. */
    {"bad-many.yaml",
     ":5:8: key 'source.fps': expected an integer from 1 to 240, got \"0\"\n"
     "@:6:9: key 'source.loop': expected true or false, got \"sometimes\"\n"
     "@:7:1: unknown key 'fps' (did you mean 'source.fps'?)\n"
     "@:9:12: key 'engine.threads': expected an integer from 1 to 64, got \"many\"\n"
     "@:2:1: missing required key 'model'\n"
     "@:4:3: missing required key 'source.path' (needed when source.kind is file)"},
};

/* Expands "@" at the start of each line of a message template into the file name. */
static void expand_message(char *out, size_t outlen, const char *file, const char *tmpl)
{
    size_t o = (size_t)snprintf(out, outlen, "%s", file);
    for (const char *t = tmpl; *t && o + 1 < outlen; t++) {
        if (*t == '@' && t > tmpl && t[-1] == '\n')
            o += (size_t)snprintf(out + o, outlen - o, "%s", file);
        else
            out[o++] = *t, out[o] = '\0';
    }
}

static void test_error_fixtures(void **state)
{
    bn_config *cfg = *state;
    for (size_t i = 0; i < sizeof fixture_errors / sizeof fixture_errors[0]; i++) {
        char path[256], want[4096], err[4096];
        snprintf(path, sizeof path, FIXTURE("%s"), fixture_errors[i].fixture);
        expand_message(want, sizeof want, path, fixture_errors[i].message);
        bn_status st = config_load(path, cfg, err, sizeof err);
        if (st != BN_ERR_CONFIG || strcmp(err, want) != 0)
            print_error("fixture %s\n  got:  %s\n  want: %s\n", path, err, want);
        assert_int_equal(st, BN_ERR_CONFIG);
        assert_string_equal(err, want);
    }
}

/* Further cases that each need only a line or two of YAML. */
static const struct {
    const char *yaml;
    const char *message;
} inline_errors[] = {
    {"model: m\nsource: file\n", "2:9: key 'source': expected a mapping of keys, got \"file\""},
    {"model: m\nsource: {kind: test}\n[a]: 1\n", "3:1: keys must be plain names, got a list"},
    {"model: m\nsource: {kind: test}\nsource.fps: 3\n",
     "3:1: unknown key 'source.fps' (keys do not contain dots: write 'fps' nested under "
     "'source:')"},
    {"model: m\nsource: {kind: test}\nzzzzzz: 1\n", "3:1: unknown key 'zzzzzz'"},
    {"model: m\nsource: {kind: test}\nthreshold: 0.5\n",
     "3:1: unknown key 'threshold' (did you mean 'engine.threshold'?)"},
    {"model: m\nsource: {kind: test, loop: 1}\n",
     "2:28: key 'source.loop': expected true or false, got \"1\""},
    {"model: m\nsource: {kind: test, fps: 30.5}\n",
     "2:27: key 'source.fps': expected an integer from 1 to 240, got \"30.5\""},
    {"model: m\nsource: {kind: test, fps: [30]}\n",
     "2:27: key 'source.fps': expected an integer from 1 to 240, got a list"},
    {"model: m\nsource: {kind: test, fps: }\n",
     "2:27: key 'source.fps': expected an integer from 1 to 240, got an empty value"},
    {"model: m\nsource: {kind: test, width: 99999999999999999999}\n",
     "2:29: key 'source.width': expected an integer from 16 to 7680, got "
     "\"99999999999999999999\""},
    {"model: m\nsource: {kind: test}\nengine: {threshold: nan}\n",
     "3:21: key 'engine.threshold': expected a number from 0 to 1, got \"nan\""},
    {"model: ''\nsource: {kind: test}\n",
     "1:8: key 'model': expected a non-empty file path, got \"\""},
    {"model:\nsource: {kind: test}\n",
     "1:7: key 'model': expected a non-empty file path, got an empty value"},
    {"model: m\nsource: {kind: test, device: \"a\\0b\"}\n",
     "2:30: key 'source.device': the value contains a NUL character"},
    {"camera: front door\nmodel: m\nsource: {kind: test}\n",
     "1:9: key 'camera': expected a name of letters, digits, '_', '-' and '.', got \"front door\""},
    {"model: m\nsource: {kind: test}\nmqtt: {host: h, topic_prefix: 'cams/#'}\n",
     "3:31: key 'mqtt.topic_prefix': expected an MQTT topic without '+', '#' or empty levels at "
     "the ends, got \"cams/#\""},
    {"model: m\nsource: {kind: test}\nmqtt: {host: h, cert_file: c.pem}\n",
     "3:17: missing required key 'mqtt.key_file' (needed when mqtt.cert_file is set)\n"
     "mem.yaml:3:17: missing required key 'mqtt.ca_file' (needed when mqtt.cert_file is set)"},
    {"model: m\nsource: {kind: test}\nmqtt: {host: h, key_file: k.pem, ca_file: ca.pem}\n",
     "3:17: missing required key 'mqtt.cert_file' (needed when mqtt.key_file is set)"},
    {"model: m\nsource: {kind: test}\nmqtt: {host: h, password_file: pw}\n",
     "3:17: missing required key 'mqtt.username' (needed when mqtt.password_file is set)"},
    {"model: m\nsource: {kind: test, retry_initial_ms: 20000}\n",
     "2:22: key 'source.retry_initial_ms': 20000 is greater than source.retry_max_ms 10000 (its "
     "default)"},
    {"model: m\nsource: {kind: pipeline}\n",
     "2:10: missing required key 'source.pipeline' (needed when source.kind is pipeline)"},
    {"model: m\nsource: {kind: test}\npublish: {mode: 01000}\n",
     "3:17: key 'publish.mode': expected an octal file mode from 0000 to 0777 such as 0660, got "
     "\"01000\""},
    {"model: m\nsource: {kind: test}\npublish: {mode: 0689}\n",
     "3:17: key 'publish.mode': expected an octal file mode from 0000 to 0777 such as 0660, got "
     "\"0689\""},
    {"model: m\nsource:\n  kind: test\n  kind: file\n",
     "4:3: duplicate key 'source.kind' (first given at line 3, column 3)"},
    {"model: m\nsource: {kind: test}\nsource: {kind: file}\n",
     "3:1: duplicate key 'source' (first given at line 2, column 1)"},
    {"model: m\nsource: {kind: test, controls: [brightness]}\n",
     "2:32: key 'source.controls': expected a mapping of control names to integers, got a list"},
    {"model: m\nsource: {kind: test}\nlog_level: verbose\n",
     "3:12: key 'log_level': expected one of error, warn, info, debug, got \"verbose\""},
    {"model: m\nsource: {kind: test}\nengine: {threads: \"tw\\\"o\\n\"}\n",
     "3:19: key 'engine.threads': expected an integer from 1 to 64, got \"tw\\\"o\\x0a\""},
    {"model: m\nsource: {kind: test}\nkey: *nope\n", "3:6: not valid YAML: found undefined alias"},
    {"model: m\nsource: {kind: test}\npublish: {socket: /run/"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",
     "3:19: key 'publish.socket': expected a string of at most 107 bytes, got 111 bytes"},
    {"\xEF\xBB\xBF- a\n", "1:2: expected a mapping of keys at the top level, got a list"},
    {"~\n", "1:1: the file is empty; a config needs at least the keys 'model' and 'source'"},
    {"# only a comment\n",
     "1:1: the file is empty; a config needs at least the keys 'model' and 'source'"},
    {"model: m\nsource: {kind: test}\nmqtt:\n", "3:1: missing required key 'mqtt.host'"},
    /* source.crop */
    {"model: m\nsource: {kind: test, crop: [1, 2, 3, 4]}\n",
     "2:28: key 'source.crop': expected a mapping {x: X, y: Y, width: W, height: H} of integers "
     "in source pixels, got a list"},
    {"model: m\nsource:\n  kind: test\n  crop: 10,20,30,40\n",
     "4:9: key 'source.crop': expected a mapping {x: X, y: Y, width: W, height: H} of integers "
     "in source pixels, got \"10,20,30,40\""},
    {"model: m\nsource:\n  kind: test\n  crop: {x: 10, y: 20, width: 0, height: 40}\n",
     "4:31: key 'source.crop.width': expected an integer from 1 to 7680 (a crop needs a positive "
     "size), got \"0\""},
    {"model: m\nsource:\n  kind: test\n  crop: {x: 10, y: 20, width: 30, height: -4}\n",
     "4:43: key 'source.crop.height': expected an integer from 1 to 7680 (a crop needs a positive "
     "size), got \"-4\""},
    {"model: m\nsource:\n  kind: test\n  crop: {x: -1, y: 20, width: 30, height: 40}\n",
     "4:13: key 'source.crop.x': expected an integer from 0 to 7680 (pixels from the frame's left "
     "or top edge), got \"-1\""},
    {"model: m\nsource:\n  kind: test\n  crop: {x: 1, y: ten, width: 30, height: 40}\n",
     "4:19: key 'source.crop.y': expected an integer from 0 to 7680 (pixels from the frame's left "
     "or top edge), got \"ten\""},
    {"model: m\nsource:\n  kind: test\n  crop: {x: 1, y: 2, width: 30}\n",
     "4:9: key 'source.crop': missing 'height' (a crop is {x: X, y: Y, width: W, height: H})"},
    {"model: m\nsource:\n  kind: test\n  crop: {x: 1, y: 2, w: 30, height: 4}\n",
     "4:22: unknown key \"w\" in 'source.crop' (expected x, y, width and height)"},
    {"model: m\nsource:\n  kind: test\n  crop:\n    x: 1\n    y: 2\n    x: 3\n"
     "    width: 5\n    height: 6\n",
     "7:5: duplicate key 'source.crop.x' (first given at line 5, column 5)"},
    {"model: m\nsource:\n  kind: test\n  width: 320\n  height: 240\n"
     "  crop: {x: 300, y: 0, width: 40, height: 40}\n",
     "6:3: key 'source.crop': 300,0 40x40 lies outside the 320x240 frame (x + width = 340 > 320) "
     "(source.width x source.height)"},
    {"model: m\nsource:\n  kind: test\n  crop: {x: 0, y: 400, width: 40, height: 100}\n",
     "4:3: key 'source.crop': 0,400 40x100 lies outside the 640x480 frame (y + height = 500 > 480) "
     "(source.width x source.height, defaults included)"},
};

static void test_inline_errors(void **state)
{
    bn_config *cfg = *state;
    for (size_t i = 0; i < sizeof inline_errors / sizeof inline_errors[0]; i++) {
        char want[4096], err[4096];
        snprintf(want, sizeof want, "mem.yaml:%s", inline_errors[i].message);
        bn_status st = load_text("mem.yaml", inline_errors[i].yaml, cfg, err, sizeof err);
        if (st != BN_ERR_CONFIG || strcmp(err, want) != 0)
            print_error("case %zu\n  got:  %s\n  want: %s\n", i, err, want);
        assert_int_equal(st, BN_ERR_CONFIG);
        assert_string_equal(err, want);
    }
}

/* A path that fits as written but not once the config's directory is put in front. */
static void test_path_too_long_after_resolving(void **state)
{
    bn_config *cfg = *state;
    char *text = malloc(BN_PATH_MAX + 64), err[8192];
    assert_non_null(text);
    int n = snprintf(text, BN_PATH_MAX + 64, "model: ");
    memset(text + n, 'm', BN_PATH_MAX - 10);
    snprintf(text + n + BN_PATH_MAX - 10, 64, "\nsource: {kind: test}\n");
    assert_int_equal(load_text("/etc/basisnetd/x.yaml", text, cfg, err, sizeof err),
                     BN_ERR_CONFIG);
    assert_string_equal(err, "/etc/basisnetd/x.yaml:1:8: key 'model': expected a path of at "
                             "most 4095 bytes, got 4101 bytes after resolving it against the "
                             "config's directory /etc/basisnetd");
    free(text);
}

static void test_too_many_controls(void **state)
{
    bn_config *cfg = *state;
    char text[4096], err[1024];
    int o = snprintf(text, sizeof text, "model: m\nsource:\n  kind: test\n  controls:\n");
    for (int i = 0; i <= BN_MAX_CONTROLS; i++)
        o += snprintf(text + o, sizeof text - (size_t)o, "    c%d: %d\n", i, i);
    assert_int_equal(load_text("mem.yaml", text, cfg, err, sizeof err), BN_ERR_CONFIG);
    assert_string_equal(err, "mem.yaml:37:5: key 'source.controls': expected at most 32 "
                             "controls, got more");
}

static void test_accepted_spellings(void **state)
{
    bn_config *cfg = *state;
    char err[1024];
    static const struct {
        const char *value;
        bool expect;
    } bools[] = {{"true", true}, {"True", true}, {"yes", true}, {"ON", true},
                 {"false", false}, {"No", false}, {"off", false}, {"FALSE", false}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "model: m\nsource: {kind: file, path: p, loop: %s}\n",
                 bools[i].value);
        assert_int_equal(load_text("mem.yaml", text, cfg, err, sizeof err), BN_OK);
        assert_int_equal(cfg->source.loop, bools[i].expect);
    }
    static const struct {
        const char *value;
        unsigned mode;
    } modes[] = {{"0660", 0660}, {"0o600", 0600}, {"0", 0}, {"0777", 0777}, {"'0640'", 0640}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "model: m\nsource: {kind: test}\npublish: {mode: %s}\n",
                 modes[i].value);
        assert_int_equal(load_text("mem.yaml", text, cfg, err, sizeof err), BN_OK);
        assert_int_equal(cfg->publish.mode, modes[i].mode);
    }
    static const char *const kinds[] = {
        "model: m\nsource: {kind: v4l2, device: /dev/video1}\n",
        "model: m\nsource: {kind: file, path: a.mkv}\n",
        "model: m\nsource: {kind: test}\n",
        "model: m\nsource: {kind: pipeline, pipeline: videotestsrc}\n",
    };
    for (int k = 0; k < 4; k++) {
        assert_int_equal(load_text("mem.yaml", kinds[k], cfg, err, sizeof err), BN_OK);
        assert_int_equal(cfg->source.kind, k);
    }
    static const char *const budget[] = {"off", "mean", "deadline"};
    static const char *const aspect[] = {"crop", "letterbox", "stretch"};
    static const char *const format[] = {"auto", "raw", "mjpeg"};
    for (int i = 0; i < 3; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "model: m\nsource: {kind: test, aspect: %s, format: %s}\nbudget: {mode: %s}\n",
                 aspect[i], format[i], budget[i]);
        assert_int_equal(load_text("mem.yaml", text, cfg, err, sizeof err), BN_OK);
        assert_int_equal(cfg->budget.mode, i);
        assert_int_equal(cfg->source.aspect, i);
        assert_int_equal(cfg->source.format, i);
    }
    /* Quoted numbers, signs and range ends are numbers too. */
    assert_int_equal(load_text("mem.yaml",
                               "model: m\nsource: {kind: test, fps: '240', width: +16}\n"
                               "engine: {threshold: 1}\nbudget: {min: 0, max: 1.0, "
                               "latency_ms: .5}\n",
                               cfg, err, sizeof err),
                     BN_OK);
    assert_int_equal(cfg->source.fps, 240);
    assert_int_equal(cfg->source.width, 16);
    assert_true(cfg->engine.threshold == 1.0);
    assert_true(cfg->budget.latency_ms == 0.5);
    /* Anchors and aliases work as YAML defines them. */
    assert_int_equal(load_text("mem.yaml", "model: &m x.bnm\nsource: {kind: file, path: *m}\n",
                               cfg, err, sizeof err),
                     BN_OK);
    assert_string_equal(cfg->source.path + strlen(cfg->source.path) - 6, "/x.bnm");
    /* Empty strings are fine where they mean "none". */
    assert_int_equal(load_text("mem.yaml",
                               "model: m\nsource: {kind: test}\npublish: {group: '', "
                               "control_group: }\n",
                               cfg, err, sizeof err),
                     BN_OK);
    assert_string_equal(cfg->publish.group, "");
}

static void test_mqtt_defaults_follow_camera(void **state)
{
    bn_config *cfg = *state;
    char err[1024];
    assert_int_equal(load_text("mem.yaml", "camera: porch\nmodel: m\nsource: {kind: test}\n"
                                           "mqtt: {host: broker}\n",
                               cfg, err, sizeof err),
                     BN_OK);
    assert_true(cfg->mqtt.enabled);
    assert_string_equal(cfg->mqtt.host, "broker");
    assert_string_equal(cfg->mqtt.topic_prefix, "basisnet/porch");
    assert_string_equal(cfg->mqtt.client_id, "basisnetd-porch");
    assert_int_equal(cfg->mqtt.port, 1883);

    /* Without an mqtt section MQTT stays off, whatever else is set. */
    assert_int_equal(load_text("mem.yaml", "camera: porch\nmodel: m\nsource: {kind: test}\n",
                               cfg, err, sizeof err),
                     BN_OK);
    assert_false(cfg->mqtt.enabled);
    assert_string_equal(cfg->mqtt.topic_prefix, "basisnet/porch");

    /* A camera name too long for "basisnetd-<camera>": the end is kept (63 bytes). */
    char text[256], cam[64];
    memset(cam, 'c', 62);
    cam[61] = 'Z';
    cam[62] = '\0';
    snprintf(text, sizeof text, "camera: %s\nmodel: m\nsource: {kind: test}\n", cam);
    assert_int_equal(load_text("mem.yaml", text, cfg, err, sizeof err), BN_OK);
    assert_int_equal(strlen(cfg->mqtt.client_id), BN_NAME_MAX - 1);
    assert_int_equal(cfg->mqtt.client_id[BN_NAME_MAX - 2], 'Z');
}

/* err is always NUL-terminated and never overrun, however small; the status is the same. */
static void test_small_error_buffer(void **state)
{
    bn_config *cfg = *state;
    char err[40];
    memset(err, '#', sizeof err);
    assert_int_equal(config_load(FIXTURE("bad-many.yaml"), cfg, err, 24), BN_ERR_CONFIG);
    assert_int_equal(strlen(err), 23);
    assert_memory_equal(err, "tests/fixtures/config/b", 23);
    assert_int_equal(err[30], '#');
    assert_int_equal(config_load(FIXTURE("bad-many.yaml"), cfg, NULL, 0), BN_ERR_CONFIG);
    assert_int_equal(config_load(FIXTURE("good-minimal.yaml"), cfg, NULL, 0), BN_OK);
}

static void test_io_errors(void **state)
{
    bn_config *cfg = *state;
    char err[512];
    assert_int_equal(config_load(FIXTURE("no-such-file.yaml"), cfg, err, sizeof err), BN_ERR_IO);
    assert_string_equal(err,
                        FIXTURE("no-such-file.yaml") ": cannot open: No such file or directory");
    assert_int_equal(config_load("tests/fixtures/config", cfg, err, sizeof err), BN_ERR_IO);
    assert_string_equal(err, "tests/fixtures/config: cannot read: Is a directory");
    assert_int_equal(config_load(NULL, cfg, err, sizeof err), BN_ERR_INVALID_ARG);
}

/* A file far larger than any config (a video passed by mistake) is refused unread. */
static void test_oversized_file(void **state)
{
    bn_config *cfg = *state;
    char path[] = "/tmp/test_daemon_config_XXXXXX", err[512], want[600];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static char block[64 * 1024];
    memset(block, '#', sizeof block);
    for (int i = 0; i < 4; i++) /* exactly 256 KiB of comment: still accepted as YAML */
        assert_int_equal(write(fd, block, sizeof block), (ssize_t)sizeof block);
    assert_int_equal(config_load(path, cfg, err, sizeof err), BN_ERR_CONFIG);
    snprintf(want, sizeof want,
             "%s:1:1: the file is empty; a config needs at least the keys 'model' and 'source'",
             path);
    assert_string_equal(err, want);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    assert_int_equal(config_load(path, cfg, err, sizeof err), BN_ERR_CONFIG);
    snprintf(want, sizeof want, "%s: larger than 262144 bytes; not a config file", path);
    assert_string_equal(err, want);
    unlink(path);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(source_kind_name(SOURCE_V4L2), "v4l2");
    assert_string_equal(source_kind_name(SOURCE_FILE), "file");
    assert_string_equal(source_kind_name(SOURCE_TEST), "test");
    assert_string_equal(source_kind_name(SOURCE_PIPELINE), "pipeline");
    assert_string_equal(source_kind_name((source_kind)42), "unknown");
    assert_string_equal(budget_mode_name(BUDGET_OFF), "off");
    assert_string_equal(budget_mode_name(BUDGET_MEAN), "mean");
    assert_string_equal(budget_mode_name(BUDGET_DEADLINE), "deadline");
    assert_string_equal(budget_mode_name((budget_mode)-1), "unknown");
}

/* source.crop: parsed values, the aspect it implies, and the grab-side parser. */
static void test_crop(void **state)
{
    bn_config *cfg = *state;
    char err[1024];
    assert_int_equal(load_text("mem.yaml",
                               "model: m\nsource:\n  kind: file\n  path: /x.mkv\n"
                               "  crop: {x: 10, y: 20, width: 320, height: 240}\n",
                               cfg, err, sizeof err),
                     BN_OK);
    assert_int_equal(cfg->source.crop.x, 10);
    assert_int_equal(cfg->source.crop.y, 20);
    assert_int_equal(cfg->source.crop.width, 320);
    assert_int_equal(cfg->source.crop.height, 240);
    assert_int_equal(cfg->source.aspect, ASPECT_LETTERBOX); /* the whole region, padded */
    char where[256];
    config_where(cfg, "source.crop", where, sizeof where);
    assert_string_equal(where, "mem.yaml:5:3: key 'source.crop'");

    /* An explicit aspect wins; block style; a crop filling a test frame exactly fits. */
    assert_int_equal(load_text("mem.yaml",
                               "model: m\nsource:\n  kind: test\n  width: 320\n  height: 240\n"
                               "  aspect: crop\n  crop:\n    x: 0\n    y: 0\n    width: 320\n"
                               "    height: 240\n",
                               cfg, err, sizeof err),
                     BN_OK);
    assert_int_equal(cfg->source.aspect, ASPECT_CROP);
    assert_int_equal(cfg->source.crop.width, 320);

    /* No crop: width 0, aspect default unchanged. */
    assert_int_equal(load_text("mem.yaml", "model: m\nsource: {kind: test}\n", cfg, err,
                               sizeof err),
                     BN_OK);
    assert_int_equal(cfg->source.crop.width, 0);
    assert_int_equal(cfg->source.aspect, ASPECT_CROP);

    source_crop c;
    assert_true(source_crop_parse("1,2,30,40", &c, err, sizeof err));
    assert_int_equal(c.x, 1);
    assert_int_equal(c.height, 40);
    assert_false(source_crop_parse("1,2,30", &c, err, sizeof err));
    assert_string_equal(err, "crop '1,2,30': expected X,Y,W,H (four integers in source pixels, "
                             "e.g. 100,50,320,240)");
    assert_false(source_crop_parse("1,2,30,40,5", &c, err, sizeof err));
    assert_false(source_crop_parse("1, 2,30,40", &c, err, sizeof err));
    assert_false(source_crop_parse("1,2,0,40", &c, err, sizeof err));
    assert_string_equal(err, "crop '1,2,0,40': width and height must be from 1 to 7680");
    assert_false(source_crop_parse("-1,2,3,4", &c, err, sizeof err));
    assert_string_equal(err, "crop '-1,2,3,4': x and y must be from 0 to 7680");
    c = (source_crop){600, 400, 100, 100};
    assert_false(source_crop_fits(&c, 640, 360, err, sizeof err));
    assert_string_equal(err, "source.crop 600,400 100x100 lies outside the 640x360 frame "
                             "(x + width = 700 > 640)");
    c = (source_crop){540, 260, 100, 100};
    assert_true(source_crop_fits(&c, 640, 360, err, sizeof err));
}

/* The full example in docs/config.md must stay a valid config. */
static void test_docs_example_loads(void **state)
{
    bn_config *cfg = *state;
    FILE *f = fopen("docs/config.md", "r");
    assert_non_null(f);
    static char doc[64 * 1024];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    char *start = strstr(doc, "```yaml\n");
    assert_non_null(start);
    start += strlen("```yaml\n");
    char *end = strstr(start, "```");
    assert_non_null(end);
    char err[2048];
    bn_status st = config_load_buffer("docs/config.md", start, (size_t)(end - start), cfg, err,
                                      sizeof err);
    if (st != BN_OK)
        print_error("%s\n", err);
    assert_int_equal(st, BN_OK);
    assert_string_equal(cfg->camera, "front-door");
    assert_int_equal(cfg->budget.mode, BUDGET_MEAN);
    assert_true(cfg->mqtt.enabled);
    assert_int_equal(cfg->source.n_controls, 2);
}

/* docs/config.md has a table row for every key the loader accepts. */
static void test_docs_cover_every_key(void **state)
{
    (void)state;
    static const char *const all_keys[] = {
        "camera", "model", "log_level", "stats_interval_s", "source", "source.kind",
        "source.device", "source.path", "source.loop", "source.pattern", "source.pipeline",
        "source.width", "source.height", "source.fps", "source.format", "source.aspect",
        "source.controls", "source.crop", "source.retry_initial_ms", "source.retry_max_ms", "engine",
        "engine.threads", "engine.threshold", "engine.synth_reuse", "budget", "budget.mode", "budget.latency_ms",
        "budget.min", "budget.max", "budget.window", "budget.horizon", "publish", "publish.socket",
        "publish.mode", "publish.group", "publish.control_group", "publish.max_clients",
        "publish.queue", "publish.max_line", "publish.change_frames", "mqtt", "mqtt.host",
        "mqtt.port", "mqtt.client_id", "mqtt.topic_prefix", "mqtt.qos", "mqtt.retain",
        "mqtt.keepalive", "mqtt.ca_file", "mqtt.cert_file", "mqtt.key_file", "mqtt.username",
        "mqtt.password", "mqtt.password_file", "mqtt.queue", "mqtt.publish_labels",
    };
    FILE *f = fopen("docs/config.md", "r");
    assert_non_null(f);
    static char doc[64 * 1024];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    for (size_t i = 0; i < sizeof all_keys / sizeof all_keys[0]; i++) {
        char row[96];
        snprintf(row, sizeof row, "\n| `%s` |", all_keys[i]);
        if (!strstr(doc, row))
            print_error("docs/config.md has no row for %s\n", all_keys[i]);
        assert_non_null(strstr(doc, row));
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_cfg, teardown_cfg)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_minimal_file_gets_defaults),
        T(test_every_key),
        T(test_relative_paths_resolve_against_config_dir),
        T(test_example_configs_load),
        T(test_docs_example_loads),
        T(test_docs_cover_every_key),
        T(test_error_fixtures),
        T(test_inline_errors),
        T(test_path_too_long_after_resolving),
        T(test_too_many_controls),
        T(test_crop),
        T(test_accepted_spellings),
        T(test_mqtt_defaults_follow_camera),
        T(test_small_error_buffer),
        T(test_io_errors),
        T(test_oversized_file),
        T(test_names),
    };
    return cmocka_run_group_tests_name("daemon_config", tests, NULL, NULL);
}
