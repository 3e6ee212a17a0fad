/* Per-subscriber outgoing queue: a bounded ring of shared, reference-counted serialized
 * messages. When the ring is full the client's own oldest message is dropped and counted;
 * the count is reported to that client in the next message it receives ("lost"), so a slow
 * reader never holds back the pipeline or any other client. */
#ifndef BN_OUTQUEUE_H
#define BN_OUTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { MSG_LABEL = 0, MSG_CHANGE, MSG_SOURCE, MSG_REPLY, MSG_HELLO } msg_kind;

/* One serialized message ("{...}\n"), shared by every client queue that holds it. */
typedef struct {
    int refs;               /* only touched from the event-loop thread */
    msg_kind kind;
    int class_id;           /* label/change: for filters */
    double score;
    char label[64];
    size_t len;
    char data[];            /* len bytes, ends with "}\n" */
} pub_msg;

/* Copies len bytes of line (one JSON object + '\n') into a new message with one reference. */
pub_msg *pub_msg_new(msg_kind kind, const char *line, size_t len);
pub_msg *pub_msg_ref(pub_msg *m);
void pub_msg_unref(pub_msg *m);

typedef struct {
    pub_msg **ring;
    int cap, head, count;
    uint64_t lost_pending;  /* dropped since the last message handed out */
    uint64_t lost_total;
    /* the message being written: either a shared message or a private copy with "lost" */
    pub_msg *cur;
    size_t cur_off;
    /* replies (MSG_REPLY) not yet written, the one in progress included: what a client that
     * sends commands without reading their answers has piled up (server.c pauses its reading) */
    int replies;
    size_t reply_bytes;
} outqueue;

bool outqueue_init(outqueue *q, int capacity);
void outqueue_destroy(outqueue *q);
/* Takes a new reference to m. When full, drops the oldest queued message (never the one
 * being written) and counts it. Returns false only when the capacity is zero. */
bool outqueue_push(outqueue *q, pub_msg *m);
/* Bytes to write next (NULL when nothing is pending); starts the next message when the
 * current one is done, splicing ,"lost":N into it when messages were dropped before it. */
const char *outqueue_peek(outqueue *q, size_t *len);
/* Marks n bytes of the peeked data as written. */
void outqueue_consume(outqueue *q, size_t n);
bool outqueue_empty(const outqueue *q);
/* Messages queued, not counting the one in progress. */
int outqueue_count(const outqueue *q);

#endif
