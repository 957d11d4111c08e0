/* io/tokenizer_export.c — writes a tokenizer as Hugging Face tokenizer.json (byte-level
 * BPE), tokenizer_config.json, special_tokens_map.json, generation_config.json, and a
 * .tiktoken file for GPT-2 vocabularies (contract in fqt/tokenizer_export.h). Written from
 * the formats' public descriptions. Not for: encoding text (text/bpe.c). */
#include "fqt/tokenizer_export.h"

#include "fqt/fileio.h"
#include "fqt/json.h"
#include "fqt/sha512.h"

#include <limits.h>
#include <string.h>

uint32_t fqt_bytelevel_codepoint(unsigned char b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    /* The remaining bytes, in order, take U+0100, U+0101, ... */
    uint32_t k = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) k++;
    return 0x100 + k;
}

static void put_cp(fqt_buf *b, uint32_t cp) {
    char u[3];
    if (cp < 0x80) {
        u[0] = (char)cp;
        fqt_buf_append(b, u, 1);
    } else {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        fqt_buf_append(b, u, 2);
    }
}

/* A token's ByteLevel text, JSON-escaped and quoted (the alphabet holds '"' and '\\'). */
static void put_token(fqt_buf *b, const uint32_t *cps, const unsigned char *bytes, size_t n) {
    fqt_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (bytes[i] == '"' || bytes[i] == '\\') fqt_buf_append(b, "\\", 1);
        put_cp(b, cps[bytes[i]]);
    }
    fqt_buf_append(b, "\"", 1);
}

/* ---- bytes -> rank map, for recovering GPT-2's merges ---------------------------------- */

typedef struct {
    const unsigned char **key;
    size_t *len;
    int32_t *val;
    size_t cap; /* power of two */
} rank_map;

static uint64_t fnv1a(const unsigned char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static int32_t rank_get(const rank_map *m, const unsigned char *s, size_t n) {
    for (size_t i = fnv1a(s, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->key[i]) return -1;
        if (m->len[i] == n && !memcmp(m->key[i], s, n)) return m->val[i];
    }
}

/* Insert; returns the id already holding these bytes, or -1. */
static int32_t rank_put(rank_map *m, const unsigned char *s, size_t n, int32_t v) {
    size_t i = fnv1a(s, n) & (m->cap - 1);
    for (; m->key[i]; i = (i + 1) & (m->cap - 1))
        if (m->len[i] == n && !memcmp(m->key[i], s, n)) return m->val[i];
    m->key[i] = s;
    m->len[i] = n;
    m->val[i] = v;
    return -1;
}

/* The merge that makes token r: BPE on its bytes with ranks < r must end in two parts. */
static int recover_merge(const rank_map *m, const unsigned char *s, size_t n, int32_t r,
                         size_t *split) {
    size_t start[512];
    size_t np = n;
    if (n > 511) return -1;
    for (size_t i = 0; i <= n; i++) start[i] = i;
    while (np > 2) {
        int32_t best = -1;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < np; i++) {
            int32_t k = rank_get(m, s + start[i], start[i + 2] - start[i]);
            if (k >= 0 && k < r && (best < 0 || k < best)) {
                best = k;
                bi = i;
            }
        }
        if (best < 0) return -1;
        memmove(start + bi + 1, start + bi + 2, (np - bi - 1) * sizeof *start);
        np--;
    }
    if (np != 2) return -1;
    *split = start[1];
    return 0;
}

static fqt_status write_text(const char *dir, const char *name, fqt_buf *b) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fqt_status st = fqt_write_file_atomic(path, b->s, b->len);
    fqt_buf_free(b);
    return st;
}

fqt_status fqt_tokenizer_export(const fqt_bpe *bpe, const char *dir, int64_t ctx) {
    const int32_t V = fqt_bpe_vocab_size(bpe), eot = fqt_bpe_eot(bpe);
    const bool gpt2 = fqt_bpe_is_gpt2(bpe);
    uint32_t cps[256];
    for (int i = 0; i < 256; i++) cps[i] = fqt_bytelevel_codepoint((unsigned char)i);
    fqt_status st = FQT_OK;
    rank_map m = {0};
    m.cap = 1;
    while (m.cap < 2 * (size_t)V) m.cap <<= 1;
    m.key = fqt_xcalloc(m.cap, sizeof *m.key);
    m.len = fqt_xcalloc(m.cap, sizeof *m.len);
    m.val = fqt_xcalloc(m.cap, sizeof *m.val);
    fqt_buf b = {0};
    for (int32_t id = 0; id < V; id++) {
        if (id == eot) continue;
        size_t n;
        const unsigned char *s = fqt_bpe_token_bytes(bpe, id, &n);
        /* A trained vocabulary may reach the same bytes by two merge paths; the formats key
         * tokens by their bytes, so the first id keeps them (the later one decodes through
         * fqt only). GPT-2's ranks are unique. */
        (void)rank_put(&m, s, n, id);
    }

    /* tokenizer.json */
    fqt_buf_printf(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
                       "  \"added_tokens\": [{\"id\": %d, \"content\": \"" FQT_BPE_EOT_TEXT "\", \"single_word\": false, "
                       "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}],\n"
                       "  \"normalizer\": null,\n"
                       "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},\n"
                       "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": true},\n"
                       "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},\n"
                       "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null, "
                       "\"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false,\n"
                       "    \"vocab\": {",
                   eot);
    for (int32_t id = 0; id < V; id++) {
        fqt_buf_printf(&b, "%s", id ? ", " : "");
        if (id == eot) {
            fqt_buf_printf(&b, "\"" FQT_BPE_EOT_TEXT "\": %d", id);
            continue;
        }
        size_t n;
        const unsigned char *s = fqt_bpe_token_bytes(bpe, id, &n);
        if (rank_get(&m, s, n) != id) {
            b.len -= 2 * (id > 0); /* drop the separator just written */
            continue;
        }
        put_token(&b, cps, s, n);
        fqt_buf_printf(&b, ": %d", id);
    }
    fqt_buf_printf(&b, "},\n    \"merges\": [");
    int32_t nm = 0;
    for (int32_t id = 256; id < V; id++) {
        if (id == eot) continue;
        size_t n, cut;
        const unsigned char *s = fqt_bpe_token_bytes(bpe, id, &n);
        if (!gpt2) {
            /* Merge i of a trained vocabulary makes id 256 + i. */
            int32_t l, r;
            size_t ln;
            if (fqt_bpe_merge(bpe, id - 256, &l, &r)) continue;
            fqt_bpe_token_bytes(bpe, l, &ln);
            cut = ln;
        } else if (recover_merge(&m, s, n, id, &cut)) {
            fqt_set_error("GPT-2 token %d: its bytes do not reduce to one merge of lower ranks "
                          "(not an r50k_base vocabulary?)", id);
            st = FQT_ERR_FORMAT;
            goto out;
        }
        fqt_buf_printf(&b, "%s\"", nm++ ? ", " : "");
        for (size_t i = 0; i < n; i++) {
            if (i == cut) fqt_buf_append(&b, " ", 1);
            if (s[i] == '"' || s[i] == '\\') fqt_buf_append(&b, "\\", 1);
            put_cp(&b, cps[s[i]]);
        }
        fqt_buf_append(&b, "\"", 1);
    }
    fqt_buf_printf(&b, "]\n  }\n}\n");
    if ((st = write_text(dir, "tokenizer.json", &b))) goto out;

    fqt_buf_printf(&b, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"bos_token\": \"" FQT_BPE_EOT_TEXT
                       "\",\n  \"eos_token\": \"" FQT_BPE_EOT_TEXT "\",\n  \"unk_token\": null,\n"
                       "  \"add_bos_token\": false,\n  \"add_prefix_space\": false,\n"
                       "  \"clean_up_tokenization_spaces\": false,\n  \"model_max_length\": %lld\n}\n",
                   (long long)ctx);
    if ((st = write_text(dir, "tokenizer_config.json", &b))) goto out;
    fqt_buf_printf(&b, "{\n  \"bos_token\": \"" FQT_BPE_EOT_TEXT "\",\n  \"eos_token\": \"" FQT_BPE_EOT_TEXT "\"\n}\n");
    if ((st = write_text(dir, "special_tokens_map.json", &b))) goto out;
    fqt_buf_printf(&b, "{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"do_sample\": true,\n"
                       "  \"temperature\": 0.8,\n  \"top_k\": 40,\n  \"max_length\": %lld\n}\n",
                   eot, eot, (long long)ctx);
    if ((st = write_text(dir, "generation_config.json", &b))) goto out;

    if (gpt2) {
        /* tiktoken: "<base64 of the token's bytes> <rank>" per line; the special token is
         * not listed (tiktoken passes it separately). */
        char b64[700];
        for (int32_t id = 0; id < V; id++) {
            if (id == eot) continue;
            size_t n;
            const unsigned char *s = fqt_bpe_token_bytes(bpe, id, &n);
            if (4 * ((n + 2) / 3) + 1 > sizeof b64) {
                fqt_set_error("token %d: %zu bytes, too long for the .tiktoken writer", id, n);
                st = FQT_ERR_FORMAT;
                goto out;
            }
            fqt_base64_encode(s, n, b64);
            fqt_buf_printf(&b, "%s %d\n", b64, id);
        }
        if ((st = write_text(dir, "r50k_base.tiktoken", &b))) goto out;
    } else {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/tokenizer.bpe", dir);
        if ((st = fqt_bpe_save(bpe, path))) goto out;
    }
out:
    fqt_buf_free(&b);
    free(m.key);
    free(m.len);
    free(m.val);
    return st;
}
