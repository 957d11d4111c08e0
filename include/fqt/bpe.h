/* fqt/bpe.h — byte-level BPE tokenizers: one trained here (fqt_bpe_train) and GPT-2's
 * r50k_base vocabulary (a .tiktoken file), behind one encode/decode API.
 *
 * Invariants shared by both kinds:
 *  - Text is bytes. Encoding never fails on content: every byte has a token, so
 *    decode(encode(x)) == x for ANY byte string, valid UTF-8 or not, NULs included.
 *  - Pre-split (fqt_bpe_split) follows GPT-2's pattern
 *      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *    over UTF-8 code points; merges never cross a piece boundary. Deviations from the
 *    Unicode classes are listed in text/bpe.c (classification comes from glibc's C.UTF-8
 *    locale; invalid UTF-8 bytes count as "other", one byte each).
 *  - Within a piece, merges apply in rank order: repeatedly the adjacent pair with the
 *    lowest rank, leftmost first on ties (tiktoken's rule). A merged token's id is its rank.
 *  - Trained vocabularies: ids 0..255 are the bytes, merge i makes id 256+i, special tokens
 *    (<|endoftext|>) follow the merges. GPT-2: ids are the tiktoken ranks (0..50255, the
 *    single bytes among 0..255 in GPT-2's order) and <|endoftext|> is 50256.
 *
 * Not for: writing shards (fqt/shard.h) or the corpus pipeline (fqt/corpus.h). Objects are
 * immutable after creation and may be shared by threads for encode/decode. */
#ifndef FQT_BPE_H
#define FQT_BPE_H

#include "fqt/common.h"

typedef struct fqt_bpe fqt_bpe;

#define FQT_BPE_EOT_TEXT "<|endoftext|>"
#define FQT_BPE_FILE_MAGIC "fqt-bpe"
#define FQT_BPE_FILE_VERSION 1
#define FQT_GPT2_VOCAB_SIZE 50257

/* Split text into pre-tokenization pieces (no special-token handling). *ends gets the
 * malloc'ed end offsets: piece k is [ends[k-1], ends[k]) with ends[-1] = 0, and the last
 * end is n. n == 0 gives zero pieces (and a valid 1-element buffer). Fails only when the
 * text holds non-ASCII UTF-8 and glibc's C.UTF-8 locale is unavailable (FQT_ERR_UNSUPPORTED). */
fqt_status fqt_bpe_split(const void *text, size_t n, int64_t **ends, int64_t *npieces);

/* Train on text: count the unique pieces, then repeatedly merge the most frequent adjacent
 * pair (ties: the smallest (left id, right id)), updating counts only in pieces that hold
 * the merged pair. Occurrences of "<|endoftext|>" in text act as document separators and
 * are not trained on. vocab_size counts bytes + merges + the special token, so at least
 * 257; training stops early (smaller vocabulary) once no pair occurs twice. Deterministic:
 * the same text and size give the same merges. */
fqt_status fqt_bpe_train(const void *text, size_t n, int32_t vocab_size, fqt_bpe **out);

/* Build a trained-kind tokenizer from an explicit merge list (merge i joins merges[2i] and
 * merges[2i+1] into id 256+i; each must be an id below 256+i); <|endoftext|> follows. */
fqt_status fqt_bpe_from_merges(const int32_t *merges, int32_t n_merges, fqt_bpe **out);

/* Save a trained tokenizer in the fqt-bpe text format (atomic write; format described in
 * text/bpe.c). A GPT-2 tokenizer cannot be saved (FQT_ERR_UNSUPPORTED): ship the .tiktoken. */
fqt_status fqt_bpe_save(const fqt_bpe *bpe, const char *path);

/* Load a vocabulary, recognized by content: an fqt-bpe file, or a .tiktoken file (only
 * r50k_base, i.e. GPT-2, is accepted: exactly 50256 ranks in order with the 256 single bytes
 * first). Truncated, corrupt or foreign files are FQT_ERR_FORMAT / FQT_ERR_MISMATCH with a
 * message naming the file and the problem. */
fqt_status fqt_bpe_load(const char *path, fqt_bpe **out);

/* Encode n bytes. With allow_special, each occurrence of a special token's text (e.g.
 * "<|endoftext|>") becomes that token's id; without it the same text is encoded as plain
 * bytes. *ids is malloc'ed (valid even when *nids == 0). */
fqt_status fqt_bpe_encode(const fqt_bpe *bpe, const void *text, size_t n, int allow_special,
                          int32_t **ids, int64_t *nids);
/* The oracle for fqt_bpe_encode: the plain quadratic merge loop on every piece (the fast
 * path switches to a heap for long pieces). Same results, for tests. */
fqt_status fqt_bpe_encode_ref(const fqt_bpe *bpe, const void *text, size_t n,
                              int allow_special, int32_t **ids, int64_t *nids);

/* Concatenate the tokens' bytes (special tokens give their text). An id outside
 * [0, vocab_size) is FQT_ERR_ARG naming the id and its index. *bytes is malloc'ed with a
 * trailing NUL not counted in *nbytes. */
fqt_status fqt_bpe_decode(const fqt_bpe *bpe, const int32_t *ids, int64_t n,
                          unsigned char **bytes, size_t *nbytes);

/* The bytes of one token (not NUL-terminated), or NULL for an id out of range. */
const unsigned char *fqt_bpe_token_bytes(const fqt_bpe *bpe, int32_t id, size_t *len);
int32_t fqt_bpe_vocab_size(const fqt_bpe *bpe);
int32_t fqt_bpe_n_merges(const fqt_bpe *bpe); /* trained kind: merges; GPT-2: 50256-256 */
/* Merge i of a trained tokenizer (i in [0, n_merges)): its left and right ids. Returns -1
 * for GPT-2 tokenizers or i out of range, else 0. */
int fqt_bpe_merge(const fqt_bpe *bpe, int32_t i, int32_t *left, int32_t *right);
int32_t fqt_bpe_eot(const fqt_bpe *bpe);
int fqt_bpe_is_gpt2(const fqt_bpe *bpe);
void fqt_bpe_free(fqt_bpe *bpe);

#endif
