/* fqt/shard.h — llm.c token shards: a header of 256 little-endian int32 (magic 20240520,
 * version 1, token count, the rest zero) followed by the tokens as uint16.
 *
 * Not for: tokenization (fqt/bpe.h) or batching (core/data.c). */
#ifndef FQT_SHARD_H
#define FQT_SHARD_H

#include "fqt/common.h"

#define FQT_SHARD_MAGIC 20240520
#define FQT_SHARD_VERSION 1
#define FQT_SHARD_HEADER_INTS 256

/* Write n tokens atomically (temporary file, fsync, rename). */
fqt_status fqt_shard_write(const char *path, const uint16_t *tok, int64_t n);
/* Read and validate one shard (magic, version, count vs. file size). *tok is malloc'ed. */
fqt_status fqt_shard_read(const char *path, uint16_t **tok, int64_t *n);
/* Read every file matching the glob pattern (sorted by name) and concatenate them. Brace
 * lists are expanded too ("{d/a_000.bin,d/a_001.bin}": fqt train writes shell-expanded
 * file lists that way).
 * No match is an error naming the pattern. */
fqt_status fqt_shards_load(const char *pattern, uint16_t **tok, int64_t *n);

#endif
