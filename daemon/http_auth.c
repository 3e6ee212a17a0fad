/* HTTP basic authentication (see http_auth.h): the password file, crypt(3) checks and the
 * cache of verified headers. */
#include "http_auth.h"

#include <crypt.h>
#include <errno.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "bn_log.h"

#define LINE_MAX_LEN 1024
#define DIGEST 32

typedef struct {
    char *user;
    char *hash;
} account;

typedef struct {
    unsigned char digest[DIGEST];
    long long until_us;
} remembered;

struct http_auth {
    account users[HTTP_AUTH_USERS_MAX];
    int n;
    unsigned char key[32];          /* the cache's digests are keyed: a memory dump of them
                                       is no dictionary of headers */
    remembered cache[HTTP_AUTH_CACHE];
    int next;
};

/* Same length and bytes, in time that depends on the lengths only. */
static bool equal_ct(const void *a, size_t la, const void *b, size_t lb)
{
    const unsigned char *x = a, *y = b;
    size_t n = la < lb ? la : lb;
    unsigned char d = la != lb;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

void http_auth_free(http_auth *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->n; i++) {
        free(a->users[i].user);
        free(a->users[i].hash);
    }
    memset(a, 0, sizeof *a);
    free(a);
}

int http_auth_users(const http_auth *a)
{
    return a ? a->n : 0;
}

/* Index of c in crypt's base-64 alphabet, -1 if not in it. */
static int crypt64(char c)
{
    static const char a[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const char *p = c ? strchr(a, c) : NULL;
    return p ? (int)(p - a) : -1;
}

/* Checking a password costs what its hash's setting asks, on the main loop (the first time
 * a given header is seen, and once at load to check the hash). The methods taken are those
 * whose cost the setting states plainly, each capped at about a second on a current core:
 * SHA-256/512 crypt at most HTTP_AUTH_SHA_ROUNDS_MAX rounds (1,000,000: 0.65 s), bcrypt
 * at most cost HTTP_AUTH_BCRYPT_COST_MAX (13), yescrypt at most HTTP_AUTH_YESCRYPT_MB_MAX
 * of memory (128 r N bytes; Debian's default $y$j9T is 16 MB, 0.05 s). */
#define HTTP_AUTH_SHA_ROUNDS_MAX 1000000L
#define HTTP_AUTH_BCRYPT_COST_MAX 13
#define HTTP_AUTH_YESCRYPT_MB_MAX 256
static const char *cost_problem(const char *hash)
{
    if (!strncmp(hash, "$5$", 3) || !strncmp(hash, "$6$", 3)) {
        if (strncmp(hash + 3, "rounds=", 7) != 0)
            return NULL; /* the default, 5000 */
        char *end;
        long r = strtol(hash + 10, &end, 10);
        return *end == '$' && r <= HTTP_AUTH_SHA_ROUNDS_MAX
                   ? NULL
                   : "asks for more than 1000000 rounds (checking it would stall the daemon)";
    }
    if (hash[1] == '2' && hash[2] && strchr("aby", hash[2]) && hash[3] == '$') {
        int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
        return hash[4] >= '0' && hash[4] <= '9' && hash[5] >= '0' && hash[5] <= '9' &&
                       hash[6] == '$' && cost <= HTTP_AUTH_BCRYPT_COST_MAX
                   ? NULL
                   : "asks for a bcrypt cost over 13 (checking it would stall the daemon)";
    }
    const char *y = !strncmp(hash, "$y$", 3) ? hash + 3 : !strncmp(hash, "$gy$", 4) ? hash + 4 : NULL;
    if (y) { /* flavor, N_log2 - 1, r - 1: one character each when small */
        int f = crypt64(y[0]), n = crypt64(y[1]), r = crypt64(y[2]);
        if (f < 0 || f > 47 || n < 0 || n > 47 || r < 0 || r > 47)
            return "asks for more yescrypt memory than 256 MB (checking it would stall the daemon)";
        double mb = 128.0 * (r + 1) * ldexp(1.0, n + 1) / (1 << 20);
        return mb <= HTTP_AUTH_YESCRYPT_MB_MAX
                   ? NULL
                   : "asks for more yescrypt memory than 256 MB (checking it would stall the daemon)";
    }
    return "uses a crypt(3) method whose cost basisnetd cannot bound (use yescrypt $y$, "
           "SHA-512 $6$ or bcrypt $2b$)";
}

/* Why hash is not a hash libcrypt computes and accepts, or NULL when it is. */
static const char *hash_problem(const char *hash)
{
    if (hash[0] != '$')
        return "is not a crypt(3) hash (a plain-text password?)";
    switch (crypt_checksalt(hash)) {
    case CRYPT_SALT_OK:
        break;
    case CRYPT_SALT_METHOD_LEGACY:
        return "uses a legacy crypt(3) method";
    case CRYPT_SALT_METHOD_DISABLED:
        return "uses a crypt(3) method this libcrypt has disabled";
    case CRYPT_SALT_TOO_CHEAP:
        return "has too few rounds";
    default:
        return "is not a crypt(3) hash (a plain-text password?)";
    }
    const char *costly = cost_problem(hash);
    if (costly)
        return costly;
    /* The setting may be valid while the hash part is cut: hashing anything must give a
     * string of the same length. */
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    const char *out = crypt_rn("x", hash, &cd, sizeof cd);
    if (!out || out[0] == '*' || strlen(out) != strlen(hash))
        return "is not a whole crypt(3) hash";
    return NULL;
}

static bn_status parse_line(http_auth *a, const char *path, int lineno, char *line, char *err,
                            size_t errlen)
{
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                   line[len - 1] == '\t'))
        line[--len] = '\0';
    if (len == 0 || line[0] == '#')
        return BN_OK;
    char *colon = strchr(line, ':');
    if (!colon || colon == line) {
        snprintf(err, errlen, "%s:%d: expected user:HASH", path, lineno);
        return BN_ERR_CONFIG;
    }
    *colon = '\0';
    const char *user = line, *hash = colon + 1;
    const char *why = hash_problem(hash);
    if (why) {
        snprintf(err, errlen,
                 "%s:%d: user '%.64s': the password %s; make one with `mkpasswd -m yescrypt` "
                 "(Debian's whois) or `openssl passwd -6` and write user:HASH",
                 path, lineno, user, why);
        return BN_ERR_CONFIG;
    }
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->users[i].user, user) == 0) {
            snprintf(err, errlen, "%s:%d: user '%.64s' is given twice", path, lineno, user);
            return BN_ERR_CONFIG;
        }
    }
    if (a->n == HTTP_AUTH_USERS_MAX) {
        snprintf(err, errlen, "%s:%d: more than %d users", path, lineno, HTTP_AUTH_USERS_MAX);
        return BN_ERR_CONFIG;
    }
    a->users[a->n].user = strdup(user);
    a->users[a->n].hash = strdup(hash);
    if (!a->users[a->n].user || !a->users[a->n].hash) {
        free(a->users[a->n].user);
        free(a->users[a->n].hash);
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    a->n++;
    return BN_OK;
}

bool http_auth_file_warning(const char *path, char *buf, size_t len)
{
    struct stat st;
    if (stat(path, &st) != 0 || !(st.st_mode & (S_IROTH | S_IWOTH)))
        return false;
    snprintf(buf, len,
             "warning: the password file '%s' is %s by every user (mode %04o): any local "
             "account can %s (chmod o-rwx)",
             path, st.st_mode & S_IWOTH ? "writable" : "readable", (unsigned)(st.st_mode & 07777),
             st.st_mode & S_IWOTH ? "replace the hashes" : "attack the hashes offline");
    return true;
}

bn_status http_auth_load(const char *path, http_auth **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return BN_ERR_IO;
    }
    http_auth *a = calloc(1, sizeof *a);
    if (!a || getrandom(a->key, sizeof a->key, 0) != (ssize_t)sizeof a->key) {
        fclose(f);
        free(a);
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    char line[LINE_MAX_LEN];
    bn_status st_ = BN_OK;
    for (int lineno = 1; st_ == BN_OK && fgets(line, sizeof line, f); lineno++) {
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno,
                     LINE_MAX_LEN - 2);
            st_ = BN_ERR_CONFIG;
            break;
        }
        st_ = parse_line(a, path, lineno, line, err, errlen);
    }
    fclose(f);
    if (st_ == BN_OK && a->n == 0) {
        snprintf(err, errlen, "%s: no user:HASH line (nobody could log in)", path);
        st_ = BN_ERR_CONFIG;
    }
    if (st_ != BN_OK) {
        http_auth_free(a);
        return st_;
    }
    *out = a;
    return BN_OK;
}

static void digest_of(const http_auth *a, const char *header, unsigned char *d)
{
    GHmac *h = g_hmac_new(G_CHECKSUM_SHA256, a->key, sizeof a->key);
    g_hmac_update(h, (const guchar *)header, (gssize)strlen(header));
    gsize n = DIGEST;
    g_hmac_get_digest(h, d, &n);
    g_hmac_unref(h);
}

/* user:password against the file: one crypt(3) either way, so that an unknown user takes
 * as long as a wrong password. */
static bool verify(const http_auth *a, const char *user, const char *password)
{
    const account *acc = &a->users[0];
    bool known = false;
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->users[i].user, user) == 0) {
            acc = &a->users[i];
            known = true;
        }
    }
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return false;
    const char *out = crypt_rn(password, acc->hash, cd, sizeof *cd);
    bool ok = out && equal_ct(out, strlen(out), acc->hash, strlen(acc->hash));
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return ok && known;
}

bool http_auth_check(http_auth *a, const char *header, long long now_us)
{
    if (!a || !header || g_ascii_strncasecmp(header, "Basic ", 6) != 0)
        return false;
    unsigned char d[DIGEST];
    digest_of(a, header, d);
    for (int i = 0; i < HTTP_AUTH_CACHE; i++) {
        remembered *r = &a->cache[i];
        if (r->until_us > now_us && equal_ct(r->digest, DIGEST, d, DIGEST))
            return true;
    }
    const char *b64 = header + 6;
    while (*b64 == ' ')
        b64++;
    gsize n = 0;
    guchar *plain = g_base64_decode(b64, &n);
    bool ok = false;
    char *colon = plain ? memchr(plain, ':', n) : NULL;
    if (colon && !memchr(plain, '\0', n)) {
        char *text = g_strndup((const char *)plain, n);
        text[colon - (char *)plain] = '\0';
        ok = verify(a, text, text + (colon - (char *)plain) + 1);
        explicit_bzero(text, n);
        g_free(text);
    }
    if (plain) {
        explicit_bzero(plain, n);
        g_free(plain);
    }
    if (ok) {
        remembered *r = &a->cache[a->next];
        memcpy(r->digest, d, DIGEST);
        r->until_us = now_us + HTTP_AUTH_CACHE_S * 1000000ll;
        a->next = (a->next + 1) % HTTP_AUTH_CACHE;
    }
    return ok;
}
