/* Event snapshots on disk (see event_store.h): a writer thread fed from the event loop, the
 * index of the events on disk (oldest first) and the retention. One mutex guards the queue,
 * the index, the directory's descriptor and the counters; nothing slow runs under it. */
#include "event_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bn_log.h"
#include "picture.h"

#define MOD "events"
/* The largest file event_store_read serves: a JPEG of a 224x224 input scaled to the
 * automatic size is tens of kilobytes. */
#define READ_MAX (16u << 20)

typedef struct {
    char name[EVENT_NAME_MAX];
    uint64_t bytes;
} entry;

typedef struct {
    char name[EVENT_NAME_MAX];
    const frame_copy *frame;
    char *line;
    size_t len;
} job;

struct event_store {
    events_config cfg;
    GMutex lock;
    GCond wake;
    GThread *thread;
    bool stop;
    int dirfd;
    struct dir_lock *dir_lock;      /* this process's hold on the directory */
    GQueue jobs;                    /* job *, oldest first */
    GQueue index;                   /* entry *, oldest first */
    uint64_t bytes;
    event_store_stats st;           /* files and bytes filled in by get_stats */
    double save_ms_sum;
};

/* ---- names ----------------------------------------------------------------------------- */

void event_store_name(int64_t real_ns, uint64_t seq, char *name, size_t len)
{
    time_t t = (time_t)(real_ns / 1000000000ll);
    struct tm tm;
    gmtime_r(&t, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y%m%dT%H%M%S", &tm);
    snprintf(name, len, "%s.%03dZ-%llu", when, (int)(real_ns / 1000000 % 1000),
             (unsigned long long)seq);
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Length of the NAME part of "NAME.jpg" / "NAME.json" (0: not one). */
static size_t stem_length(const char *f)
{
    /* 8 digits T 6 digits . 3 digits Z - 1..20 digits */
    if (strlen(f) < 22 || !digits(f, 8) || f[8] != 'T' || !digits(f + 9, 6) || f[15] != '.' ||
        !digits(f + 16, 3) || f[19] != 'Z' || f[20] != '-')
        return 0;
    size_t n = 21;
    while (f[n] >= '0' && f[n] <= '9')
        n++;
    if (n == 21 || n > 41)
        return 0;
    if (strcmp(f + n, ".jpg") == 0 || strcmp(f + n, ".json") == 0)
        return n;
    return 0;
}

bool event_store_valid_file(const char *name)
{
    return stem_length(name) > 0;
}

/* Chronological: the time, then the change number. */
static gint entry_cmp(gconstpointer pa, gconstpointer pb, gpointer unused)
{
    (void)unused;
    const char *a = ((const entry *)pa)->name, *b = ((const entry *)pb)->name;
    int c = strncmp(a, b, 21);
    if (c)
        return c;
    size_t la = strlen(a), lb = strlen(b);
    return la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
}

/* ---- files ----------------------------------------------------------------------------- */

static int open_dir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "events.dir %s: cannot create it: %s", dir, strerror(errno));
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        snprintf(err, errlen, "events.dir %s: %s", dir,
                 errno == ENOTDIR ? "not a directory" : strerror(errno));
    return fd;
}

/* One daemon per directory: retention counts and removes every event file in it, so two
 * daemons sharing one would delete each other's events. The first store a process opens on
 * a directory takes an exclusive flock on DIR/.basisnetd.lock (holding the pid); stores the
 * same process opens on it later (a reload opens the new store before it closes the old one)
 * share that hold. Another process's hold refuses the open, naming it. */
#define LOCK_FILE ".basisnetd.lock"
typedef struct dir_lock {
    dev_t dev;
    ino_t ino;
    int fd, refs;
    struct dir_lock *next;
} dir_lock;
static GMutex locks_mu;
static dir_lock *locks;

static dir_lock *lock_dir(int dirfd, const char *dir, bool *busy, char *err, size_t errlen)
{
    struct stat sb;
    if (fstat(dirfd, &sb) != 0) {
        snprintf(err, errlen, "events.dir %s: %s", dir, strerror(errno));
        return NULL;
    }
    g_mutex_lock(&locks_mu);
    dir_lock *l = locks;
    while (l && !(l->dev == sb.st_dev && l->ino == sb.st_ino))
        l = l->next;
    if (l) {
        l->refs++;
        g_mutex_unlock(&locks_mu);
        return l;
    }
    int fd = openat(dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "events.dir %s: cannot create %s: %s", dir, LOCK_FILE, strerror(errno));
    } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[24] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        *busy = e == EWOULDBLOCK;
        if (e == EWOULDBLOCK)
            snprintf(err, errlen, "events.dir %s is in use by another basisnetd%s%s%s (it holds "
                     "%s/%s): give every daemon its own events.dir", dir, pid[0] ? " (pid " : "",
                     pid, pid[0] ? ")" : "", dir, LOCK_FILE);
        else
            snprintf(err, errlen, "events.dir %s: cannot lock %s: %s", dir, LOCK_FILE, strerror(e));
        close(fd);
        fd = -1;
    } else if (!(l = calloc(1, sizeof *l))) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        fd = -1;
    }
    if (fd >= 0) {
        char pid[24];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
            BN_LOGD(MOD, "events.dir %s: cannot write the pid into %s", dir, LOCK_FILE);
        *l = (dir_lock){.dev = sb.st_dev, .ino = sb.st_ino, .fd = fd, .refs = 1, .next = locks};
        locks = l;
    }
    g_mutex_unlock(&locks_mu);
    return fd >= 0 ? l : NULL;
}

static void unlock_dir(dir_lock *l)
{
    if (!l)
        return;
    g_mutex_lock(&locks_mu);
    if (--l->refs == 0) {
        dir_lock **p = &locks;
        while (*p != l)
            p = &(*p)->next;
        *p = l->next;
        close(l->fd); /* releases the flock; the file stays (another may hold it by now) */
        free(l);
    }
    g_mutex_unlock(&locks_mu);
}

/* FILE through .FILE.tmp and a rename: a reader sees the whole file or none. Returns 0 or
 * the errno of the step that failed (err says which). */
static int write_atomic(int dfd, const char *file, const void *data, size_t len, char *err,
                        size_t errlen)
{
    char tmp[EVENT_NAME_MAX + 16];
    snprintf(tmp, sizeof tmp, ".%s.tmp", file);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(e));
        return e;
    }
    const uint8_t *p = data;
    size_t done = 0;
    int e = 0;
    while (done < len && !e) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            e = n < 0 ? errno : ENOSPC;
        else
            done += (size_t)n;
    }
    /* The data reaches the disk before the name does: after a power cut the file is
     * whole or absent, never empty. */
    if (!e && fdatasync(fd) != 0)
        e = errno;
    close(fd);
    if (e) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(e));
    } else if (renameat(dfd, tmp, dfd, file) != 0) {
        e = errno;
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, file, strerror(e));
    }
    if (e)
        unlinkat(dfd, tmp, 0);
    return e;
}

static void remove_event(int dfd, const char *name)
{
    char f[EVENT_NAME_MAX + 8];
    snprintf(f, sizeof f, "%s.jpg", name);
    unlinkat(dfd, f, 0);
    snprintf(f, sizeof f, "%s.json", name);
    unlinkat(dfd, f, 0);
}

/* Both files of j, or neither: 0 or an errno. */
static int save_files(int dfd, const job *j, const uint8_t *jpeg, size_t jpeg_len, char *err,
                      size_t errlen)
{
    char f[EVENT_NAME_MAX + 8];
    snprintf(f, sizeof f, "%s.jpg", j->name);
    int e = write_atomic(dfd, f, jpeg, jpeg_len, err, errlen);
    if (e)
        return e;
    snprintf(f, sizeof f, "%s.json", j->name);
    e = write_atomic(dfd, f, j->line, j->len, err, errlen);
    if (e)
        remove_event(dfd, j->name);
    return e;
}

/* The descriptor, reopened when asked (the directory was removed or replaced); -1 with err
 * when that fails. */
static int current_dir(event_store *s, bool reopen, char *err, size_t errlen)
{
    g_mutex_lock(&s->lock);
    int fd = s->dirfd;
    if (reopen || fd < 0) {
        fd = open_dir(s->cfg.dir, err, errlen);
        if (fd >= 0) {
            if (s->dirfd >= 0)
                close(s->dirfd);
            s->dirfd = fd;
        }
    }
    g_mutex_unlock(&s->lock);
    return fd;
}

/* Oldest first while over a limit; the newest event always stays. Called locked; the names
 * removed are appended to gone. */
static void apply_retention(event_store *s, GPtrArray *gone)
{
    while (s->index.length > 1 &&
           (s->index.length > (guint)s->cfg.keep || s->bytes > (uint64_t)s->cfg.max_bytes)) {
        entry *e = g_queue_pop_head(&s->index);
        s->bytes -= e->bytes;
        s->st.removed++;
        g_ptr_array_add(gone, e);
    }
}

static void save_one(event_store *s, job *j)
{
    gint64 t0 = g_get_monotonic_time();
    char err[300] = "";
    uint8_t *jpeg = NULL;
    size_t jpeg_len = 0;
    picture_opts o = {.overlay = false, .scale = 0};
    bool ok = picture_jpeg(j->frame, "", &o, &jpeg, &jpeg_len, err, sizeof err) == BN_OK;
    if (ok) {
        int dfd = current_dir(s, false, err, sizeof err);
        int e = dfd >= 0 ? save_files(dfd, j, jpeg, jpeg_len, err, sizeof err) : ENOENT;
        if (e == ENOENT || e == ENOTDIR) {
            /* the directory was removed (or replaced): created again, one more try */
            dfd = current_dir(s, true, err, sizeof err);
            e = dfd >= 0 ? save_files(dfd, j, jpeg, jpeg_len, err, sizeof err) : ENOENT;
        }
        ok = e == 0;
    }
    free(jpeg);
    double ms = (double)(g_get_monotonic_time() - t0) / 1e3;
    GPtrArray *gone = g_ptr_array_new_with_free_func(free);
    g_mutex_lock(&s->lock);
    bool was_failing = s->st.last_error[0] != '\0';
    bool new_error = !ok && strcmp(s->st.last_error, err) != 0;
    if (ok) {
        entry *e = calloc(1, sizeof *e);
        if (e) {
            snprintf(e->name, sizeof e->name, "%s", j->name);
            e->bytes = jpeg_len + j->len;
            g_queue_insert_sorted(&s->index, e, entry_cmp, NULL);
            s->bytes += e->bytes;
        }
        s->st.saved++;
        s->st.save_ms_last = ms;
        if (ms > s->st.save_ms_max)
            s->st.save_ms_max = ms;
        s->save_ms_sum += ms;
        s->st.last_error[0] = '\0';
        apply_retention(s, gone);
    } else {
        s->st.failed++;
        snprintf(s->st.last_error, sizeof s->st.last_error, "%s", err);
    }
    int dfd = s->dirfd;
    for (guint i = 0; i < gone->len; i++)
        remove_event(dfd, ((entry *)gone->pdata[i])->name);
    g_mutex_unlock(&s->lock);
    g_ptr_array_free(gone, TRUE);
    /* One line per new problem, and one when it is over: not one per event. */
    if (new_error)
        BN_LOGW(MOD, "event %s not saved in %s: %s", j->name, s->cfg.dir, err);
    else if (ok && was_failing)
        BN_LOGI(MOD, "event %s saved in %s: saving again", j->name, s->cfg.dir);
}

static void job_free(job *j)
{
    if (!j)
        return;
    frame_copy_unref(j->frame);
    free(j->line);
    free(j);
}

static gpointer writer(gpointer data)
{
    event_store *s = data;
    for (;;) {
        g_mutex_lock(&s->lock);
        while (!s->stop && g_queue_is_empty(&s->jobs))
            g_cond_wait(&s->wake, &s->lock);
        job *j = g_queue_pop_head(&s->jobs);
        g_mutex_unlock(&s->lock);
        if (!j)
            break; /* stopping, and everything queued is written */
        save_one(s, j);
        job_free(j);
    }
    return NULL;
}

/* ---- what was there before ------------------------------------------------------------- */

static bn_status scan(event_store *s, char *err, size_t errlen)
{
    int fd = dup(s->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        snprintf(err, errlen, "events.dir %s: cannot list it: %s", s->cfg.dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return BN_ERR_IO;
    }
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        size_t len = strlen(n);
        if (n[0] == '.' && len > 5 && strcmp(n + len - 4, ".tmp") == 0) {
            char inner[256];
            snprintf(inner, sizeof inner, "%.*s", (int)(len - 5), n + 1);
            if (event_store_valid_file(inner))
                unlinkat(s->dirfd, n, 0); /* left by a crash between create and rename */
            continue;
        }
        size_t stem = stem_length(n);
        struct stat st;
        if (!stem || fstatat(s->dirfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        char key[EVENT_NAME_MAX];
        snprintf(key, sizeof key, "%.*s", (int)stem, n);
        entry *e = g_hash_table_lookup(seen, key);
        if (!e) {
            e = calloc(1, sizeof *e);
            if (!e)
                continue;
            snprintf(e->name, sizeof e->name, "%s", key);
            g_hash_table_insert(seen, e->name, e);
            g_queue_push_tail(&s->index, e);
        }
        e->bytes += (uint64_t)st.st_size;
        s->bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    g_hash_table_destroy(seen);
    g_queue_sort(&s->index, entry_cmp, NULL);
    GPtrArray *gone = g_ptr_array_new_with_free_func(free);
    apply_retention(s, gone);
    for (guint i = 0; i < gone->len; i++)
        remove_event(s->dirfd, ((entry *)gone->pdata[i])->name);
    g_ptr_array_free(gone, TRUE);
    return BN_OK;
}

/* ---- the public side ------------------------------------------------------------------- */

bn_status event_store_open(const events_config *cfg, event_store **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    event_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    s->cfg = *cfg;
    g_mutex_init(&s->lock);
    g_cond_init(&s->wake);
    g_queue_init(&s->jobs);
    g_queue_init(&s->index);
    s->dirfd = open_dir(cfg->dir, err, errlen);
    if (s->dirfd < 0) {
        event_store_close(s);
        return BN_ERR_IO;
    }
    if (faccessat(s->dirfd, ".", W_OK | X_OK, AT_EACCESS) != 0) {
        snprintf(err, errlen, "events.dir %s: cannot write in it: %s", cfg->dir, strerror(errno));
        event_store_close(s);
        return BN_ERR_PERMISSION;
    }
    bool busy = false;
    if (!(s->dir_lock = lock_dir(s->dirfd, cfg->dir, &busy, err, errlen))) {
        event_store_close(s);
        return busy ? BN_ERR_BUSY : BN_ERR_IO;
    }
    bn_status st = scan(s, err, errlen);
    if (st != BN_OK) {
        event_store_close(s);
        return st;
    }
    s->thread = g_thread_new("events", writer, s);
    *out = s;
    return BN_OK;
}

void event_store_close(event_store *s)
{
    if (!s)
        return;
    if (s->thread) {
        g_mutex_lock(&s->lock);
        s->stop = true;
        g_cond_signal(&s->wake);
        g_mutex_unlock(&s->lock);
        g_thread_join(s->thread);
        s->thread = NULL;
    }
    job *j;
    while ((j = g_queue_pop_head(&s->jobs)))
        job_free(j);
    g_queue_clear_full(&s->index, free);
    unlock_dir(s->dir_lock);
    if (s->dirfd >= 0)
        close(s->dirfd);
    g_cond_clear(&s->wake);
    g_mutex_clear(&s->lock);
    free(s);
}

bool event_store_has_room(event_store *s)
{
    if (!s)
        return false;
    g_mutex_lock(&s->lock);
    bool room = s->jobs.length < EVENT_STORE_QUEUE;
    g_mutex_unlock(&s->lock);
    return room;
}

bool event_store_save(event_store *s, const char *name, const frame_copy *f, const char *line,
                      size_t len)
{
    if (!s)
        return false;
    if (!f) {
        g_mutex_lock(&s->lock);
        s->st.dropped++;
        g_mutex_unlock(&s->lock);
        return false;
    }
    job *j = calloc(1, sizeof *j);
    char *copy = malloc(len ? len : 1);
    g_mutex_lock(&s->lock);
    bool take = j && copy && s->jobs.length < EVENT_STORE_QUEUE;
    if (take) {
        snprintf(j->name, sizeof j->name, "%s", name);
        atomic_fetch_add(&((frame_copy *)f)->refs, 1);
        j->frame = f;
        memcpy(copy, line, len);
        j->line = copy;
        j->len = len;
        g_queue_push_tail(&s->jobs, j);
        g_cond_signal(&s->wake);
    } else {
        s->st.dropped++;
    }
    g_mutex_unlock(&s->lock);
    if (!take) {
        free(j);
        free(copy);
    }
    return take;
}

void event_store_get_stats(event_store *s, event_store_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    g_mutex_lock(&s->lock);
    *out = s->st;
    out->files = (int)s->index.length;
    out->bytes = s->bytes;
    out->save_ms_mean = s->st.saved ? s->save_ms_sum / (double)s->st.saved : 0;
    g_mutex_unlock(&s->lock);
}

json_t *event_store_list(event_store *s)
{
    json_t *a = json_array();
    if (!s || !a)
        return a;
    g_mutex_lock(&s->lock);
    for (GList *l = s->index.tail; l; l = l->prev) {
        const entry *e = l->data;
        char jpg[EVENT_NAME_MAX + 8], side[EVENT_NAME_MAX + 8];
        snprintf(jpg, sizeof jpg, "%s.jpg", e->name);
        snprintf(side, sizeof side, "%s.json", e->name);
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:I}", "name", e->name, "snapshot",
                                           jpg, "sidecar", side, "bytes", (json_int_t)e->bytes));
    }
    g_mutex_unlock(&s->lock);
    return a;
}

bn_status event_store_read(event_store *s, const char *name, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!s || !event_store_valid_file(name))
        return BN_ERR_NO_DATA;
    g_mutex_lock(&s->lock);
    int fd = s->dirfd >= 0 ? openat(s->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    g_mutex_unlock(&s->lock);
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ? BN_ERR_NO_DATA : BN_ERR_IO;
    struct stat st;
    bn_status rc = BN_ERR_IO;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > READ_MAX) {
        rc = BN_ERR_NO_DATA;
        goto out;
    }
    size_t want = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(want ? want : 1);
    if (!buf) {
        rc = BN_ERR_NOMEM;
        goto out;
    }
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    *out = buf;
    *len = got;
    rc = BN_OK;
out:
    close(fd);
    return rc;
}

const char *event_store_dir(const event_store *s)
{
    return s ? s->cfg.dir : "";
}
