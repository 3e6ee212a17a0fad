/* Post-parse config checks (see config_check.h). */
#include "config_check.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bn_log.h"
#include "http_auth.h"
#include "source_check.h"

typedef struct {
    const bn_config *cfg;
    char *buf;
    size_t cap, len;
    int count;
} problems;

__attribute__((format(printf, 3, 4))) static void add(problems *p, const char *key,
                                                      const char *fmt, ...)
{
    char where[BN_PATH_MAX + 128];
    config_where(p->cfg, key, where, sizeof where);
    if (p->len + 1 < p->cap) {
        int n = snprintf(p->buf + p->len, p->cap - p->len, "%s%s: ", p->count ? "\n" : "",
                         where);
        p->len = n < 0 || (size_t)n >= p->cap - p->len ? p->cap - 1 : p->len + (size_t)n;
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
        va_end(ap);
        p->len = n < 0 || (size_t)n >= p->cap - p->len ? p->cap - 1 : p->len + (size_t)n;
    }
    p->count++;
}

/* The directory a missing dir would be created in: "/" for "/x", "." for "x", trailing
 * slashes ignored. */
static void parent_dir(const char *dir, char *parent, size_t len)
{
    snprintf(parent, len, "%s", dir);
    char *slash = strrchr(parent, '/');
    while (slash && slash != parent && slash[1] == '\0') { /* "dir/" */
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    if (slash && slash != parent)
        *slash = '\0';
    else
        snprintf(parent, len, "%s", slash ? "/" : ".");
}

/* A directory the daemon makes when missing: its parent must let this user create it. */
static void check_creatable(problems *p, const char *key, const char *what, const char *dir,
                            const char *unit_option)
{
    char parent[BN_PATH_MAX];
    parent_dir(dir, parent, sizeof parent);
    if (access(parent, W_OK | X_OK) != 0)
        add(p, key,
            "%s%s does not exist and cannot be created in %s: %s (a systemd unit with %s= "
            "creates it when the service starts)",
            what, dir, parent, strerror(errno), unit_option);
}

/* The server creates one missing level of the socket's directory (server.c), so the nearest
 * of the directory and its parent that exists must let this user create entries. */
static void check_socket_dir(problems *p)
{
    char dir[BN_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", p->cfg->publish.socket);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        slash == dir ? (void)(dir[1] = '\0') : (void)(*slash = '\0');
    if (access(dir, F_OK) == 0) {
        if (access(dir, W_OK | X_OK) != 0)
            add(p, "publish.socket", "the socket's directory %s is not writable by this user: %s",
                dir, strerror(errno));
        return;
    }
    check_creatable(p, "publish.socket", "the socket's directory ", dir, "RuntimeDirectory");
}

/* publish.group and publish.control_group must exist (the server looks them up when it
 * binds); the socket's group is set with chown, which a user outside that group (and not
 * root) is refused. */
static void check_group(problems *p, const char *key, const char *name, bool chowns)
{
    if (!name[0])
        return;
    struct group gr, *res = NULL;
    char buf[4096];
    if (getgrnam_r(name, &gr, buf, sizeof buf, &res) != 0 || !res) {
        add(p, key, "no such group '%s'%s", name,
            strcmp(name, "basisnetd") == 0
                ? " (systemd-sysusers creates it from basisnetd.sysusers; \"\" keeps the "
                  "daemon's own group)"
                : "");
        return;
    }
    if (!chowns || geteuid() == 0 || getegid() == gr.gr_gid)
        return;
    gid_t groups[256];
    int n = getgroups(256, groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == gr.gr_gid)
            return;
    add(p, key, "this user is not in group '%s', so it cannot give the socket that group", name);
}

/* events.dir: a directory this user may create files in, or a missing one whose parent it
 * may create it in (the event store makes one level, as systemd's StateDirectory= does). */
static void check_events_dir(problems *p)
{
    const char *dir = p->cfg->events.dir;
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            add(p, "events.dir", "%s is not a directory", dir);
        else if (access(dir, W_OK | X_OK) != 0)
            add(p, "events.dir", "cannot write in %s: %s", dir, strerror(errno));
        return;
    }
    if (errno != ENOENT) {
        add(p, "events.dir", "%s: %s", dir, strerror(errno));
        return;
    }
    check_creatable(p, "events.dir", "", dir, "StateDirectory");
}

static void check_readable(problems *p, const char *key, const char *path)
{
    if (path[0] && access(path, R_OK) != 0)
        add(p, key, "cannot read '%s': %s", path, strerror(errno));
}

/* Appends "WHERE: warning: ..." when PATH, or the directory it is in, lets every user
 * change it. Symbolic links are followed: what matters is the file the daemon reads. */
static void warn_writable(problems *p, const char *key, const char *path, const char *what)
{
    struct stat st;
    if (!path[0] || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return;   /* a missing or special file is an error of its own (or the loader's) */
    char where[BN_PATH_MAX + 128];
    if (key)
        config_where(p->cfg, key, where, sizeof where);
    else
        snprintf(where, sizeof where, "%s", p->cfg->origin.file);
    char dir[BN_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        slash == dir ? (void)(dir[1] = '\0') : (void)(*slash = '\0');
    struct stat ds;
    char line[3 * BN_PATH_MAX + 256];
    /* The config's own name is already the line's FILE: not printed twice. */
    char name[BN_PATH_MAX + 4];
    if (key)
        snprintf(name, sizeof name, " '%s'", path);
    else
        name[0] = '\0';
    if (st.st_mode & S_IWOTH)
        snprintf(line, sizeof line,
                 "%s: warning: %s%s is writable by every user (mode %04o): any local account "
                 "can change it (chmod o-w)",
                 where, what, name, (unsigned)(st.st_mode & 07777));
    else if (stat(dir, &ds) == 0 && (ds.st_mode & S_IWOTH) && !(ds.st_mode & S_ISVTX))
        snprintf(line, sizeof line,
                 "%s: warning: %s%s is in a directory writable by every user without the "
                 "sticky bit (%s, mode %04o): any local account can replace it",
                 where, what, name, dir, (unsigned)(ds.st_mode & 07777));
    else
        return;
    if (p->len + 1 < p->cap) {
        int n = snprintf(p->buf + p->len, p->cap - p->len, "%s%s", p->count ? "\n" : "", line);
        p->len = n < 0 || (size_t)n >= p->cap - p->len ? p->cap - 1 : p->len + (size_t)n;
    }
    p->count++;
}

int config_check_warnings(const bn_config *cfg, char *buf, size_t len)
{
    problems p = {.cfg = cfg, .buf = buf, .cap = len};
    if (len)
        buf[0] = '\0';
    if (cfg->origin.file[0])
        warn_writable(&p, NULL, cfg->origin.file, "the config file");
    warn_writable(&p, "model", cfg->model, "the model");
    if (cfg->source.kind == SOURCE_RTSP)
        warn_writable(&p, "source.credentials_file", cfg->source.credentials_file,
                      "the credentials file");
    if (cfg->mqtt.enabled) {
        warn_writable(&p, "mqtt.password_file", cfg->mqtt.password_file, "the password file");
        warn_writable(&p, "mqtt.key_file", cfg->mqtt.key_file, "the private key");
    }
    char line[BN_PATH_MAX + 256];
    if (cfg->http.enabled && cfg->http.auth_file[0] &&
        http_auth_file_warning(cfg->http.auth_file, line, sizeof line)) {
        char where[BN_PATH_MAX + 128];
        config_where(cfg, "http.auth_file", where, sizeof where);
        if (p.len + 1 < p.cap) {
            int n = snprintf(p.buf + p.len, p.cap - p.len, "%s%s: %s", p.count ? "\n" : "",
                             where, line);
            p.len = n < 0 || (size_t)n >= p.cap - p.len ? p.cap - 1 : p.len + (size_t)n;
        }
        p.count++;
    }
    return p.count;
}

bn_status config_check_resources(const bn_config *cfg, unsigned flags, char *err, size_t errlen)
{
    if (!(flags & CONFIG_CHECK_NO_WARN_LOG)) {
        char warn[4 * BN_PATH_MAX + 1024];
        if (config_check_warnings(cfg, warn, sizeof warn) > 0) {
            char *save = NULL;
            for (char *line = strtok_r(warn, "\n", &save); line;
                 line = strtok_r(NULL, "\n", &save))
                BN_LOGW("config", "%s", line);
        }
    }
    problems p = {.cfg = cfg, .buf = err, .cap = errlen};
    if (errlen)
        err[0] = '\0';
    const char *key = NULL;
    char msg[2048];
    if (source_check(&cfg->source, &key, msg, sizeof msg) != BN_OK)
        add(&p, key, "%s", msg);
    if (!(flags & CONFIG_CHECK_NO_SOCKET))
        check_socket_dir(&p);
    check_group(&p, "publish.group", cfg->publish.group, !(flags & CONFIG_CHECK_NO_SOCKET));
    check_group(&p, "publish.control_group", cfg->publish.control_group, false);
    if (cfg->mqtt.enabled) {
        check_readable(&p, "mqtt.ca_file", cfg->mqtt.ca_file);
        check_readable(&p, "mqtt.cert_file", cfg->mqtt.cert_file);
        check_readable(&p, "mqtt.key_file", cfg->mqtt.key_file);
        check_readable(&p, "mqtt.password_file", cfg->mqtt.password_file);
    }
    if (cfg->events.enabled)
        check_events_dir(&p);
    if (cfg->http.enabled && cfg->http.auth_file[0]) {
        http_auth *auth = NULL;
        if (http_auth_load(cfg->http.auth_file, &auth, msg, sizeof msg) != BN_OK)
            add(&p, "http.auth_file", "%s", msg);
        http_auth_free(auth);
    }
    return p.count ? BN_ERR_CONFIG : BN_OK;
}

void config_model_error(const bn_config *cfg, const char *msg, char *err, size_t errlen)
{
    char where[BN_PATH_MAX + 128];
    config_where(cfg, "model", where, sizeof where);
    snprintf(err, errlen, "%s: %s", where, msg);
}
