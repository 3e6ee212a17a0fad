/* What the config tests share (test_daemon_config.c, test_daemon_config_values.c): a
 * bn_config per test on the heap, loading YAML text, paths under the current directory.
 * Functions are static inline so that each test program uses only what it needs. */
#ifndef BN_TEST_CONFIG_H
#define BN_TEST_CONFIG_H

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
static inline int setup_cfg(void **state)
{
    *state = calloc(1, sizeof(bn_config));
    return *state ? 0 : -1;
}

static inline int teardown_cfg(void **state)
{
    free(*state);
    return 0;
}

static inline bn_status load_text(const char *name, const char *text, bn_config *cfg,
                                  char *err, size_t errlen)
{
    return config_load_buffer(name, text, strlen(text), cfg, err, errlen);
}

static inline void cwd_join(char *out, size_t outlen, const char *rel)
{
    char cwd[BN_PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(out, outlen, "%s/%s", cwd, rel);
}

#endif
