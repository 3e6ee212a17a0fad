/* Change detection for the "change" event: the stable label moves to a new class only after
 * that class has been the answer for `frames` consecutive frames, so one noisy frame never
 * produces a change event. */
#ifndef BN_DEBOUNCE_H
#define BN_DEBOUNCE_H

#include <stdbool.h>

typedef struct {
    int need;       /* consecutive frames a new class must hold (>= 1) */
    int stable;     /* current stable class, -1 before the first one */
    int candidate;  /* class seen in the current run, -1 none */
    int run;        /* length of that run */
} debounce;

void debounce_init(debounce *d, int frames);
/* Feeds one frame's class. Returns true when the stable class changes (the first stable
 * class counts as a change from -1) and writes the old stable class to *previous. */
bool debounce_feed(debounce *d, int class_id, int *previous);

#endif
