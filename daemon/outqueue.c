/* Bounded drop-oldest ring of shared messages per subscriber (see outqueue.h). */
#include "outqueue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pub_msg *pub_msg_new(msg_kind kind, const char *line, size_t len)
{
    pub_msg *m = malloc(sizeof *m + len + 1);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    m->refs = 1;
    m->kind = kind;
    m->class_id = -1;
    m->len = len;
    memcpy(m->data, line, len);
    m->data[len] = '\0';
    return m;
}

pub_msg *pub_msg_ref(pub_msg *m)
{
    if (m)
        m->refs++;
    return m;
}

void pub_msg_unref(pub_msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

bool outqueue_init(outqueue *q, int capacity)
{
    memset(q, 0, sizeof *q);
    if (capacity < 1)
        return false;
    q->ring = calloc((size_t)capacity, sizeof *q->ring);
    if (!q->ring)
        return false;
    q->cap = capacity;
    return true;
}

void outqueue_destroy(outqueue *q)
{
    if (!q->ring)
        return;
    while (q->count > 0) {
        pub_msg_unref(q->ring[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    free(q->ring);
    q->ring = NULL;
    pub_msg_unref(q->cur);
    q->cur = NULL;
}

bool outqueue_push(outqueue *q, pub_msg *m)
{
    if (!q->ring || q->cap < 1)
        return false;
    if (q->count == q->cap) {
        pub_msg *old = q->ring[q->head];
        if (old->kind == MSG_REPLY) {
            q->replies--;
            q->reply_bytes -= old->len;
        }
        pub_msg_unref(old);
        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->lost_pending++;
        q->lost_total++;
    }
    q->ring[(q->head + q->count) % q->cap] = pub_msg_ref(m);
    q->count++;
    if (m->kind == MSG_REPLY) {
        q->replies++;
        q->reply_bytes += m->len;
    }
    return true;
}

/* A private copy of m with ,"lost":N before the closing brace. */
static pub_msg *with_lost(pub_msg *m, uint64_t lost)
{
    char extra[40];
    int n = snprintf(extra, sizeof extra, ",\"lost\":%llu}\n", (unsigned long long)lost);
    if (m->len < 2 || m->data[m->len - 2] != '}' || m->data[m->len - 1] != '\n')
        return NULL;
    size_t base = m->len - 2;
    pub_msg *c = malloc(sizeof *c + base + (size_t)n + 1);
    if (!c)
        return NULL;
    *c = *m;
    c->refs = 1;
    memcpy(c->data, m->data, base);
    memcpy(c->data + base, extra, (size_t)n + 1);
    c->len = base + (size_t)n;
    return c;
}

const char *outqueue_peek(outqueue *q, size_t *len)
{
    if (q->cur && q->cur_off >= q->cur->len) {
        if (q->cur->kind == MSG_REPLY)
            q->replies--;
        pub_msg_unref(q->cur);
        q->cur = NULL;
    }
    if (!q->cur) {
        if (q->count == 0)
            return NULL;
        pub_msg *m = q->ring[q->head];
        q->ring[q->head] = NULL;
        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->cur_off = 0;
        if (q->lost_pending > 0) {
            pub_msg *c = with_lost(m, q->lost_pending);
            if (c) {
                if (m->kind == MSG_REPLY)
                    q->reply_bytes += c->len - m->len;
                pub_msg_unref(m);
                m = c;
                q->lost_pending = 0;
            }   /* on ENOMEM the count is reported with the next message instead */
        }
        q->cur = m;
    }
    *len = q->cur->len - q->cur_off;
    return q->cur->data + q->cur_off;
}

void outqueue_consume(outqueue *q, size_t n)
{
    if (!q->cur)
        return;
    if (n > q->cur->len - q->cur_off)
        n = q->cur->len - q->cur_off;
    q->cur_off += n;
    if (q->cur->kind == MSG_REPLY)
        q->reply_bytes -= n;
    if (q->cur_off >= q->cur->len) {
        if (q->cur->kind == MSG_REPLY)
            q->replies--;
        pub_msg_unref(q->cur);
        q->cur = NULL;
        q->cur_off = 0;
    }
}

bool outqueue_empty(const outqueue *q)
{
    return q->count == 0 && (!q->cur || q->cur_off >= q->cur->len);
}

int outqueue_count(const outqueue *q)
{
    return q->count;
}
