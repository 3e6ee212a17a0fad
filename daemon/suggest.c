/* "Did you mean": edit distances between what was written and what is known (config keys,
 * label names in basisnetctl). */
#include "suggest.h"

#include <stdint.h>
#include <string.h>

/* Edit distance where swapping two neighbouring letters counts as one edit (optimal
 * string alignment): "fsp" is one typo away from "fps". */
size_t suggest_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > SUGGEST_MAX || lb > SUGGEST_MAX)
        return SIZE_MAX;
    size_t rows[3][SUGGEST_MAX + 1];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *suggest_closest(const char *word, const char *const *known, int n)
{
    size_t best = SIZE_MAX;
    const char *found = NULL;
    for (int i = 0; i < n; i++) {
        size_t d = suggest_distance(word, known[i]);
        if (d < best) {
            best = d;
            found = known[i];
        }
    }
    return best <= 2 && best * 2 <= strlen(word) ? found : NULL;
}
