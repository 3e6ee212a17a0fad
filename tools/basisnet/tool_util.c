/* Helpers shared by the toolbox's commands (declared in commands.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "commands.h"

int tool_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int tool_parse_long_opt(const char *prog, const char *opt, const char *s, long lo, long hi,
                        long *out)
{
    if (tool_parse_long(s, lo, hi, out) == 0)
        return 0;
    fprintf(stderr, "%s: %s expects an integer from %ld to %ld, got '%s'\n", prog, opt, lo, hi,
            s ? s : "");
    return -1;
}

uint64_t tool_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
