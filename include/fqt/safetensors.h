/* fqt/safetensors.h — the safetensors file layer under checkpoints: an atomic streaming
 * writer and a validating, memory-mapped reader.
 *
 * Format (the Hugging Face layout, so files open in other tools): an 8-byte little-endian
 * header length N, then N bytes of JSON
 *     {"__metadata__":{"k":"v",...}, "name":{"dtype":"F32","shape":[...],
 *      "data_offsets":[begin,end]}, ...}
 * padded with spaces to a multiple of 8, then the data section. Offsets are relative to the
 * start of the data section; data is little-endian, row-major. The writer lays tensors out
 * contiguously in the order given (no gaps), so tensor data is NOT necessarily aligned to its
 * element size: copy it out with fqt_st_read_f32 / fqt_st_read_raw rather than casting
 * fqt_st_info.data.
 *
 * For: named tensors plus string metadata. Not for: what the tensors mean (core/checkpoint),
 * sharded multi-file models, big-endian hosts (refused at compile time). */
#ifndef FQT_SAFETENSORS_H
#define FQT_SAFETENSORS_H

#include "fqt/common.h"

/* Element types. Append only; names are the safetensors dtype strings. */
typedef enum {
    FQT_ST_F32 = 0,
    FQT_ST_BF16,
    FQT_ST_F16,
    FQT_ST_I32,
    FQT_ST_I64,
    FQT_ST_U8,
    FQT_ST_U16,
    FQT_ST_DTYPE_COUNT
} fqt_st_dtype;

#define FQT_ST_MAX_NDIM 8            /* the reader accepts up to this many dimensions */
#define FQT_ST_WRITE_MAX_NDIM 4      /* fqt_st_tensor carries up to this many */
#define FQT_ST_MAX_HEADER 100000000  /* header length limit in bytes (as the HF reader) */
/* JSON values in a header (about 10 per tensor): bounds the parse to ~130 MB of memory
 * whatever the header holds; 2^21 values is ~200k tensors. */
#define FQT_ST_MAX_HEADER_VALUES (1 << 21)

/* "F32", "BF16", ...; "?" for an out-of-range value. */
const char *fqt_st_dtype_name(fqt_st_dtype t);
/* Bytes per element; 0 for an out-of-range value. */
size_t fqt_st_dtype_size(fqt_st_dtype t);

/* One tensor to write. ndim 0..4 (0 is a scalar of one element); shape[i] >= 0. data
 * points at numel * dtype-size bytes in the file's byte order (little-endian); it may be
 * NULL only when the tensor has no elements. */
typedef struct {
    const char *name;
    fqt_st_dtype dtype;
    int ndim;
    int64_t shape[FQT_ST_WRITE_MAX_NDIM];
    const void *data;
} fqt_st_tensor;

/* Write n tensors (in that order) and the metadata to path, atomically: the bytes are
 * streamed to "path.tmp.<pid>" in the same directory, which is fsynced, renamed over path,
 * and the directory fsynced. On any failure the temporary file is removed and a file
 * already at path is left untouched.
 * meta_kv: NULL, or a NULL-terminated list "key1", "value1", "key2", "value2", ..., NULL of
 * UTF-8 strings; an odd count, an empty key or a duplicate key is FQT_ERR_ARG. Without
 * metadata (NULL or empty list) no "__metadata__" entry is written.
 * Errors: FQT_ERR_ARG for bad tensors (empty, duplicate or "__metadata__" name, bad dtype,
 * ndim or shape, NULL data with elements, size overflow), FQT_ERR_IO for the file system.
 * The message names path and, where it applies, the tensor. */
fqt_status fqt_st_write(const char *path, const fqt_st_tensor *t, int64_t n,
                        const char *const *meta_kv);

/* A tensor of an open file. name and data live as long as the file is open. */
typedef struct {
    const char *name;
    fqt_st_dtype dtype;
    int ndim;                        /* 0..FQT_ST_MAX_NDIM */
    int64_t shape[FQT_ST_MAX_NDIM];  /* entries past ndim are 0 */
    int64_t numel;                   /* product of shape (1 for a scalar) */
    size_t nbytes;                   /* numel * dtype size */
    const void *data;                /* into the mapping; not aligned in general */
} fqt_st_info;

typedef struct fqt_st_file fqt_st_file;

/* Map path read-only and validate it completely before returning: the header length (at
 * least 8 bytes in the file, length <= file size - 8 and <= FQT_ST_MAX_HEADER), the header
 * is a JSON object, "__metadata__" (optional) is an object of strings, and every other
 * entry has a known dtype, a shape of at most 8 non-negative integers, and data_offsets
 * [begin, end] with begin <= end <= data section size and end - begin == numel * size;
 * no two tensors share a name or overlapping bytes. Gaps between tensors are accepted.
 * On success *f owns the mapping (release with fqt_st_close). On failure *f is NULL and
 * the status is FQT_ERR_IO (cannot open/map) or FQT_ERR_FORMAT; the message starts with
 * path and names the tensor and the exact problem.
 * The mapping reflects the file as opened: replacing path with fqt_st_write is safe while
 * it is open (the old inode stays mapped), truncating it in place is not. */
fqt_status fqt_st_open(const char *path, fqt_st_file **f);
void fqt_st_close(fqt_st_file *f);   /* NULL is a no-op */

/* The path the file was opened with. */
const char *fqt_st_path(const fqt_st_file *f);
/* Number of tensors (the metadata entry does not count). */
int64_t fqt_st_count(const fqt_st_file *f);
/* Tensor i in header order, 0 <= i < count; NULL when i is out of range. */
const fqt_st_info *fqt_st_at(const fqt_st_file *f, int64_t i);
/* Tensor by exact name; NULL if absent. O(log n). */
const fqt_st_info *fqt_st_find(const fqt_st_file *f, const char *name);
/* Metadata value for key; NULL if absent or the file has no metadata. */
const char *fqt_st_meta(const fqt_st_file *f, const char *key);

/* Copy tensor `name` into dst as float after checking that it exists, that its shape is
 * exactly shape[0..ndim) and that its dtype is F32 (copied), BF16 or F16 (converted
 * exactly). dst holds numel floats. Errors (FQT_ERR_MISMATCH, dst untouched):
 * "<path>: missing tensor 'X'", "<path>: tensor 'X' has shape [a, b], expected [c, d]",
 * "<path>: tensor 'X' has dtype I32, expected F32, BF16 or F16". */
fqt_status fqt_st_read_f32(const fqt_st_file *f, const char *name, int ndim,
                           const int64_t *shape, float *dst);
/* Copy tensor `name` verbatim after checking existence, shape, that its dtype is exactly
 * dtype and that nbytes equals its size. Errors as fqt_st_read_f32 (FQT_ERR_MISMATCH);
 * a wrong nbytes is FQT_ERR_ARG. */
fqt_status fqt_st_read_raw(const fqt_st_file *f, const char *name, fqt_st_dtype dtype,
                           int ndim, const int64_t *shape, void *dst, size_t nbytes);

/* Encode n floats as dtype F32 (copy), BF16 or F16 (both round to nearest, ties to even;
 * NaN stays NaN; F16 overflows to Inf) into dst, for building fqt_st_tensor data.
 * Other dtypes: FQT_ERR_ARG. */
fqt_status fqt_st_encode_f32(fqt_st_dtype dtype, const float *src, int64_t n, void *dst);

#endif
