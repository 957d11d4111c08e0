#define _GNU_SOURCE /* memmem */
/* text/prepare.c — `fqt prepare --input`: any UTF-8 corpus (text files or JSONL) into a
 * tokenizer, train/val shards split by document, and the manifest.json that `fqt train`
 * reads to find the tokenizer (layout and rules in fqt/corpus.h). Also the manifest reader
 * and writer shared with the default corpus and `fqt tokenize`.
 *
 * Not for: the BPE itself (text/bpe.c), the default corpus download (text/corpus.c). */
#include "fqt/corpus.h"
#include "fqt/fileio.h"
#include "fqt/json.h"
#include "fqt/sha512.h"
#include "fqt/shard.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- manifest ------------------------------------------------------------------------- */

fqt_status fqt_file_sha512_hex(const char *path, char hex[2 * 64 + 1]) {
    void *d;
    size_t n;
    fqt_status st = fqt_read_file(path, &d, &n);
    if (st) return st;
    unsigned char dig[FQT_SHA512_BYTES];
    fqt_sha512(d, n, dig);
    free(d);
    fqt_hex(dig, sizeof dig, hex);
    return FQT_OK;
}

fqt_status fqt_data_manifest_write(const char *dir, const char *tokenizer_file, const fqt_bpe *bpe,
                                   const char *extra) {
    char path[PATH_MAX + 64], hex[2 * 64 + 1];
    snprintf(path, sizeof path, "%s/%s", dir, tokenizer_file);
    fqt_status st = fqt_file_sha512_hex(path, hex);
    if (st) return st;
    fqt_buf b = {0};
    fqt_buf_printf(&b, "{\n  \"format\": \"fqt-data\",\n  \"version\": 1,\n  \"tokenizer\": {\"file\": ");
    fqt_buf_json_str(&b, tokenizer_file);
    fqt_buf_printf(&b, ", \"kind\": \"%s\", \"vocab_size\": %d, \"eot_id\": %d, \"sha512\": \"%s\"}",
                   fqt_bpe_is_gpt2(bpe) ? "tiktoken-r50k_base" : "fqt-bpe", fqt_bpe_vocab_size(bpe),
                   fqt_bpe_eot(bpe), hex);
    if (extra) fqt_buf_append(&b, extra, strlen(extra));
    fqt_buf_printf(&b, "\n}\n");
    snprintf(path, sizeof path, "%s/" FQT_DATA_MANIFEST, dir);
    st = fqt_write_file_atomic(path, b.s, b.len);
    fqt_buf_free(&b);
    return st;
}

fqt_status fqt_data_manifest_find(const char *pattern, fqt_data_manifest *m, int *found) {
    memset(m, 0, sizeof *m);
    *found = 0;
    glob_t g;
    if (glob(pattern, GLOB_BRACE, NULL, &g) != 0 || g.gl_pathc == 0) {
        globfree(&g);
        return FQT_OK; /* the shard loader reports the missing data */
    }
    const char *first = g.gl_pathv[0], *slash = strrchr(first, '/');
    if (slash) snprintf(m->dir, sizeof m->dir, "%.*s", (int)(slash == first ? 1 : slash - first), first);
    else snprintf(m->dir, sizeof m->dir, ".");
    globfree(&g);
    char path[sizeof m->dir + 32];
    snprintf(path, sizeof path, "%s/" FQT_DATA_MANIFEST, m->dir);
    if (!fqt_file_exists(path, NULL)) return FQT_OK;
    void *d;
    size_t n;
    fqt_status st = fqt_read_file(path, &d, &n);
    if (st) return st;
    fqt_json *j = NULL;
    st = fqt_json_parse(d, n, &j);
    free(d);
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fqt_last_error());
        fqt_set_error("%s: %s", path, msg);
        return FQT_ERR_FORMAT;
    }
    const fqt_json *t = fqt_json_get(j, "tokenizer");
    const char *file = fqt_json_get_str(t, "file", NULL), *sha = fqt_json_get_str(t, "sha512", NULL);
    int64_t vs = 0;
    if (strcmp(fqt_json_get_str(j, "format", ""), "fqt-data") || !file || !*file || strchr(file, '/') ||
        !sha || strlen(sha) != 128 || !fqt_json_int64(fqt_json_get(t, "vocab_size"), &vs)) {
        fqt_set_error("%s: not an fqt-data manifest (needs \"format\": \"fqt-data\" and a \"tokenizer\" "
                      "object with \"file\", \"vocab_size\" and \"sha512\")", path);
        fqt_json_free(j);
        return FQT_ERR_FORMAT;
    }
    snprintf(m->tokenizer, sizeof m->tokenizer, "%s/%s", m->dir, file);
    snprintf(m->sha512, sizeof m->sha512, "%s", sha);
    m->vocab_size = vs;
    fqt_json_free(j);
    if (!fqt_file_exists(m->tokenizer, NULL)) {
        fqt_set_error("%s names the tokenizer %s, which is missing", path, m->tokenizer);
        return FQT_ERR_IO;
    }
    *found = 1;
    return FQT_OK;
}

fqt_status fqt_data_manifest_adopt(const char *dir, const char *vocab_path, const fqt_bpe *bpe,
                                   int check_only) {
    char hex[2 * 64 + 1], path[PATH_MAX + 64];
    fqt_status st = fqt_file_sha512_hex(vocab_path, hex);
    if (st) return st;
    const char *name = fqt_bpe_is_gpt2(bpe) ? "r50k_base.tiktoken" : "tokenizer.bpe";
    snprintf(path, sizeof path, "%s/" FQT_DATA_MANIFEST, dir);
    if (fqt_file_exists(path, NULL)) {
        fqt_data_manifest m;
        int found;
        char pat[PATH_MAX + 64];
        snprintf(pat, sizeof pat, "%s/" FQT_DATA_MANIFEST, dir);
        if ((st = fqt_data_manifest_find(pat, &m, &found))) return st;
        if (found && strcmp(m.sha512, hex)) {
            fqt_set_error("%s holds shards made with another tokenizer (%s, see %s); tokenize into "
                          "another directory", dir, m.tokenizer, path);
            return FQT_ERR_MISMATCH;
        }
        return FQT_OK;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char have[2 * 64 + 1];
    if (fqt_file_exists(path, NULL) && !fqt_file_sha512_hex(path, have) && strcmp(have, hex)) {
        fqt_set_error("%s exists and is another tokenizer than %s; tokenize into another directory",
                      path, vocab_path);
        return FQT_ERR_MISMATCH;
    }
    if (check_only) return FQT_OK;
    void *d;
    size_t n;
    if ((st = fqt_read_file(vocab_path, &d, &n))) return st;
    st = fqt_write_file_atomic(path, d, n);
    free(d);
    if (st) return st;
    return fqt_data_manifest_write(dir, name, bpe, NULL);
}

/* ---- inputs --------------------------------------------------------------------------- */

typedef struct {
    char **v;
    int64_t n, cap;
} strv;

static void strv_push(strv *s, const char *x) {
    s->v = fqt_xgrow(s->v, &s->cap, s->n, sizeof *s->v);
    s->v[s->n++] = fqt_xstrdup(x);
}

static void strv_free(strv *s) {
    for (int64_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static fqt_status expand_input(const char *in, strv *files) {
    struct stat sb;
    if (strpbrk(in, "*?[")) {
        glob_t g;
        int rc = glob(in, 0, NULL, &g);
        if (rc || !g.gl_pathc) {
            globfree(&g);
            fqt_set_error("--input %s: no file matches", in);
            return FQT_ERR_IO;
        }
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (!stat(g.gl_pathv[i], &sb) && S_ISREG(sb.st_mode)) strv_push(files, g.gl_pathv[i]);
        globfree(&g);
        return FQT_OK;
    }
    if (stat(in, &sb)) {
        fqt_set_error("--input %s: %s", in, strerror(errno));
        return FQT_ERR_IO;
    }
    if (S_ISREG(sb.st_mode)) {
        strv_push(files, in);
        return FQT_OK;
    }
    if (!S_ISDIR(sb.st_mode)) {
        fqt_set_error("--input %s: neither a file nor a directory", in);
        return FQT_ERR_ARG;
    }
    DIR *dh = opendir(in);
    if (!dh) {
        fqt_set_error("--input %s: cannot open: %s", in, strerror(errno));
        return FQT_ERR_IO;
    }
    struct dirent *e;
    int64_t before = files->n;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.') continue;
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof p, "%s/%s", in, e->d_name) >= sizeof p) continue;
        if (!stat(p, &sb) && S_ISREG(sb.st_mode)) strv_push(files, p);
    }
    closedir(dh);
    if (files->n == before) {
        fqt_set_error("--input %s: the directory holds no files (subdirectories are not read)", in);
        return FQT_ERR_IO;
    }
    return FQT_OK;
}

/* Offset of the first invalid UTF-8 sequence in s[0..n), or -1 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
static int64_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return (int64_t)i;
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) return (int64_t)i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return (int64_t)i;
        i += len;
    }
    return -1;
}

typedef struct {
    unsigned char *text;
    size_t len;
} doc;

typedef struct {
    doc *v;
    int64_t n, cap, empty;
} docv;

static void docv_push(docv *d, const void *text, size_t len) {
    if (!len) {
        d->empty++;
        return;
    }
    d->v = fqt_xgrow(d->v, &d->cap, d->n, sizeof *d->v);
    d->v[d->n].text = fqt_xmalloc(len + 1);
    memcpy(d->v[d->n].text, text, len);
    d->v[d->n].text[len] = 0;
    d->v[d->n++].len = len;
}

static void docv_free(docv *d) {
    for (int64_t i = 0; i < d->n; i++) free(d->v[i].text);
    free(d->v);
    memset(d, 0, sizeof *d);
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static fqt_status check_text(const char *what, const unsigned char *t, size_t n) {
    const unsigned char *nul = memchr(t, 0, n);
    if (nul) {
        fqt_set_error("%s: NUL byte at offset %lld: binary data, not text", what, (long long)(nul - t));
        return FQT_ERR_FORMAT;
    }
    int64_t bad = utf8_invalid_at(t, n);
    if (bad >= 0) {
        fqt_set_error("%s: invalid UTF-8 at byte offset %lld (byte 0x%02x); convert the file to UTF-8 "
                      "(e.g. iconv -f latin1 -t utf-8)", what, (long long)bad, t[bad]);
        return FQT_ERR_FORMAT;
    }
    return FQT_OK;
}

static fqt_status read_file_docs(const char *path, bool jsonl, docv *docs) {
    void *d;
    size_t n;
    fqt_status st = fqt_read_file(path, &d, &n);
    if (st) return st;
    unsigned char *t = d;
    if (!jsonl) {
        if (!(st = check_text(path, t, n))) docv_push(docs, t, n);
        free(d);
        return st;
    }
    size_t pos = 0;
    int64_t line = 0;
    while (pos < n && !st) {
        line++;
        unsigned char *nl = memchr(t + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - t) : n, len = end - pos;
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "%s:%lld", path, (long long)line);
        size_t k = 0;
        while (k < len && (t[pos + k] == ' ' || t[pos + k] == '\t' || t[pos + k] == '\r')) k++;
        if (k < len) {
            fqt_json *j = NULL;
            if ((st = check_text(what, t + pos, len))) break;
            if (fqt_json_parse((const char *)t + pos, len, &j)) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", fqt_last_error());
                fqt_set_error("%s: not a JSON line: %s", what, msg);
                st = FQT_ERR_FORMAT;
                break;
            }
            const fqt_json *tx = fqt_json_get(j, "text");
            if (j->type != FQT_JSON_OBJ || !tx || tx->type != FQT_JSON_STR) {
                fqt_set_error("%s: expected an object with a string field \"text\"", what);
                st = FQT_ERR_FORMAT;
            } else if (memmem(t + pos, len, "\\u0000", 6)) {
                fqt_set_error("%s: the text holds a NUL character (\\u0000): binary data, not text", what);
                st = FQT_ERR_FORMAT;
            } else {
                docv_push(docs, tx->str, strlen(tx->str));
            }
            fqt_json_free(j);
        }
        pos = end + 1;
    }
    free(d);
    return st;
}

/* ---- prepare -------------------------------------------------------------------------- */

static void logf_(const fqt_prepare_options *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void logf_(const fqt_prepare_options *o, const char *fmt, ...) {
    if (!o->log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log(line);
}

typedef struct {
    uint16_t *tok;
    int64_t n, cap;
} tokv;

static void tokv_push(tokv *t, uint16_t x) {
    t->tok = fqt_xgrow(t->tok, &t->cap, t->n, sizeof *t->tok);
    t->tok[t->n++] = x;
}

/* Remove dir/<prefix>_*.bin left by an earlier preparation (a --force rebuild). */
static void remove_shards(const char *dir, const char *prefix) {
    char pat[PATH_MAX + 32];
    snprintf(pat, sizeof pat, "%s/%s_*.bin", dir, prefix);
    glob_t g;
    if (!glob(pat, 0, NULL, &g))
        for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
}

fqt_status fqt_corpus_prepare(const fqt_prepare_options *o, fqt_prepare_report *rep) {
    memset(rep, 0, sizeof *rep);
    strv files = {0};
    docv docs = {0};
    fqt_bpe *bpe = NULL;
    unsigned char *train_text = NULL;
    tokv tok[2] = {{0}, {0}};
    fqt_buf extra = {0};
    fqt_status st = FQT_OK;
    char path[PATH_MAX + 64];
    const int32_t vocab_size = o->vocab_size ? o->vocab_size : 4096;
    if (o->n_inputs < 1 || !o->out_dir) {
        fqt_set_error("need at least one input and an output directory");
        return FQT_ERR_ARG;
    }
    if (o->format && strcmp(o->format, "text") && strcmp(o->format, "jsonl")) {
        fqt_set_error("--format must be text or jsonl, not '%s'", o->format);
        return FQT_ERR_ARG;
    }
    if (!o->tokenizer && (vocab_size < 257 || vocab_size > 65536)) {
        fqt_set_error("--vocab-size %d out of range: need 257..65536 (shards store uint16)", vocab_size);
        return FQT_ERR_ARG;
    }
    snprintf(path, sizeof path, "%s/" FQT_DATA_MANIFEST, o->out_dir);
    if (!o->force && fqt_file_exists(path, NULL)) {
        fqt_set_error("%s already holds prepared data (%s); pass --force to replace it, or choose "
                      "another --out", o->out_dir, path);
        return FQT_ERR_ARG;
    }

    /* 1. Every input read and checked before anything is written. */
    for (int i = 0; i < o->n_inputs; i++)
        if ((st = expand_input(o->inputs[i], &files))) goto out;
    qsort(files.v, (size_t)files.n, sizeof *files.v, cmp_str);
    {
        int64_t k = 0; /* the same file given twice counts once */
        for (int64_t i = 0; i < files.n; i++) {
            if (k && !strcmp(files.v[k - 1], files.v[i])) { free(files.v[i]); continue; }
            files.v[k++] = files.v[i];
        }
        files.n = k;
    }
    rep->n_files = files.n;
    for (int64_t i = 0; i < files.n; i++) {
        bool jsonl = o->format ? !strcmp(o->format, "jsonl")
                               : ends_with(files.v[i], ".jsonl") || ends_with(files.v[i], ".json");
        if ((st = read_file_docs(files.v[i], jsonl, &docs))) goto out;
    }
    rep->n_empty_docs = docs.empty;
    if (docs.n == 0) {
        fqt_set_error("no text in the input (%lld file%s, all documents empty)", (long long)files.n,
                      files.n == 1 ? "" : "s");
        st = FQT_ERR_FORMAT;
        goto out;
    }
    if (docs.n == 1) {
        /* One document cannot be split by document: its tail becomes validation. */
        doc *d = &docs.v[0];
        size_t cut = d->len * 9 / 10;
        while (cut > 0 && d->text[cut - 1] != '\n') cut--;
        if (cut == 0 || cut == d->len) cut = d->len * 9 / 10;
        while (cut > 0 && (d->text[cut] & 0xC0) == 0x80) cut--; /* not inside a character */
        if (cut == 0) {
            fqt_set_error("%s: too little text (%zu bytes) for a training and a validation part",
                          files.v[0], d->len);
            st = FQT_ERR_FORMAT;
            goto out;
        }
        size_t rest = d->len - cut;
        docv_push(&docs, docs.v[0].text + cut, rest);
        docs.v[0].len = cut;
        rep->single_doc_split = 1;
    }
    rep->n_docs = docs.n;
    /* split */
    bool *is_val = fqt_xcalloc((size_t)docs.n, sizeof *is_val);
    for (int64_t i = 0; i < docs.n; i++) is_val[i] = i % 20 == 19;
    if (docs.n < 20) is_val[docs.n - 1] = true;
    size_t eotn = strlen(FQT_BPE_EOT_TEXT), train_len = 0;
    for (int64_t i = 0; i < docs.n; i++) {
        if (is_val[i]) { rep->n_val_docs++; rep->val_bytes += (int64_t)docs.v[i].len; }
        else { rep->n_train_docs++; rep->train_bytes += (int64_t)docs.v[i].len; train_len += eotn + docs.v[i].len; }
    }

    /* 2. The tokenizer: trained on the training split only, or the one given. */
    if (o->tokenizer) {
        if ((st = fqt_bpe_load(o->tokenizer, &bpe))) goto out_split;
        if (fqt_bpe_vocab_size(bpe) > 65536) {
            fqt_set_error("%s: %d tokens do not fit uint16 shards (max 65536)", o->tokenizer, fqt_bpe_vocab_size(bpe));
            st = FQT_ERR_ARG;
            goto out_split;
        }
        const char *base = strrchr(o->tokenizer, '/') ? strrchr(o->tokenizer, '/') + 1 : o->tokenizer;
        snprintf(rep->tokenizer_file, sizeof rep->tokenizer_file, "%s",
                 fqt_bpe_is_gpt2(bpe) ? "r50k_base.tiktoken" : (strcmp(base, FQT_DATA_MANIFEST) ? base : "tokenizer.bpe"));
    } else {
        train_text = fqt_xmalloc(train_len + 1);
        size_t p = 0;
        for (int64_t i = 0; i < docs.n; i++) {
            if (is_val[i]) continue;
            memcpy(train_text + p, FQT_BPE_EOT_TEXT, eotn);
            memcpy(train_text + p + eotn, docs.v[i].text, docs.v[i].len);
            p += eotn + docs.v[i].len;
        }
        logf_(o, "training a %d-token BPE on %lld documents (%lld bytes)", vocab_size,
              (long long)rep->n_train_docs, (long long)rep->train_bytes);
        if ((st = fqt_bpe_train(train_text, train_len, vocab_size, &bpe))) goto out_split;
        snprintf(rep->tokenizer_file, sizeof rep->tokenizer_file, "tokenizer.bpe");
    }
    rep->vocab_size = fqt_bpe_vocab_size(bpe);

    /* 3. Encode: <|endoftext|> then the document; specials inside documents stay text. */
    for (int64_t i = 0; i < docs.n; i++) {
        int32_t *ids;
        int64_t nids;
        if ((st = fqt_bpe_encode(bpe, docs.v[i].text, docs.v[i].len, 0, &ids, &nids))) goto out_split;
        tokv *t = &tok[is_val[i]];
        tokv_push(t, (uint16_t)fqt_bpe_eot(bpe));
        for (int64_t k = 0; k < nids; k++) tokv_push(t, (uint16_t)ids[k]);
        free(ids);
    }
    rep->train_tokens = tok[0].n;
    rep->val_tokens = tok[1].n;

    /* 4. Outputs: the manifest removed first and written last. */
    if ((st = fqt_mkdir_p(o->out_dir))) goto out_split;
    snprintf(path, sizeof path, "%s/" FQT_DATA_MANIFEST, o->out_dir);
    if (unlink(path) && errno != ENOENT) {
        fqt_set_error("%s: cannot remove the old manifest: %s", path, strerror(errno));
        st = FQT_ERR_IO;
        goto out_split;
    }
    snprintf(path, sizeof path, "%s/%s", o->out_dir, rep->tokenizer_file);
    if (o->tokenizer) {
        void *d;
        size_t n;
        if ((st = fqt_read_file(o->tokenizer, &d, &n))) goto out_split;
        st = fqt_write_file_atomic(path, d, n);
        free(d);
    } else {
        st = fqt_bpe_save(bpe, path);
    }
    if (st) goto out_split;
    fqt_buf_printf(&extra, ",\n  \"inputs\": [");
    for (int i = 0; i < o->n_inputs; i++) {
        if (i) fqt_buf_printf(&extra, ", ");
        fqt_buf_json_str(&extra, o->inputs[i]);
    }
    fqt_buf_printf(&extra, "],\n  \"files\": %lld,\n  \"document\": \"%s\",\n  \"split\": \"%s\","
                           "\n  \"documents\": {\"train\": %lld, \"val\": %lld, \"empty_skipped\": %lld},"
                           "\n  \"bytes\": {\"train\": %lld, \"val\": %lld},\n  \"tokens\": {\"train\": %lld, \"val\": %lld},"
                           "\n  \"shards\": [",
                   (long long)files.n, "<|endoftext|> then the document's tokens; a text file is one document, "
                   "a JSONL line's \\\"text\\\" field is one",
                   rep->single_doc_split ? "one document: the last line break before 90% of its bytes starts validation"
                                         : "documents in path order (JSONL: line order), index from 0; validation when "
                                           "index % 20 == 19, or the last document when there are fewer than 20",
                   (long long)rep->n_train_docs, (long long)rep->n_val_docs, (long long)rep->n_empty_docs,
                   (long long)rep->train_bytes, (long long)rep->val_bytes, (long long)tok[0].n, (long long)tok[1].n);
    static const char *const split_name[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        remove_shards(o->out_dir, split_name[s]);
        int64_t off = 0;
        for (int k = 0; off < tok[s].n; k++, off += FQT_SHARD_MAX_TOKENS) {
            int64_t m = tok[s].n - off < FQT_SHARD_MAX_TOKENS ? tok[s].n - off : FQT_SHARD_MAX_TOKENS;
            char name[64];
            snprintf(name, sizeof name, "%s_%03d.bin", split_name[s], k);
            snprintf(path, sizeof path, "%s/%s", o->out_dir, name);
            if ((st = fqt_shard_write(path, tok[s].tok + off, m))) goto out_split;
            fqt_buf_printf(&extra, "%s{\"split\": \"%s\", \"file\": \"%s\", \"tokens\": %lld}",
                           s || k ? ", " : "", split_name[s], name, (long long)m);
        }
    }
    fqt_buf_printf(&extra, "]");
    st = fqt_data_manifest_write(o->out_dir, rep->tokenizer_file, bpe, extra.s);
    if (!st) logf_(o, "wrote %s/" FQT_DATA_MANIFEST, o->out_dir);
out_split:
    free(is_val);
out:
    fqt_buf_free(&extra);
    free(tok[0].tok);
    free(tok[1].tok);
    free(train_text);
    fqt_bpe_free(bpe);
    docv_free(&docs);
    strv_free(&files);
    return st;
}
