/* HTTP basic authentication from a password file (http.auth_file, docs/http.md#security):
 * lines "user:HASH" where HASH is a crypt(3) hash (yescrypt, SHA-512, ... as mkpasswd or
 * `openssl passwd -6` make them); a password is checked by hashing it with the entry's
 * setting (libcrypt) and comparing the result in constant time. A header that passed is
 * remembered as a keyed SHA-256 digest for a while, so that a page's many requests cost one
 * hash, not one each. */
#ifndef BN_HTTP_AUTH_H
#define BN_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "bn_error.h"

/* A verified Authorization header is trusted again without hashing for this long. */
#define HTTP_AUTH_CACHE_S 300
/* Headers remembered at once (the oldest is forgotten). */
#define HTTP_AUTH_CACHE 16
/* Entries in one file. */
#define HTTP_AUTH_USERS_MAX 256

typedef struct http_auth http_auth;

/* Reads path. Errors name the file and line: "FILE:3: user 'ann': ... is not a crypt(3)
 * hash ...". */
bn_status http_auth_load(const char *path, http_auth **out, char *err, size_t errlen);
/* True, with one line in buf, when path is readable or writable by every user (the hashes
 * can be attacked offline, or replaced); the file is used anyway. */
bool http_auth_file_warning(const char *path, char *buf, size_t len);
void http_auth_free(http_auth *a);
int http_auth_users(const http_auth *a);
/* True when header (the Authorization value, may be NULL) names a user of the file with
 * the right password. now_us: monotonic time, for the cache. */
bool http_auth_check(http_auth *a, const char *header, long long now_us);

#endif
