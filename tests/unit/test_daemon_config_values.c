/* Tests for the YAML config loader (daemon/config*.c) accepting what it must: defaults,
 * every key, relative path resolution, the example configs, every accepted spelling,
 * source.crop, the MQTT defaults derived from the camera name. The error messages:
 * test_daemon_config.c. Run from the repository root (fixtures: tests/fixtures/config/). */
#include "config_test.h"

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
    assert_int_equal(cfg->gate.mode, GATE_MODE_AUTO);   /* docs/gate.md, the default */

    assert_int_equal(config_load("configs/test.yaml", cfg, err, sizeof err), BN_OK);
    assert_string_equal(err, "");
    assert_int_equal(cfg->source.kind, SOURCE_TEST);
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

/* The http: section: off unless present, loopback by default, every accepted form. */
static void test_http(void **state)
{
    bn_config *cfg = *state;
    char err[1024];
    assert_int_equal(load_text("mem.yaml", "model: m\nsource: {kind: test}\n", cfg, err,
                               sizeof err),
                     BN_OK);
    assert_false(cfg->http.enabled);
    assert_string_equal(cfg->http.listen, "127.0.0.1:8080");
    assert_false(cfg->http.allow_remote);
    assert_int_equal(cfg->http.max_clients, 16);
    assert_int_equal(load_text("mem.yaml", "model: m\nsource: {kind: test}\nhttp:\n", cfg, err,
                               sizeof err),
                     BN_OK);
    assert_true(cfg->http.enabled);
    assert_string_equal(cfg->http.listen, "127.0.0.1:8080");
    assert_int_equal(cfg->http.stream_fps, 5);
    assert_int_equal(load_text("mem.yaml", "model: m\nsource: {kind: test}\nhttp: {stream_fps: 12}\n", cfg, err,
                               sizeof err),
                     BN_OK);
    assert_int_equal(cfg->http.stream_fps, 12);
    static const struct {
        const char *listen;
        bool remote;            /* needs allow_remote */
        const char *canonical;
    } good[] = {
        {"127.0.0.1:9100", false, "127.0.0.1:9100"},
        {"127.1.2.3:1", false, "127.1.2.3:1"},
        {"localhost:8080", false, "127.0.0.1:8080"},
        {"'[::1]:65535'", false, "[::1]:65535"},
        {"/run/basisnetd/http.sock", false, "/run/basisnetd/http.sock"},
        {"0.0.0.0:8080", true, "0.0.0.0:8080"},
        {"'[::]:8080'", true, "[::]:8080"},
        {"192.168.1.20:80", true, "192.168.1.20:80"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "model: m\nsource: {kind: test}\nhttp: {listen: %s, allow_remote: %s, "
                 "max_clients: 3}\n",
                 good[i].listen, good[i].remote ? "true" : "false");
        bn_status st = load_text("mem.yaml", text, cfg, err, sizeof err);
        if (st != BN_OK)
            print_error("%s: %s\n", good[i].listen, err);
        assert_int_equal(st, BN_OK);
        assert_true(cfg->http.enabled);
        assert_int_equal(cfg->http.max_clients, 3);
        http_listen l;
        assert_true(http_listen_parse(cfg->http.listen, &l, err, sizeof err));
        assert_int_equal(l.loopback, !good[i].remote);
        char canon[128];
        http_listen_format(&l, canon, sizeof canon);
        assert_string_equal(canon, good[i].canonical);
    }
    assert_true(http_listen_equal("localhost:8080", "127.0.0.1:8080"));
    assert_true(http_listen_equal("[::1]:80", "[0:0::1]:80"));
    assert_false(http_listen_equal("127.0.0.1:8080", "127.0.0.1:8081"));
    assert_false(http_listen_equal("127.0.0.1:8080", "[::1]:8080"));
    assert_false(http_listen_equal("/a.sock", "/b.sock"));
}

/* events: off by default; its defaults; sizes with and without a suffix. */
static void test_events(void **state)
{
    bn_config *cfg = *state;
    char err[1024];
    assert_int_equal(load_text("mem.yaml", "model: m\nsource: {kind: test}\n", cfg, err,
                               sizeof err),
                     BN_OK);
    assert_false(cfg->events.enabled);
    assert_int_equal(load_text("mem.yaml", "model: m\nsource: {kind: test}\nevents:\n", cfg, err,
                               sizeof err),
                     BN_OK);
    assert_true(cfg->events.enabled);
    assert_string_equal(cfg->events.dir, "/var/lib/basisnetd/events");
    assert_int_equal(cfg->events.keep, 200);
    assert_true(cfg->events.max_bytes == 50ll << 20);
    static const struct {
        const char *text;
        long long bytes;
    } sizes[] = {{"4096", 4096}, {"50M", 50ll << 20}, {"64k", 64ll << 10}, {"2G", 2ll << 30},
                 {"1024G", 1ll << 40}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char text[200];
        snprintf(text, sizeof text,
                 "model: m\nsource: {kind: test}\nevents: {dir: /e, keep: 7, max_bytes: %s}\n",
                 sizes[i].text);
        bn_status st = load_text("mem.yaml", text, cfg, err, sizeof err);
        if (st != BN_OK)
            print_error("%s: %s\n", sizes[i].text, err);
        assert_int_equal(st, BN_OK);
        assert_true(cfg->events.max_bytes == sizes[i].bytes);
        assert_int_equal(cfg->events.keep, 7);
        assert_string_equal(cfg->events.dir, "/e");
    }
    static const char *const bad[] = {"-4096", "4096.5", "M", "50 M", "1025G", "2T", "0x1000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "model: m\nsource: {kind: test}\nevents: {max_bytes: '%s'}\n",
                 bad[i]);
        if (load_text("mem.yaml", text, cfg, err, sizeof err) != BN_ERR_CONFIG)
            print_error("%s accepted\n", bad[i]);
        assert_non_null(strstr(err, "key 'events.max_bytes': expected a size in bytes"));
    }
}

/* The gate: off by default; every key set; off and auto spelled as written. */
static void test_gate(void **state)
{
    bn_config *cfg = *state;
    char err[1024];
    assert_int_equal(load_text("mem.yaml", "model: m\nsource: {kind: test}\n", cfg, err,
                               sizeof err),
                     BN_OK);
    assert_int_equal(cfg->gate.mode, GATE_MODE_OFF);
    assert_int_equal(cfg->gate.refresh_ms, 1000);
    assert_float_equal(cfg->gate.cell_sigmas, 4.0, 1e-12);
    assert_float_equal(cfg->gate.min_area, 0.02, 1e-12);
    assert_float_equal(cfg->gate.min_score, 0.9, 1e-12);
    assert_int_equal(cfg->gate.hold_frames, 2);
    bn_status st = load_text("mem.yaml",
                             "model: m\nsource: {kind: test}\ngate:\n  mode: auto\n"
                             "  refresh_ms: 250\n  cell_sigmas: 6\n  min_area: 0.05\n  min_score: 0\n"
                             "  hold_frames: 0\n",
                             cfg, err, sizeof err);
    if (st != BN_OK)
        print_error("%s\n", err);
    assert_int_equal(st, BN_OK);
    assert_int_equal(cfg->gate.mode, GATE_MODE_AUTO);
    assert_int_equal(cfg->gate.refresh_ms, 250);
    assert_float_equal(cfg->gate.cell_sigmas, 6.0, 1e-12);
    assert_float_equal(cfg->gate.min_area, 0.05, 1e-12);
    assert_float_equal(cfg->gate.min_score, 0.0, 1e-12);
    assert_int_equal(cfg->gate.hold_frames, 0);
    assert_int_equal(load_text("mem.yaml", "model: m\nsource: {kind: test}\ngate:\n", cfg, err,
                               sizeof err),
                     BN_OK);
    assert_int_equal(cfg->gate.mode, GATE_MODE_OFF);
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
        T(test_crop),
        T(test_accepted_spellings),
        T(test_mqtt_defaults_follow_camera),
        T(test_http),
        T(test_events),
        T(test_gate),
    };
    return cmocka_run_group_tests_name("daemon_config_values", tests, NULL, NULL);
}
