/* io/shard.c — llm.c token shards (fqt/shard.h): 256 little-endian int32 header words
 * (magic 20240520, version 1, token count, zeros) followed by count uint16 tokens.
 *
 * Not for: tokenization (text/bpe.c) or batching (core/train.c). Byte order is explicit, so
 * shards are the same bytes on any host. */
#include "fqt/shard.h"
#include "fqt/fileio.h"

#include <glob.h>
#include <stdint.h>
#include <string.h>

#define HEADER_BYTES (FQT_SHARD_HEADER_INTS * 4)

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static int32_t get_le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

/* Contract in fqt/shard.h. n may be 0 (a header-only shard); n above INT32_MAX cannot be
 * represented in the header and is FQT_ERR_ARG. */
fqt_status fqt_shard_write(const char *path, const uint16_t *tok, int64_t n) {
    if (n < 0 || n > INT32_MAX || (n > 0 && !tok)) {
        fqt_set_error("%s: cannot write a shard of %lld tokens (limit %d per shard)", path,
                      (long long)n, INT32_MAX);
        return FQT_ERR_ARG;
    }
    size_t bytes = HEADER_BYTES + 2 * (size_t)n;
    unsigned char *buf = calloc(1, bytes);
    if (!buf) {
        fqt_set_error("%s: out of memory for a %zu-byte shard", path, bytes);
        return FQT_ERR_NOMEM;
    }
    put_le32(buf + 0, FQT_SHARD_MAGIC);
    put_le32(buf + 4, FQT_SHARD_VERSION);
    put_le32(buf + 8, (uint32_t)n);
    unsigned char *p = buf + HEADER_BYTES;
    for (int64_t i = 0; i < n; i++) {
        p[2 * i] = (unsigned char)tok[i];
        p[2 * i + 1] = (unsigned char)(tok[i] >> 8);
    }
    fqt_status st = fqt_write_file_atomic(path, buf, bytes);
    free(buf);
    return st;
}

/* Contract in fqt/shard.h. Validation happens before any token is touched: the file must
 * hold a full header, the magic and version must match, the count must be non-negative and
 * the size must be exactly 1024 + 2*count (a truncated or over-long file is an error). An
 * empty shard gives *n == 0 and a valid 1-element buffer. */
fqt_status fqt_shard_read(const char *path, uint16_t **tok, int64_t *n) {
    *tok = NULL;
    *n = 0;
    void *data;
    size_t size;
    fqt_status st = fqt_read_file(path, &data, &size);
    if (st != FQT_OK) return st;
    const unsigned char *b = data;
    st = FQT_ERR_FORMAT;
    if (size < HEADER_BYTES) {
        fqt_set_error("%s: not a token shard: %zu bytes, shorter than the %d-byte header",
                      path, size, HEADER_BYTES);
        goto out;
    }
    int32_t magic = get_le32(b), version = get_le32(b + 4), count = get_le32(b + 8);
    if (magic != FQT_SHARD_MAGIC) {
        fqt_set_error("%s: not a token shard: magic %d, expected %d", path, magic,
                      FQT_SHARD_MAGIC);
        goto out;
    }
    if (version != FQT_SHARD_VERSION) {
        fqt_set_error("%s: unsupported shard version %d (expected %d: uint16 tokens)", path,
                      version, FQT_SHARD_VERSION);
        goto out;
    }
    if (count < 0) {
        fqt_set_error("%s: negative token count %d in the header", path, count);
        goto out;
    }
    uint64_t want = HEADER_BYTES + 2 * (uint64_t)count;
    if ((uint64_t)size != want) {
        fqt_set_error("%s: header says %d tokens (%llu bytes) but the file has %zu bytes%s",
                      path, count, (unsigned long long)want, size,
                      (uint64_t)size < want ? " (truncated?)" : "");
        goto out;
    }
    uint16_t *t = malloc(count > 0 ? 2 * (size_t)count : 2);
    if (!t) {
        fqt_set_error("%s: out of memory for %d tokens", path, count);
        st = FQT_ERR_NOMEM;
        goto out;
    }
    const unsigned char *p = b + HEADER_BYTES;
    for (int64_t i = 0; i < count; i++) t[i] = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    *tok = t;
    *n = count;
    st = FQT_OK;
out:
    free(data);
    return st;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Contract in fqt/shard.h. Files are ordered by strcmp of their paths (not the locale's
 * collation), so the token stream is the same everywhere. Any unreadable or invalid shard
 * fails the whole load with that shard's message. */
fqt_status fqt_shards_load(const char *pattern, uint16_t **tok, int64_t *n) {
    *tok = NULL;
    *n = 0;
    glob_t g;
    int rc = glob(pattern, GLOB_NOSORT | GLOB_BRACE, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        fqt_set_error("no shard matches '%s'", pattern);
        return FQT_ERR_IO;
    }
    if (rc != 0) {
        fqt_set_error("cannot expand shard pattern '%s' (glob error %d)", pattern, rc);
        return FQT_ERR_IO;
    }
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
    fqt_status st = FQT_OK;
    uint16_t *all = NULL;
    int64_t total = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        uint16_t *t;
        int64_t m;
        st = fqt_shard_read(g.gl_pathv[i], &t, &m);
        if (st != FQT_OK) goto fail;
        uint16_t *grown = realloc(all, 2 * (size_t)(total + m + 1));
        if (!grown) {
            free(t);
            fqt_set_error("%s: out of memory concatenating %lld tokens", pattern,
                          (long long)(total + m));
            st = FQT_ERR_NOMEM;
            goto fail;
        }
        all = grown;
        if (m) memcpy(all + total, t, 2 * (size_t)m);
        total += m;
        free(t);
    }
    globfree(&g);
    *tok = all;
    *n = total;
    return FQT_OK;

fail:
    free(all);
    globfree(&g);
    return st;
}
