/* Tests for the RTSP URL and credential helpers (pipeline/rtsp.c): what is printed never
 * holds the password, what rtspsrc gets is the decoded user and password and the bare URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "rtsp.h"

static void test_mask(void **state)
{
    (void)state;
    char out[256];
    rtsp_url_mask("rtsp://admin:pa:ss@cam.lan:554/live?x=@", out, sizeof out);
    assert_string_equal(out, "rtsp://***@cam.lan:554/live?x=@");
    rtsp_url_mask("rtsp://cam.lan/live", out, sizeof out);
    assert_string_equal(out, "rtsp://cam.lan/live");
    /* not a URL at all: still masked */
    rtsp_url_mask("user:pw@host", out, sizeof out);
    assert_string_equal(out, "***@host");
    rtsp_url_mask("rtsp://a:b@c@host/p", out, sizeof out);
    assert_string_equal(out, "rtsp://***@host/p");
}

static void test_split(void **state)
{
    (void)state;
    char clean[256], user[64], pw[64], err[256];
    assert_int_equal(rtsp_url_split("rtsp://adm%40x:s3cr%3At@10.0.0.5:8554/s/1?ch=2", clean,
                                    sizeof clean, user, sizeof user, pw, sizeof pw, err,
                                    sizeof err), BN_OK);
    assert_string_equal(clean, "rtsp://10.0.0.5:8554/s/1?ch=2");
    assert_string_equal(user, "adm@x");
    assert_string_equal(pw, "s3cr:t");
    assert_int_equal(rtsp_url_split("rtsp://cam/live", clean, sizeof clean, user, sizeof user, pw,
                                    sizeof pw, err, sizeof err), BN_OK);
    assert_string_equal(clean, "rtsp://cam/live");
    assert_string_equal(user, "");
}

static void test_check(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(rtsp_url_check("rtsps://cam:322/x", err, sizeof err), BN_OK);
    assert_int_equal(rtsp_url_check("http://u:s3cr@cam/x", err, sizeof err), BN_ERR_CONFIG);
    assert_non_null(strstr(err, "not an RTSP URL"));
    assert_null(strstr(err, "s3cr"));
    assert_int_equal(rtsp_url_check("rtsp://u:s3cr@[bad/x", err, sizeof err), BN_ERR_CONFIG);
    assert_non_null(strstr(err, "not a valid URL"));
    assert_null(strstr(err, "s3cr"));
}

static void test_credentials_file(void **state)
{
    (void)state;
    char path[] = "/tmp/bn-rtsp-cred-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "cam:pa:ss\nignored\n", 18), 18);
    close(fd);
    char user[64], pw[64], err[256];
    assert_int_equal(rtsp_read_credentials(path, user, sizeof user, pw, sizeof pw, err, sizeof err),
                     BN_OK);
    assert_string_equal(user, "cam");
    assert_string_equal(pw, "pa:ss");
    FILE *f = fopen(path, "w");
    fputs("no-colon-s3cr\n", f);
    fclose(f);
    assert_int_equal(rtsp_read_credentials(path, user, sizeof user, pw, sizeof pw, err, sizeof err),
                     BN_ERR_CONFIG);
    assert_non_null(strstr(err, "user:password"));
    assert_null(strstr(err, "s3cr"));
    unlink(path);
    assert_int_equal(rtsp_read_credentials(path, user, sizeof user, pw, sizeof pw, err, sizeof err),
                     BN_ERR_IO);
    assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_credentials_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
