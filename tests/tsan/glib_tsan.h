/* ThreadSanitizer build only (make tsan; forced into every project file with -include):
 * GLib's GMutex and GCond lock with raw futex system calls, which ThreadSanitizer cannot
 * see, so every access our code makes under such a lock looked like a race. In this build
 * the project's own calls go to pthread-based versions (glib_tsan.c) that it sees. Only the
 * project's mutexes and conditions are ever passed to these calls (none is shared with
 * GLib's or GStreamer's own locking), so both implementations never meet on one object. */
#ifndef BN_GLIB_TSAN_H
#define BN_GLIB_TSAN_H

#include <glib.h>

void bn_tsan_mutex_init(GMutex *m);
void bn_tsan_mutex_clear(GMutex *m);
void bn_tsan_mutex_lock(GMutex *m);
void bn_tsan_mutex_unlock(GMutex *m);
gboolean bn_tsan_mutex_trylock(GMutex *m);
void bn_tsan_cond_init(GCond *c);
void bn_tsan_cond_clear(GCond *c);
void bn_tsan_cond_wait(GCond *c, GMutex *m);
gboolean bn_tsan_cond_wait_until(GCond *c, GMutex *m, gint64 end_time);
void bn_tsan_cond_signal(GCond *c);
void bn_tsan_cond_broadcast(GCond *c);

#define g_mutex_init bn_tsan_mutex_init
#define g_mutex_clear bn_tsan_mutex_clear
#define g_mutex_lock bn_tsan_mutex_lock
#define g_mutex_unlock bn_tsan_mutex_unlock
#define g_mutex_trylock bn_tsan_mutex_trylock
#define g_cond_init bn_tsan_cond_init
#define g_cond_clear bn_tsan_cond_clear
#define g_cond_wait bn_tsan_cond_wait
#define g_cond_wait_until bn_tsan_cond_wait_until
#define g_cond_signal bn_tsan_cond_signal
#define g_cond_broadcast bn_tsan_cond_broadcast

#endif
