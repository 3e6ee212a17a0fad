/* "Did you mean" helpers shared by the config parser and basisnetctl. */
#ifndef BN_SUGGEST_H
#define BN_SUGGEST_H

#include <stddef.h>

/* Longest string compared; longer ones are SIZE_MAX away from everything. */
#define SUGGEST_MAX 64

size_t suggest_distance(const char *a, const char *b);

/* The entry of known[0..n) at most 2 edits (and at most half the word) from word, or NULL. */
const char *suggest_closest(const char *word, const char *const *known, int n);

#endif
