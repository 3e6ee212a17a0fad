/* Tests for the callback logger and the project-wide status codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "bn_error.h"
#include "bn_log.h"

typedef struct {
    int calls;
    bn_log_level level;
    char module[32];
    char msg[1100];
} sink;

static void capture_sink(bn_log_level level, const char *module, const char *msg, void *user)
{
    sink *s = user;
    s->calls++;
    s->level = level;
    snprintf(s->module, sizeof s->module, "%s", module);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
}

static void test_callback_receives_formatted_message(void **state)
{
    (void)state;
    sink s = {0};
    bn_log_set_callback(capture_sink, &s);
    bn_log_set_level(BN_LOG_INFO);
    BN_LOGW("engine", "tensor '%s' has %d dims", "conv1.weight", 5);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.level, BN_LOG_WARN);
    assert_string_equal(s.module, "engine");
    assert_string_equal(s.msg, "tensor 'conv1.weight' has 5 dims");
    bn_log_set_callback(NULL, NULL);
}

static void test_level_filter_drops_verbose_messages(void **state)
{
    (void)state;
    sink s = {0};
    bn_log_set_callback(capture_sink, &s);
    bn_log_set_level(BN_LOG_WARN);
    BN_LOGI("x", "info is dropped");
    BN_LOGD("x", "debug is dropped");
    assert_int_equal(s.calls, 0);
    BN_LOGE("x", "error passes");
    assert_int_equal(s.calls, 1);
    bn_log_set_level(BN_LOG_DEBUG);
    BN_LOGD("x", "debug passes");
    assert_int_equal(s.calls, 2);
    bn_log_set_callback(NULL, NULL);
    bn_log_set_level(BN_LOG_INFO);
}

static void test_no_callback_is_silent(void **state)
{
    (void)state;
    bn_log_set_callback(NULL, NULL);
    BN_LOGE("x", "goes nowhere"); /* must not crash */
    assert_int_equal(bn_log_get_level(), BN_LOG_INFO);
}

static void test_long_message_is_truncated_not_overflowed(void **state)
{
    (void)state;
    sink s = {0};
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bn_log_set_callback(capture_sink, &s);
    BN_LOGE("x", "%s", big);
    assert_int_equal(strlen(s.msg), 1023);
    bn_log_set_callback(NULL, NULL);
}

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(bn_log_level_parse("error"), BN_LOG_ERROR);
    assert_int_equal(bn_log_level_parse("debug"), BN_LOG_DEBUG);
    assert_int_equal(bn_log_level_parse("verbose"), -1);
    assert_int_equal(bn_log_level_parse(NULL), -1);
}

/* One line of bn_log_stderr output, captured from stderr. */
static void capture_stderr_line(char *buf, size_t size)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    unsetenv("JOURNAL_STREAM");
    bn_log_stderr(BN_LOG_ERROR, "pipeline", "device lost", NULL);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, size - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = 0;
}

static void test_stderr_sink_format(void **state)
{
    (void)state;
    /* Default clock (BASISNET_LOG_CLOCK unset): "[2026-12-06T00:08:12.345678Z] E pipeline[..." */
    unsetenv("BASISNET_LOG_CLOCK");
    char buf[256];
    capture_stderr_line(buf, sizeof buf);
    struct tm tm = {0};
    long usec = -1;
    char tag, rest[200];
    assert_int_equal(sscanf(buf, "[%4d-%2d-%2dT%2d:%2d:%2d.%6ldZ] %c %199[^\n]", &tm.tm_year,
                            &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &usec,
                            &tag, rest),
                     9);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t logged = timegm(&tm);
    time_t now = time(NULL);
    assert_true(logged <= now && now - logged < 5); /* wall clock, UTC, not seconds since boot */
    assert_in_range(usec, 0, 999999);
    assert_int_equal(tag, 'E');
    assert_non_null(strstr(rest, "pipeline["));
    assert_non_null(strstr(rest, "]: device lost"));
}

static void test_stderr_sink_monotonic(void **state)
{
    (void)state;
    /* BASISNET_LOG_CLOCK=monotonic: "[  123.456789] E pipeline[thread]: device lost" */
    setenv("BASISNET_LOG_CLOCK", "monotonic", 1);
    char buf[256];
    capture_stderr_line(buf, sizeof buf);
    unsetenv("BASISNET_LOG_CLOCK");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t;
    char tag, rest[200];
    assert_int_equal(sscanf(buf, "[%lf] %c %199[^\n]", &t, &tag, rest), 3);
    assert_true(t <= (double)ts.tv_sec + 1 && (double)ts.tv_sec - t < 5);
    assert_int_equal(tag, 'E');
    assert_non_null(strstr(rest, "]: device lost"));
}

static void test_status_names_are_distinct(void **state)
{
    (void)state;
    for (int a = 0; a < BN_STATUS_COUNT; a++) {
        assert_string_not_equal(bn_status_str((bn_status)a), "unknown");
        for (int b = a + 1; b < BN_STATUS_COUNT; b++)
            assert_string_not_equal(bn_status_str((bn_status)a), bn_status_str((bn_status)b));
    }
    assert_string_equal(bn_status_str((bn_status)999), "unknown");
    assert_false(bn_status_recoverable(BN_ERR_FORMAT));
    assert_true(bn_status_recoverable(BN_ERR_NO_DEVICE));
    assert_true(bn_status_recoverable(BN_ERR_TIMEOUT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callback_receives_formatted_message),
        cmocka_unit_test(test_level_filter_drops_verbose_messages),
        cmocka_unit_test(test_no_callback_is_silent),
        cmocka_unit_test(test_long_message_is_truncated_not_overflowed),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_stderr_sink_format),
        cmocka_unit_test(test_stderr_sink_monotonic),
        cmocka_unit_test(test_status_names_are_distinct),
    };
    return cmocka_run_group_tests_name("engine_log", tests, NULL, NULL);
}
