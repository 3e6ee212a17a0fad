/* Event snapshots on disk (daemon/event_store.c): the names the listing may serve (no path
 * tricks), both files of each event written with the sidecar as given, retention by count
 * and by bytes (the newest kept), what a restart finds (the old events counted, a crash's
 * temporary file removed, a foreign file left alone), a directory removed while open
 * created again, a directory that is a file refused with its name, a full queue (a save
 * after event_store_has_room said yes is always queued and written), and one daemon per
 * directory (another process's lock refuses the open; the same process may open it twice). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "event_store.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/bn-events.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static frame_copy *frame(uint8_t v)
{
    frame_copy *f = calloc(1, sizeof *f + 28 * 28);
    atomic_init(&f->refs, 1);
    f->width = f->height = 28;
    f->channels = 1;
    f->cap = 28 * 28;
    for (int i = 0; i < 28 * 28; i++)
        f->data[i] = (uint8_t)(v + i * 7);
    return f;
}

static events_config cfg_of(const char *d, int keep, long long max_bytes)
{
    events_config c = {.enabled = true, .keep = keep, .max_bytes = max_bytes};
    snprintf(c.dir, sizeof c.dir, "%s", d);
    return c;
}

/* Saves n events numbered from first, one second apart; returns the names. */
static void save_events(event_store *s, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        char name[EVENT_NAME_MAX], line[200];
        event_store_name(1796601600000000000ll + (int64_t)i * 1000000000ll, (uint64_t)i, name,
                         sizeof name);
        int len = snprintf(line, sizeof line, "{\"type\":\"change\",\"seq\":%d,\"snapshot\":\"%s.jpg\"}\n",
                           i, name);
        frame_copy *f = frame((uint8_t)i);
        assert_true(event_store_save(s, name, f, line, (size_t)len));
        frame_copy_unref(f);
    }
}

static bool exists(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static int count_files(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -vx '.basisnetd.lock' | wc -l", dir); /* not the lock */
    FILE *p = popen(cmd, "r");
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static void test_names(void **state)
{
    (void)state;
    char name[EVENT_NAME_MAX];
    event_store_name(1796601600123000000ll, 42, name, sizeof name); /* 2026-12-07 00:00:00.123 */
    assert_string_equal(name, "20261207T000000.123Z-42");
    static const char *const good[] = {"20261207T000000.123Z-42.jpg",
                                       "20261207T000000.123Z-42.json",
                                       "20261207T000000.123Z-1.jpg"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(event_store_valid_file(good[i]));
    static const char *const bad[] = {
        "", "..", "../20261207T000000.123Z-42.jpg", "20261207T000000.123Z-42.jpg/",
        "20261207T000000.123Z-42", "20261207T000000.123Z-42.jpeg",
        "20261207T000000.123Z-42.jpg.tmp", ".20261207T000000.123Z-42.jpg.tmp",
        "20261207T000000.123Z-.jpg", "20261207T000000.123Z-4%2F.jpg", "x/../20261207T000000.123Z-4.jpg",
        "2026120T000000.123Z-42.jpg", "20261207T000000.123Z-42.json/../../etc/passwd",
        "20261207T000000.123Z-123456789012345678901.jpg"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (event_store_valid_file(bad[i]))
            print_error("accepted: %s\n", bad[i]);
        assert_false(event_store_valid_file(bad[i]));
    }
}

static void test_files_and_retention_by_count(void **state)
{
    (void)state;
    events_config c = cfg_of(dir, 3, 1 << 20);
    event_store *s = NULL;
    char err[512];
    assert_int_equal(event_store_open(&c, &s, err, sizeof err), BN_OK);
    save_events(s, 1, 5);
    event_store_close(s); /* writes what is queued */
    assert_int_equal(count_files(), 6);
    assert_false(exists("20261207T000001.000Z-1.jpg"));
    assert_false(exists("20261207T000002.000Z-2.json"));
    assert_true(exists("20261207T000003.000Z-3.jpg"));
    assert_true(exists("20261207T000005.000Z-5.json"));
    char p[256], text[256] = "";
    snprintf(p, sizeof p, "%s/20261207T000005.000Z-5.json", dir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    assert_string_equal(text, "{\"type\":\"change\",\"seq\":5,\"snapshot\":\"20261207T000005.000Z-5.jpg\"}\n");
    /* the JPEG: a whole file (SOI ... EOI) */
    snprintf(p, sizeof p, "%s/20261207T000005.000Z-5.jpg", dir);
    f = fopen(p, "rb");
    assert_non_null(f);
    uint8_t buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 100);
    assert_true(buf[0] == 0xFF && buf[1] == 0xD8 && buf[n - 2] == 0xFF && buf[n - 1] == 0xD9);

    /* a restart: the three counted, a crash's temporary file removed, a foreign file kept */
    snprintf(p, sizeof p, "%s/.20261207T000006.000Z-6.jpg.tmp", dir);
    fclose(fopen(p, "w"));
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    fclose(fopen(p, "w"));
    c.keep = 2;
    assert_int_equal(event_store_open(&c, &s, err, sizeof err), BN_OK);
    event_store_stats st;
    event_store_get_stats(s, &st);
    assert_int_equal(st.files, 2);   /* keep lowered: the oldest went at once */
    assert_int_equal(st.removed, 1);
    assert_false(exists(".20261207T000006.000Z-6.jpg.tmp"));
    assert_true(exists("notes.txt"));
    json_t *list = event_store_list(s);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "snapshot")),
                        "20261207T000005.000Z-5.jpg");
    json_decref(list);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(event_store_read(s, "20261207T000005.000Z-5.json", &data, &len), BN_OK);
    assert_int_equal(len, strlen(text));
    free(data);
    assert_int_equal(event_store_read(s, "notes.txt", &data, &len), BN_ERR_NO_DATA);
    assert_int_equal(event_store_read(s, "20261207T000003.000Z-3.jpg", &data, &len),
                     BN_ERR_NO_DATA);
    event_store_close(s);
}

/* The event loop names a snapshot only when event_store_has_room says a save will be
 * queued. 64 saves of a 1280x720 RGB frame are queued far faster than the writer encodes
 * and writes one (milliseconds each), so the queue fills: every save made after a yes is
 * queued and on disk after close, the others counted as dropped. */
static void test_full_queue(void **state)
{
    (void)state;
    events_config c = cfg_of(dir, 100, 1ll << 30);
    event_store *s = NULL;
    char err[512];
    assert_int_equal(event_store_open(&c, &s, err, sizeof err), BN_OK);
    const int w = 1280, h = 720;
    frame_copy *f = calloc(1, sizeof *f + (size_t)w * h * 3);
    atomic_init(&f->refs, 1);
    f->width = w;
    f->height = h;
    f->channels = 3;
    f->cap = (size_t)w * h * 3;
    for (size_t i = 0; i < f->cap; i++)
        f->data[i] = (uint8_t)(i * 2654435761u >> 24); /* noise: a slow JPEG */
    bool named[64];
    int refused = 0, queued = 0;
    for (int i = 0; i < 64; i++) {
        char name[EVENT_NAME_MAX];
        event_store_name(1796601600000000000ll + (int64_t)i * 1000000000ll, (uint64_t)i, name,
                         sizeof name);
        named[i] = event_store_has_room(s);
        bool ok = event_store_save(s, name, f, "{}\n", 3);
        if (named[i])
            assert_true(ok);
        refused += !named[i];
        queued += ok;
    }
    frame_copy_unref(f);
    assert_true(refused > 0); /* the queue did fill (its bound: EVENT_STORE_QUEUE) */
    event_store_close(s);
    for (int i = 0; i < 64; i++) {
        if (!named[i])
            continue;
        char name[EVENT_NAME_MAX], file[EVENT_NAME_MAX + 8];
        event_store_name(1796601600000000000ll + (int64_t)i * 1000000000ll, (uint64_t)i, name,
                         sizeof name);
        snprintf(file, sizeof file, "%s.jpg", name);
        assert_true(exists(file));
    }
    assert_int_equal(count_files(), 2 * queued);
}

static int sh(const char *fmt, const char *arg)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, fmt, arg, arg, arg, arg);
    return system(cmd);
}

static void test_one_daemon_per_directory(void **state)
{
    (void)state;
    events_config c = cfg_of(dir, 10, 1 << 20);
    event_store *a = NULL, *b = NULL, *x = NULL;
    char err[512] = "";
    /* the same process twice (a reload opens the new store first): both open */
    assert_int_equal(event_store_open(&c, &a, err, sizeof err), BN_OK);
    assert_int_equal(event_store_open(&c, &b, err, sizeof err), BN_OK);
    /* another process cannot take the lock while either store is open */
    assert_int_not_equal(sh("flock -n '%s/.basisnetd.lock' true", dir), 0);
    event_store_close(a);
    assert_int_not_equal(sh("flock -n '%s/.basisnetd.lock' true", dir), 0);
    event_store_close(b);
    assert_int_equal(sh("flock -n '%s/.basisnetd.lock' true", dir), 0); /* released */
    /* another process holds it: refused, naming the directory */
    /* flock(1) holds the lock (-o: not its child, which writes its pid and sleeps) */
    assert_int_equal(sh("(flock -n -o '%s/.basisnetd.lock' sh -c 'echo $$ > %s/held.tmp && "
                        "mv %s/held.tmp %s/held && exec sleep 10') >/dev/null 2>&1 &", dir), 0);
    for (int i = 0; i < 100 && !exists("held"); i++)
        usleep(50000);
    assert_true(exists("held"));
    assert_int_equal(event_store_open(&c, &x, err, sizeof err), BN_ERR_BUSY);
    assert_null(x);
    assert_non_null(strstr(err, "is in use by another basisnetd"));
    assert_non_null(strstr(err, dir));
    assert_int_equal(sh("kill $(cat '%s/held')", dir), 0);
    for (int i = 0; i < 100 && sh("flock -n '%s/.basisnetd.lock' true", dir) != 0; i++)
        usleep(50000);
    assert_int_equal(event_store_open(&c, &x, err, sizeof err), BN_OK);
    event_store_close(x);
    assert_false(event_store_valid_file(".basisnetd.lock")); /* never listed or served */
}

static void test_retention_by_bytes(void **state)
{
    (void)state;
    events_config c = cfg_of(dir, 1000, 4096);
    event_store *s = NULL;
    char err[512];
    assert_int_equal(event_store_open(&c, &s, err, sizeof err), BN_OK);
    save_events(s, 1, 12);
    event_store_close(s);
    assert_int_equal(event_store_open(&c, &s, err, sizeof err), BN_OK);
    event_store_stats st;
    event_store_get_stats(s, &st);
    assert_true(st.bytes <= 4096);
    assert_true(st.files >= 1 && st.files < 12);
    assert_true(exists("20261207T000012.000Z-12.jpg")); /* the newest stays */
    assert_int_equal(count_files(), 2 * st.files);
    event_store_close(s);

    /* one event larger than the limit: still kept, as the newest */
    c.max_bytes = 4096;
    c.keep = 1;
    assert_int_equal(event_store_open(&c, &s, err, sizeof err), BN_OK);
    event_store_get_stats(s, &st);
    assert_int_equal(st.files, 1);
    event_store_close(s);
}

static void test_removed_directory_is_created_again(void **state)
{
    (void)state;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/ev", dir);
    events_config c = cfg_of(sub, 10, 1 << 20);
    event_store *s = NULL;
    char err[512];
    assert_int_equal(event_store_open(&c, &s, err, sizeof err), BN_OK); /* made here */
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", sub);
    assert_int_equal(system(cmd), 0);
    save_events(s, 1, 1);
    event_store_close(s);
    char p[256];
    snprintf(p, sizeof p, "%s/20261207T000001.000Z-1.json", sub);
    assert_int_equal(access(p, F_OK), 0);

    /* replaced by a file: the save fails, counted, and the store goes on */
    assert_int_equal(event_store_open(&c, &s, err, sizeof err), BN_OK);
    assert_int_equal(system(cmd), 0);
    fclose(fopen(sub, "w"));
    save_events(s, 2, 1);
    for (int i = 0; i < 500; i++) {
        event_store_stats st;
        event_store_get_stats(s, &st);
        if (st.failed == 1) {
            if (!strstr(st.last_error, "not a directory"))
                print_error("%s\n", st.last_error);
            assert_non_null(strstr(st.last_error, "not a directory"));
            break;
        }
        assert_true(i < 499);
        usleep(10000);
    }
    unlink(sub);
    save_events(s, 3, 1); /* saving again */
    event_store_close(s);
    snprintf(p, sizeof p, "%s/20261207T000003.000Z-3.jpg", sub);
    assert_int_equal(access(p, F_OK), 0);

    /* at open: a file where the directory should be */
    unlink(p);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", sub);
    assert_int_equal(system(cmd), 0);
    fclose(fopen(sub, "w"));
    assert_int_equal(event_store_open(&c, &s, err, sizeof err), BN_ERR_IO);
    assert_null(s);
    char want[256];
    snprintf(want, sizeof want, "events.dir %s: not a directory", sub);
    assert_string_equal(err, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_files_and_retention_by_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_daemon_per_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_directory_is_created_again, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
