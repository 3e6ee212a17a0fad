/* Debounced stable-label tracking (see debounce.h). */
#include "debounce.h"

void debounce_init(debounce *d, int frames)
{
    d->need = frames < 1 ? 1 : frames;
    d->stable = -1;
    d->candidate = -1;
    d->run = 0;
}

bool debounce_feed(debounce *d, int class_id, int *previous)
{
    if (class_id == d->stable) {
        d->candidate = -1;
        d->run = 0;
        return false;
    }
    if (class_id == d->candidate) {
        d->run++;
    } else {
        d->candidate = class_id;
        d->run = 1;
    }
    if (d->run < d->need)
        return false;
    if (previous)
        *previous = d->stable;
    d->stable = class_id;
    d->candidate = -1;
    d->run = 0;
    return true;
}
