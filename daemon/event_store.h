/* Event snapshots on disk (the events: section, docs/http.md#event-snapshots): on each change
 * event the frame is saved as NAME.jpg beside NAME.json, the change message as sent, each
 * written to a temporary file and renamed in the same directory; the oldest events are
 * removed beyond events.keep and events.max_bytes. The JPEG encoding and the writes run on
 * the store's own thread, so the event loop only takes a reference to the frame and queues
 * it. */
#ifndef BN_EVENT_STORE_H
#define BN_EVENT_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"
#include "config.h"
#include "frame_slot.h"

/* Saves waiting for the thread; a change event beyond them is saved without its files. */
#define EVENT_STORE_QUEUE 16
/* "20261207T021500.123Z-42": the time of the change (UTC) and its seq. */
#define EVENT_NAME_MAX 48

typedef struct event_store event_store;

typedef struct {
    uint64_t saved;                 /* events written (both files) */
    uint64_t failed;                /* events that could not be written */
    uint64_t dropped;               /* events not saved: EVENT_STORE_QUEUE saves were waiting */
    uint64_t removed;               /* events removed by retention */
    int files;                      /* events on disk now */
    uint64_t bytes;                 /* their bytes (both files) */
    double save_ms_last, save_ms_max, save_ms_mean; /* encoding and writing one event */
    char last_error[320];           /* "" when the last save succeeded */
} event_store_stats;

/* Creates cfg->dir when missing (one level, mode 0750), counts the events already there
 * (files named like NAME.jpg / NAME.json; others are left alone), removes temporary files a
 * crash left, applies the retention and starts the thread. Errors name the directory. */
bn_status event_store_open(const events_config *cfg, event_store **out, char *err,
                           size_t errlen);
/* Writes what is queued, stops the thread, frees. Idempotent on NULL. */
void event_store_close(event_store *s);
/* The name of the event with change number seq at real time real_ns (no extension). */
void event_store_name(int64_t real_ns, uint64_t seq, char *name, size_t len);
/* True when name (without a directory) is NAME.jpg or NAME.json of a name
 * event_store_name makes: what the HTTP listing may serve. */
bool event_store_valid_file(const char *name);
/* True when a save now would be queued (fewer than EVENT_STORE_QUEUE waiting). The event
 * loop, the only caller of event_store_save, asks before it names a snapshot in a change
 * message: the writer thread only empties the queue, so the answer holds until the save. */
bool event_store_has_room(event_store *s);
/* Queues the event: f (a reference is taken; may be NULL: no picture, no files) and the
 * change message line as sent. Returns false when it is not saved (no frame, queue full). */
bool event_store_save(event_store *s, const char *name, const frame_copy *f, const char *line,
                      size_t len);
void event_store_get_stats(event_store *s, event_store_stats *out);
/* The events on disk, newest first: [{"name":N,"snapshot":"N.jpg","sidecar":"N.json",
 * "bytes":B}], a new reference. */
json_t *event_store_list(event_store *s);
/* Reads a file of the listing (event_store_valid_file names only): *out malloc'd.
 * BN_ERR_NO_DATA when there is no such file. */
bn_status event_store_read(event_store *s, const char *name, uint8_t **out, size_t *len);
const char *event_store_dir(const event_store *s);

#endif
