/* io/safetensors.c — safetensors writer (streamed to a temporary file, then renamed) and
 * reader (mmap, validated in full before any tensor pointer is formed).
 *
 * For: the byte layer under checkpoints. Not for: deciding which tensors a checkpoint holds
 * or their meaning (core/checkpoint.c), or general file helpers (io/fileio.c: the atomic
 * writer here streams tensors without building the file in memory, and will be unified
 * with that one later). */
#include "fqt/safetensors.h"
#include "fqt/fileio.h"
#include "fqt/formats.h"
#include "fqt/json.h"
#include "io/safetensors_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; io/safetensors.c assumes a little-endian host"
#endif

int64_t fqt_st_test_fail_at_byte = -1;

/* ---- dtypes ----------------------------------------------------------------------- */

static const char *const dtype_names[] = {"F32", "BF16", "F16", "I32", "I64", "U8", "U16"};
static const size_t dtype_sizes[] = {4, 2, 2, 4, 8, 1, 2};
FQT_STATIC_ASSERT(sizeof dtype_names / sizeof dtype_names[0] == FQT_ST_DTYPE_COUNT,
                  "dtype_names must cover fqt_st_dtype");
FQT_STATIC_ASSERT(sizeof dtype_sizes / sizeof dtype_sizes[0] == FQT_ST_DTYPE_COUNT,
                  "dtype_sizes must cover fqt_st_dtype");

const char *fqt_st_dtype_name(fqt_st_dtype t) {
    return (unsigned)t < FQT_ST_DTYPE_COUNT ? dtype_names[t] : "?";
}

size_t fqt_st_dtype_size(fqt_st_dtype t) {
    return (unsigned)t < FQT_ST_DTYPE_COUNT ? dtype_sizes[t] : 0;
}

static bool dtype_parse(const char *s, fqt_st_dtype *out) {
    for (int i = 0; i < FQT_ST_DTYPE_COUNT; i++)
        if (!strcmp(s, dtype_names[i])) { *out = (fqt_st_dtype)i; return true; }
    return false;
}

/* 16-bit float conversions are the format core's (docs/FORMATS.md §2.6): one definition of
 * every bit conversion in fqt. */
fqt_status fqt_st_encode_f32(fqt_st_dtype dtype, const float *src, int64_t n, void *dst) {
    if (n < 0 || (n > 0 && (!src || !dst))) {
        fqt_set_error("fqt_st_encode_f32: bad arguments (n = %lld)", (long long)n);
        return FQT_ERR_ARG;
    }
    unsigned char *d = dst;
    switch (dtype) {
    case FQT_ST_F32:
        if (n) memcpy(dst, src, (size_t)n * 4);
        return FQT_OK;
    case FQT_ST_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = fqt_bf16_encode_rne(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return FQT_OK;
    case FQT_ST_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = fqt_fp16_encode_rne(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return FQT_OK;
    default:
        fqt_set_error("fqt_st_encode_f32: dtype %s is not F32, BF16 or F16",
                      fqt_st_dtype_name(dtype));
        return FQT_ERR_ARG;
    }
}

/* "[a, b, c]" into buf (truncated to n bytes). */
static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t len = 0;
    buf[0] = 0;
    len += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
    return buf;
}

/* ---- writer ---------------------------------------------------------------------------- */

typedef struct {
    int fd;
    const char *tmp; /* for messages */
    int64_t written;
} out_file;

/* Write all n bytes or fail with errno set; honours the test hook. */
static int write_all(out_file *o, const void *data, size_t n) {
    const unsigned char *p = data;
    while (n > 0) {
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        if (fqt_st_test_fail_at_byte >= 0) {
            int64_t room = fqt_st_test_fail_at_byte - o->written;
            if (room <= 0) { errno = ENOSPC; return -1; }
            if ((uint64_t)room < chunk) chunk = (size_t)room;
        }
        ssize_t w = write(o->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        o->written += w;
    }
    return 0;
}

/* Check the arguments of fqt_st_write; fills nbytes[i]. The duplicate-name scan is
 * quadratic, fine for the few hundred tensors of a checkpoint. */
static fqt_status check_write_args(const char *path, const fqt_st_tensor *t, int64_t n,
                                   const char *const *meta_kv, size_t *nbytes) {
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *name = t[i].name;
        if (!name || !name[0] || !strcmp(name, "__metadata__")) {
            fqt_set_error("%s: tensor %lld has an invalid name ('%s')", path, (long long)i,
                          name ? name : "(null)");
            return FQT_ERR_ARG;
        }
        for (int64_t j = 0; j < i; j++)
            if (!strcmp(t[j].name, name)) {
                fqt_set_error("%s: tensor name '%s' given twice (tensors %lld and %lld)", path,
                              name, (long long)j, (long long)i);
                return FQT_ERR_ARG;
            }
        if ((unsigned)t[i].dtype >= FQT_ST_DTYPE_COUNT) {
            fqt_set_error("%s: tensor '%s': invalid dtype %d", path, name, (int)t[i].dtype);
            return FQT_ERR_ARG;
        }
        if (t[i].ndim < 0 || t[i].ndim > FQT_ST_WRITE_MAX_NDIM) {
            fqt_set_error("%s: tensor '%s': ndim %d is outside 0..%d", path, name, t[i].ndim,
                          FQT_ST_WRITE_MAX_NDIM);
            return FQT_ERR_ARG;
        }
        int64_t numel = 1;
        int64_t esize = (int64_t)dtype_sizes[t[i].dtype];
        for (int d = 0; d < t[i].ndim; d++) {
            int64_t s = t[i].shape[d];
            if (s < 0) {
                fqt_set_error("%s: tensor '%s': negative dimension %lld", path, name, (long long)s);
                return FQT_ERR_ARG;
            }
            if (s && numel > INT64_MAX / esize / s) {
                fqt_set_error("%s: tensor '%s': size overflows", path, name);
                return FQT_ERR_ARG;
            }
            numel *= s;
        }
        int64_t nb = numel * esize;
        if (nb > INT64_MAX - total || (uint64_t)nb > SIZE_MAX) {
            fqt_set_error("%s: total tensor size overflows at tensor '%s'", path, name);
            return FQT_ERR_ARG;
        }
        total += nb;
        if (nb && !t[i].data) {
            fqt_set_error("%s: tensor '%s': data is NULL", path, name);
            return FQT_ERR_ARG;
        }
        nbytes[i] = (size_t)nb;
    }
    if (meta_kv) {
        int64_t k = 0;
        for (; meta_kv[k]; k += 2) {
            if (!meta_kv[k + 1]) {
                fqt_set_error("%s: metadata key '%s' has no value (odd count in meta_kv)", path,
                              meta_kv[k]);
                return FQT_ERR_ARG;
            }
            if (!meta_kv[k][0]) {
                fqt_set_error("%s: empty metadata key", path);
                return FQT_ERR_ARG;
            }
            for (int64_t j = 0; j < k; j += 2)
                if (!strcmp(meta_kv[j], meta_kv[k])) {
                    fqt_set_error("%s: metadata key '%s' given twice", path, meta_kv[k]);
                    return FQT_ERR_ARG;
                }
        }
    }
    return FQT_OK;
}

/* The header JSON, padded with spaces to a multiple of 8 bytes. */
static void build_header(fqt_buf *h, const fqt_st_tensor *t, int64_t n, const size_t *nbytes,
                         const char *const *meta_kv) {
    fqt_buf_append(h, "{", 1);
    bool first = true;
    if (meta_kv && meta_kv[0]) {
        fqt_buf_printf(h, "\"__metadata__\":{");
        for (int64_t k = 0; meta_kv[k]; k += 2) {
            if (k) fqt_buf_append(h, ",", 1);
            fqt_buf_json_str(h, meta_kv[k]);
            fqt_buf_append(h, ":", 1);
            fqt_buf_json_str(h, meta_kv[k + 1]);
        }
        fqt_buf_append(h, "}", 1);
        first = false;
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!first) fqt_buf_append(h, ",", 1);
        first = false;
        fqt_buf_json_str(h, t[i].name);
        fqt_buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_names[t[i].dtype]);
        for (int d = 0; d < t[i].ndim; d++)
            fqt_buf_printf(h, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        fqt_buf_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                       (unsigned long long)(off + nbytes[i]));
        off += nbytes[i];
    }
    fqt_buf_append(h, "}", 1);
    while (h->len % 8) fqt_buf_append(h, " ", 1);
}

/* fsync the directory holding path, so the rename itself is durable. File systems that
 * cannot sync directories (EINVAL) are accepted. */
static fqt_status sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = fqt_xmalloc(2);
        strcpy(dir, ".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        dir = fqt_xmalloc(len + 1);
        memcpy(dir, path, len);
        dir[len] = 0;
    }
    fqt_status st = FQT_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        fqt_set_error("%s: written, but cannot open directory '%s' to sync it: %s", path, dir,
                      strerror(errno));
        st = FQT_ERR_IO;
        goto out_free;
    }
    if (fsync(fd) && errno != EINVAL) {
        fqt_set_error("%s: written, but syncing directory '%s' failed: %s", path, dir,
                      strerror(errno));
        st = FQT_ERR_IO;
    }
    close(fd);
out_free:
    free(dir);
    return st;
}

fqt_status fqt_st_write(const char *path, const fqt_st_tensor *t, int64_t n,
                        const char *const *meta_kv) {
    if (!path || n < 0 || (n > 0 && !t)) {
        fqt_set_error("fqt_st_write: bad arguments (path %s, n = %lld)", path ? path : "NULL",
                      (long long)n);
        return FQT_ERR_ARG;
    }
    fqt_status st = FQT_OK;
    fqt_buf hdr = {0};
    char *tmp = NULL;
    out_file o = {-1, NULL, 0};
    size_t *nbytes = fqt_xcalloc((size_t)(n ? n : 1), sizeof *nbytes);

    st = check_write_args(path, t, n, meta_kv, nbytes);
    if (st) goto out_free;
    build_header(&hdr, t, n, nbytes, meta_kv);

    size_t tlen = strlen(path) + 32;
    tmp = fqt_xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    o.tmp = tmp;
    fqt_fault_point();
    o.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o.fd < 0) {
        fqt_set_error("%s: cannot create temporary file '%s': %s", path, tmp, strerror(errno));
        st = FQT_ERR_IO;
        goto out_free;
    }

    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr.len >> (8 * i));
    if (write_all(&o, len8, 8) || write_all(&o, hdr.s, hdr.len)) goto fail_write;
    for (int64_t i = 0; i < n; i++)
        if (nbytes[i] && write_all(&o, t[i].data, nbytes[i])) goto fail_write;
    fqt_fault_point();
    if (fsync(o.fd)) {
        fqt_set_error("%s: fsync of '%s' failed: %s", path, tmp, strerror(errno));
        st = FQT_ERR_IO;
        goto out_unlink;
    }
    int fd = o.fd;
    o.fd = -1;
    if (close(fd)) {
        fqt_set_error("%s: closing '%s' failed: %s", path, tmp, strerror(errno));
        st = FQT_ERR_IO;
        goto out_unlink;
    }
    fqt_fault_point();
    if (rename(tmp, path)) {
        fqt_set_error("%s: cannot rename '%s' over it: %s", path, tmp, strerror(errno));
        st = FQT_ERR_IO;
        goto out_unlink;
    }
    st = sync_parent_dir(path);
    goto out_free;

fail_write:
    fqt_set_error("%s: writing '%s' failed after %lld bytes: %s", path, tmp,
                  (long long)o.written, strerror(errno));
    st = FQT_ERR_IO;
out_unlink:
    if (o.fd >= 0) close(o.fd);
    o.fd = -1;
    unlink(tmp);
out_free:
    free(tmp);
    fqt_buf_free(&hdr);
    free(nbytes);
    return st;
}

/* ---- reader ----------------------------------------------------------------------------- */

struct fqt_st_file {
    char *path;
    unsigned char *map;
    size_t map_size;
    fqt_json *hdr;
    const fqt_json *meta;    /* "__metadata__" object or NULL */
    int64_t n;
    fqt_st_info *info;       /* header order */
    fqt_st_info **by_name;   /* sorted by name */
};

typedef struct {
    int64_t begin, end, idx;
} span;

static int cmp_info_name(const void *a, const void *b) {
    return strcmp((*(fqt_st_info *const *)a)->name, (*(fqt_st_info *const *)b)->name);
}

static int cmp_key_info(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(fqt_st_info *const *)elem)->name);
}

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Validate one tensor entry and fill *inf (data left NULL) and *sp. */
static fqt_status parse_entry(const char *path, const char *name, const fqt_json *e,
                              int64_t data_size, fqt_st_info *inf, span *sp) {
    if (e->type != FQT_JSON_OBJ) {
        fqt_set_error("%s: tensor '%s': entry is not a JSON object", path, name);
        return FQT_ERR_FORMAT;
    }
    const fqt_json *dt = fqt_json_get(e, "dtype");
    const fqt_json *sh = fqt_json_get(e, "shape");
    const fqt_json *of = fqt_json_get(e, "data_offsets");
    if (!dt || dt->type != FQT_JSON_STR) {
        fqt_set_error("%s: tensor '%s': missing or non-string \"dtype\"", path, name);
        return FQT_ERR_FORMAT;
    }
    if (!dtype_parse(dt->str, &inf->dtype)) {
        fqt_set_error("%s: tensor '%s': unknown dtype \"%s\" (known: F32, BF16, F16, I32, I64, "
                      "U8, U16)", path, name, dt->str);
        return FQT_ERR_FORMAT;
    }
    if (!sh || sh->type != FQT_JSON_ARR) {
        fqt_set_error("%s: tensor '%s': missing or non-array \"shape\"", path, name);
        return FQT_ERR_FORMAT;
    }
    if (sh->n > FQT_ST_MAX_NDIM) {
        fqt_set_error("%s: tensor '%s': shape has %lld dimensions, at most %d are supported",
                      path, name, (long long)sh->n, FQT_ST_MAX_NDIM);
        return FQT_ERR_FORMAT;
    }
    inf->ndim = (int)sh->n;
    int64_t esize = (int64_t)dtype_sizes[inf->dtype];
    int64_t numel = 1;
    bool overflow = false;
    for (int d = 0; d < inf->ndim; d++) {
        int64_t s;
        if (!fqt_json_int64(&sh->items[d], &s) || s < 0) {
            fqt_set_error("%s: tensor '%s': shape[%d] is not a non-negative integer", path, name,
                          d);
            return FQT_ERR_FORMAT;
        }
        inf->shape[d] = s;
        if (s && numel > INT64_MAX / esize / s) overflow = true;
        else numel *= s;
    }
    char sbuf[256];
    shape_str(sbuf, sizeof sbuf, inf->ndim, inf->shape);
    if (overflow) {
        fqt_set_error("%s: tensor '%s': shape %s of %s overflows 64-bit byte counts", path, name,
                      sbuf, dtype_names[inf->dtype]);
        return FQT_ERR_FORMAT;
    }
    int64_t b, en;
    if (!of || of->type != FQT_JSON_ARR || of->n != 2 || !fqt_json_int64(&of->items[0], &b) ||
        !fqt_json_int64(&of->items[1], &en) || b < 0 || en < 0) {
        fqt_set_error("%s: tensor '%s': \"data_offsets\" must be [begin, end] of two "
                      "non-negative integers", path, name);
        return FQT_ERR_FORMAT;
    }
    if (b > en) {
        fqt_set_error("%s: tensor '%s': data_offsets [%lld, %lld] have begin > end", path, name,
                      (long long)b, (long long)en);
        return FQT_ERR_FORMAT;
    }
    if (en > data_size) {
        fqt_set_error("%s: tensor '%s': data_offsets [%lld, %lld] end past the %lld-byte data "
                      "section (truncated file?)", path, name, (long long)b, (long long)en,
                      (long long)data_size);
        return FQT_ERR_FORMAT;
    }
    if (en - b != numel * esize) {
        fqt_set_error("%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes but shape %s "
                      "of %s needs %lld", path, name, (long long)b, (long long)en,
                      (long long)(en - b), sbuf, dtype_names[inf->dtype],
                      (long long)(numel * esize));
        return FQT_ERR_FORMAT;
    }
    inf->name = name;
    inf->numel = numel;
    inf->nbytes = (size_t)(en - b);
    sp->begin = b;
    sp->end = en;
    return FQT_OK;
}

static fqt_status check_meta(const char *path, const fqt_json *m) {
    if (m->type != FQT_JSON_OBJ) {
        fqt_set_error("%s: \"__metadata__\" is not a JSON object", path);
        return FQT_ERR_FORMAT;
    }
    for (int64_t i = 0; i < m->n; i++) {
        if (m->items[i].type != FQT_JSON_STR) {
            fqt_set_error("%s: \"__metadata__\" value of '%s' is not a string", path, m->keys[i]);
            return FQT_ERR_FORMAT;
        }
        for (int64_t j = 0; j < i; j++)
            if (!strcmp(m->keys[i], m->keys[j])) {
                fqt_set_error("%s: \"__metadata__\" key '%s' appears twice", path, m->keys[i]);
                return FQT_ERR_FORMAT;
            }
    }
    return FQT_OK;
}

/* Validate the parsed header against the data section and build the tables. */
static fqt_status index_header(fqt_st_file *f, int64_t data_size,
                               const unsigned char *data) {
    const fqt_json *h = f->hdr;
    const char *path = f->path;
    fqt_status st = FQT_OK;
    int64_t nmeta = 0;
    for (int64_t i = 0; i < h->n; i++)
        if (!strcmp(h->keys[i], "__metadata__")) {
            if (++nmeta > 1) {
                fqt_set_error("%s: \"__metadata__\" appears twice in the header", path);
                return FQT_ERR_FORMAT;
            }
            st = check_meta(path, &h->items[i]);
            if (st) return st;
            f->meta = &h->items[i];
        }
    f->n = h->n - nmeta;
    size_t cnt = (size_t)(f->n ? f->n : 1);
    f->info = fqt_xcalloc(cnt, sizeof *f->info);
    f->by_name = fqt_xcalloc(cnt, sizeof *f->by_name);
    span *sp = fqt_xcalloc(cnt, sizeof *sp);

    int64_t k = 0;
    for (int64_t i = 0; i < h->n; i++) {
        if (!strcmp(h->keys[i], "__metadata__")) continue;
        st = parse_entry(path, h->keys[i], &h->items[i], data_size, &f->info[k], &sp[k]);
        if (st) goto out;
        sp[k].idx = k;
        f->by_name[k] = &f->info[k];
        k++;
    }

    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_info_name);
    for (int64_t i = 1; i < f->n; i++)
        if (!strcmp(f->by_name[i - 1]->name, f->by_name[i]->name)) {
            fqt_set_error("%s: tensor '%s' appears twice in the header", path,
                          f->by_name[i]->name);
            st = FQT_ERR_FORMAT;
            goto out;
        }

    /* Overlap: sorted by begin, every non-empty tensor must start at or after the furthest
     * end seen so far. Empty tensors occupy no bytes. */
    qsort(sp, (size_t)f->n, sizeof *sp, cmp_span);
    int64_t max_end = 0, owner = -1;
    for (int64_t i = 0; i < f->n; i++) {
        if (sp[i].begin == sp[i].end) continue;
        if (owner >= 0 && sp[i].begin < max_end) {
            fqt_set_error("%s: tensors '%s' and '%s' overlap (data_offsets [%lld, %lld] and "
                          "[%lld, %lld])", path, f->info[sp[owner].idx].name,
                          f->info[sp[i].idx].name, (long long)sp[owner].begin,
                          (long long)sp[owner].end, (long long)sp[i].begin,
                          (long long)sp[i].end);
            st = FQT_ERR_FORMAT;
            goto out;
        }
        if (sp[i].end > max_end) { max_end = sp[i].end; owner = i; }
    }
    for (int64_t i = 0; i < f->n; i++) f->info[sp[i].idx].data = data + sp[i].begin;
out:
    free(sp);
    return st;
}

fqt_status fqt_st_open(const char *path, fqt_st_file **out) {
    *out = NULL;
    fqt_status st = FQT_OK;
    fqt_st_file *f = fqt_xcalloc(1, sizeof *f);
    f->path = fqt_xmalloc(strlen(path) + 1);
    strcpy(f->path, path);

    /* O_NONBLOCK: opening a FIFO must not wait for a writer before the check below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        fqt_set_error("%s: cannot open: %s", path, strerror(errno));
        st = FQT_ERR_IO;
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb)) {
        fqt_set_error("%s: cannot stat: %s", path, strerror(errno));
        st = FQT_ERR_IO;
        goto fail_close;
    }
    if (!S_ISREG(sb.st_mode)) {
        fqt_set_error("%s: not a regular file", path);
        st = FQT_ERR_IO;
        goto fail_close;
    }
    if (sb.st_size < 8) {
        fqt_set_error("%s: file is %lld bytes, too short for the 8-byte header length "
                      "(truncated or not a safetensors file)", path, (long long)sb.st_size);
        st = FQT_ERR_FORMAT;
        goto fail_close;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        fqt_set_error("%s: file of %lld bytes does not fit in memory", path,
                      (long long)sb.st_size);
        st = FQT_ERR_IO;
        goto fail_close;
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        fqt_set_error("%s: cannot mmap %lld bytes: %s", path, (long long)sb.st_size,
                      strerror(errno));
        st = FQT_ERR_IO;
        goto fail_close;
    }
    close(fd);
    fd = -1;
    f->map = m;
    f->map_size = (size_t)sb.st_size;

    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)f->map[i] << (8 * i);
    uint64_t avail = (uint64_t)f->map_size - 8;
    if (hlen > avail) {
        fqt_set_error("%s: header length %llu exceeds the %llu bytes after the length field "
                      "(truncated or not a safetensors file)", path, (unsigned long long)hlen,
                      (unsigned long long)avail);
        st = FQT_ERR_FORMAT;
        goto fail;
    }
    if (hlen > FQT_ST_MAX_HEADER) {
        fqt_set_error("%s: header length %llu exceeds the limit of %d bytes", path,
                      (unsigned long long)hlen, FQT_ST_MAX_HEADER);
        st = FQT_ERR_FORMAT;
        goto fail;
    }
    st = fqt_json_parse_limited((const char *)f->map + 8, (size_t)hlen, FQT_ST_MAX_HEADER_VALUES, &f->hdr);
    if (st) {
        char why[512];
        snprintf(why, sizeof why, "%s", fqt_last_error());
        fqt_set_error("%s: header (%llu bytes) is not valid JSON: %s", path,
                      (unsigned long long)hlen, why);
        goto fail;
    }
    if (f->hdr->type != FQT_JSON_OBJ) {
        fqt_set_error("%s: header is not a JSON object", path);
        st = FQT_ERR_FORMAT;
        goto fail;
    }
    st = index_header(f, (int64_t)(avail - hlen), f->map + 8 + hlen);
    if (st) goto fail;
    *out = f;
    return FQT_OK;

fail_close:
    close(fd);
fail:
    fqt_st_close(f);
    return st;
}

void fqt_st_close(fqt_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_size);
    fqt_json_free(f->hdr);
    free(f->info);
    free(f->by_name);
    free(f->path);
    free(f);
}

const char *fqt_st_path(const fqt_st_file *f) { return f->path; }
int64_t fqt_st_count(const fqt_st_file *f) { return f->n; }

const fqt_st_info *fqt_st_at(const fqt_st_file *f, int64_t i) {
    return i >= 0 && i < f->n ? &f->info[i] : NULL;
}

const fqt_st_info *fqt_st_find(const fqt_st_file *f, const char *name) {
    if (!f->n) return NULL;
    fqt_st_info *const *p = bsearch(name, f->by_name, (size_t)f->n, sizeof *f->by_name,
                                    cmp_key_info);
    return p ? *p : NULL;
}

const char *fqt_st_meta(const fqt_st_file *f, const char *key) {
    const fqt_json *v = fqt_json_get(f->meta, key);
    return v ? v->str : NULL; /* values were checked to be strings at open */
}

/* Find name and check its shape; the shared part of the typed readers. */
static fqt_status lookup(const fqt_st_file *f, const char *name, int ndim,
                         const int64_t *shape, const fqt_st_info **out) {
    const fqt_st_info *inf = fqt_st_find(f, name);
    if (!inf) {
        fqt_set_error("%s: missing tensor '%s'", f->path, name);
        return FQT_ERR_MISMATCH;
    }
    bool same = ndim == inf->ndim;
    for (int d = 0; same && d < ndim; d++) same = shape[d] == inf->shape[d];
    if (!same) {
        char have[256], want[256];
        fqt_set_error("%s: tensor '%s' has shape %s, expected %s", f->path, name,
                      shape_str(have, sizeof have, inf->ndim, inf->shape),
                      ndim >= 0 && ndim <= 64 ? shape_str(want, sizeof want, ndim, shape)
                                              : "(invalid ndim)");
        return FQT_ERR_MISMATCH;
    }
    *out = inf;
    return FQT_OK;
}

fqt_status fqt_st_read_f32(const fqt_st_file *f, const char *name, int ndim,
                           const int64_t *shape, float *dst) {
    const fqt_st_info *inf;
    fqt_status st = lookup(f, name, ndim, shape, &inf);
    if (st) return st;
    const unsigned char *src = inf->data;
    switch (inf->dtype) {
    case FQT_ST_F32:
        if (inf->nbytes) memcpy(dst, src, inf->nbytes);
        return FQT_OK;
    case FQT_ST_BF16:
    case FQT_ST_F16:
        for (int64_t i = 0; i < inf->numel; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = inf->dtype == FQT_ST_BF16 ? fqt_bf16_decode(h) : fqt_fp16_decode(h);
        }
        return FQT_OK;
    default:
        fqt_set_error("%s: tensor '%s' has dtype %s, expected F32, BF16 or F16", f->path, name,
                      dtype_names[inf->dtype]);
        return FQT_ERR_MISMATCH;
    }
}

fqt_status fqt_st_read_raw(const fqt_st_file *f, const char *name, fqt_st_dtype dtype,
                           int ndim, const int64_t *shape, void *dst, size_t nbytes) {
    const fqt_st_info *inf;
    fqt_status st = lookup(f, name, ndim, shape, &inf);
    if (st) return st;
    if (inf->dtype != dtype) {
        fqt_set_error("%s: tensor '%s' has dtype %s, expected %s", f->path, name,
                      dtype_names[inf->dtype], fqt_st_dtype_name(dtype));
        return FQT_ERR_MISMATCH;
    }
    if (nbytes != inf->nbytes) {
        fqt_set_error("%s: tensor '%s' holds %zu bytes, but the destination has %zu", f->path,
                      name, inf->nbytes, nbytes);
        return FQT_ERR_ARG;
    }
    if (nbytes) memcpy(dst, inf->data, nbytes);
    return FQT_OK;
}
