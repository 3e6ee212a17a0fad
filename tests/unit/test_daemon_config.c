/* Tests for the YAML config loader (daemon/config*.c) refusing what it must: the exact
 * message for each class of error (fixtures and inline), limits, I/O errors, names, and
 * docs/config.md against the key table. What good configs set: test_daemon_config_values.c.
 * Run from the repository root (fixtures are in tests/fixtures/config/). */
#include "config_test.h"

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
    {"bad-http-listen.yaml",
     ":5:11: key 'http.listen': expected a port from 1 to 65535 after the address, got "
     "\"127.0.0.1:0\""},
    {"bad-http-remote.yaml",
     ":5:3: key 'http.listen': 0.0.0.0:8080 is not a loopback address, so other machines could "
     "reach the endpoints, which have no authentication; set http.allow_remote: true to serve "
     "them (docs/http.md)"},
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
    /* gate */
    {"model: m\nsource: {kind: test}\ngate: {mode: on}\n",
     "3:14: key 'gate.mode': expected one of off, auto, got \"on\""},
    {"model: m\nsource: {kind: test}\ngate:\n  refresh_ms: 0\n",
     "4:15: key 'gate.refresh_ms': expected an integer from 1 to 600000, got \"0\""},
    {"model: m\nsource: {kind: test}\ngate:\n  cell_sigmas: 0.5\n",
     "4:16: key 'gate.cell_sigmas': expected a number from 1 to 50, got \"0.5\""},
    {"model: m\nsource: {kind: test}\ngate:\n  min_area: 0\n",
     "4:13: key 'gate.min_area': expected a number from 0.001 to 1, got \"0\""},
    {"model: m\nsource: {kind: test}\ngate:\n  min_score: 1.5\n",
     "4:14: key 'gate.min_score': expected a number from 0 to 1, got \"1.5\""},
    {"model: m\nsource: {kind: test}\ngate:\n  min_score: -0.1\n",
     "4:14: key 'gate.min_score': expected a number from 0 to 1, got \"-0.1\""},
    {"model: m\nsource: {kind: test}\ngate:\n  hold_frames: -1\n",
     "4:16: key 'gate.hold_frames': expected an integer from 0 to 300, got \"-1\""},
    {"model: m\nsource: {kind: test}\ngate:\n  hold_frames: 2.5\n",
     "4:16: key 'gate.hold_frames': expected an integer from 0 to 300, got \"2.5\""},
    {"model: m\nsource: {kind: test}\ngate:\n  refresh_s: 100\n",
     "4:3: unknown key 'gate.refresh_s' (did you mean 'gate.refresh_ms'?)"},
    /* http */
    {"model: m\nsource: {kind: test}\nhttp: {listen: 8080}\n",
     "3:16: key 'http.listen': expected ADDRESS:PORT (127.0.0.1:8080, [::1]:8080) or a Unix "
     "socket path starting with '/', got \"8080\""},
    {"model: m\nsource: {kind: test}\nhttp: {listen: '127.0.0.1:70000'}\n",
     "3:16: key 'http.listen': expected a port from 1 to 65535 after the address, got "
     "\"127.0.0.1:70000\""},
    {"model: m\nsource: {kind: test}\nhttp: {listen: '127.0.0.1:'}\n",
     "3:16: key 'http.listen': expected a port from 1 to 65535 after the address, got "
     "\"127.0.0.1:\""},
    {"model: m\nsource: {kind: test}\nhttp: {listen: 'camera.lan:80'}\n",
     "3:16: key 'http.listen': expected a numeric IPv4 address before the port (host names other "
     "than localhost are not resolved), got \"camera.lan:80\""},
    {"model: m\nsource: {kind: test}\nhttp: {listen: '::1:8080'}\n",
     "3:16: key 'http.listen': expected an IPv6 address in brackets such as [::1]:8080, got "
     "\"::1:8080\""},
    {"model: m\nsource: {kind: test}\nhttp: {listen: '[::1]8080'}\n",
     "3:16: key 'http.listen': expected [IPV6-ADDRESS]:PORT such as [::1]:8080, got "
     "\"[::1]8080\""},
    {"model: m\nsource: {kind: test}\nhttp: {listen: '[::g]:8080'}\n",
     "3:16: key 'http.listen': expected an IPv6 address in the brackets such as [::1]:8080, got "
     "\"[::g]:8080\""},
    {"model: m\nsource: {kind: test}\nhttp: {listen: /run/basisnetd/}\n",
     "3:16: key 'http.listen': expected a Unix socket path naming a file, not a directory, got "
     "\"/run/basisnetd/\""},
    {"model: m\nsource: {kind: test}\nhttp: {listen: [127.0.0.1, 8080]}\n",
     "3:16: key 'http.listen': expected ADDRESS:PORT (127.0.0.1:8080, [::1]:8080) or a Unix "
     "socket path starting with '/', got a list"},
    {"model: m\nsource: {kind: test}\nhttp: {listen: }\n",
     "3:16: key 'http.listen': expected ADDRESS:PORT (127.0.0.1:8080, [::1]:8080) or a Unix "
     "socket path starting with '/', got an empty value"},
    {"model: m\nsource: {kind: test}\nhttp: {listen: '[::]:8080', allow_remote: maybe}\n",
     "3:43: key 'http.allow_remote': expected true or false, got \"maybe\""},
    {"model: m\nsource: {kind: test}\nhttp: {listen: '192.168.1.20:80', allow_remote: false}\n",
     "3:8: key 'http.listen': 192.168.1.20:80 is not a loopback address, so other machines could "
     "reach the endpoints, which have no authentication; set http.allow_remote: true to serve "
     "them (docs/http.md)"},
    {"model: m\nsource: {kind: test}\nhttp: {listen: '0.0.0.0:80', auth_file: /u}\n",
     "3:8: key 'http.listen': 0.0.0.0:80 is not a loopback address, so other machines could "
     "reach the endpoints; set http.allow_remote: true to serve them (docs/http.md)"},
    {"model: m\nsource: {kind: test}\nhttp: {max_clients: 0}\n",
     "3:21: key 'http.max_clients': expected an integer from 1 to 1024, got \"0\""},
    {"model: m\nsource: {kind: test}\nhttp: {stream_fps: 31}\n",
     "3:20: key 'http.stream_fps': expected an integer from 1 to 30, got \"31\""},
    {"model: m\nsource: {kind: test}\nevents: {max_bytes: 50MB}\n",
     "3:21: key 'events.max_bytes': expected a size in bytes from 4K to 1024G, with an optional "
     "K, M or G (1024, 1024^2, 1024^3) such as 50M, got \"50MB\""},
    {"model: m\nsource: {kind: test}\nevents: {max_bytes: 1K}\n",
     "3:21: key 'events.max_bytes': expected a size in bytes from 4K to 1024G, with an optional "
     "K, M or G (1024, 1024^2, 1024^3) such as 50M, got \"1K\""},
    {"model: m\nsource: {kind: test}\nevents: {keep: 0}\n",
     "3:16: key 'events.keep': expected an integer from 1 to 1000000, got \"0\""},
    {"model: m\nsource: {kind: test}\nevents: {dir: ''}\n",
     "3:15: key 'events.dir': expected a non-empty file path, got \"\""},
    {"model: m\nsource: {kind: test}\nhttp: 8080\n",
     "3:7: key 'http': expected a mapping of keys, got \"8080\""},
    {"model: m\nsource: {kind: test}\nhttp: {port: 8080}\n",
     "3:8: unknown key 'http.port' (did you mean 'mqtt.port'?)"},
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

/* A Unix socket path in http.listen is held to sun_path's 107 bytes. */
static void test_http_unix_path_limit(void **state)
{
    bn_config *cfg = *state;
    char err[1024];
    char text[512], path[200];
    memset(path, 'p', 108);
    path[0] = '/';
    path[108] = '\0';
    snprintf(text, sizeof text, "model: m\nsource: {kind: test}\nhttp: {listen: %s}\n", path);
    assert_int_equal(load_text("mem.yaml", text, cfg, err, sizeof err), BN_ERR_CONFIG);
    assert_non_null(strstr(err, "mem.yaml:3:16: key 'http.listen': expected a Unix socket path "
                                "of at most 107 bytes (108 given), got \"/ppp"));
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
        "budget.min", "budget.max", "budget.window", "budget.horizon", "gate", "gate.mode",
        "gate.refresh_ms", "gate.cell_sigmas", "gate.min_area", "gate.min_score", "publish", "publish.socket",
        "publish.mode", "publish.group", "publish.control_group", "publish.max_clients",
        "publish.queue", "publish.max_line", "publish.change_frames", "mqtt", "mqtt.host",
        "mqtt.port", "mqtt.client_id", "mqtt.topic_prefix", "mqtt.qos", "mqtt.retain",
        "mqtt.keepalive", "mqtt.ca_file", "mqtt.cert_file", "mqtt.key_file", "mqtt.username",
        "mqtt.password", "mqtt.password_file", "mqtt.queue", "mqtt.publish_labels", "http",
        "http.listen", "http.allow_remote", "http.max_clients", "http.stream_fps",
        "http.auth_file", "events", "events.dir", "events.keep", "events.max_bytes",
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
        T(test_docs_example_loads),
        T(test_docs_cover_every_key),
        T(test_error_fixtures),
        T(test_inline_errors),
        T(test_path_too_long_after_resolving),
        T(test_too_many_controls),
        T(test_http_unix_path_limit),
        T(test_small_error_buffer),
        T(test_io_errors),
        T(test_oversized_file),
        T(test_names),
    };
    return cmocka_run_group_tests_name("daemon_config", tests, NULL, NULL);
}
