/* tests/fuzz/fuzz_vocab.c — libFuzzer harness for the tokenizer readers (text/bpe.c: the
 * fqt-bpe format and GPT-2's .tiktoken): a vocabulary that loads must encode and decode a
 * fixed text and round-trip it. The fqt-bpe format carries a sha512 of its contents, so
 * inputs starting with "fixsum\n" get a correct checksum line appended first: that lets the
 * fuzzer reach the merge validation behind the checksum. */
#include "fqt/bpe.h"
#include "fqt/sha512.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *name = "in.bpe";
    uint8_t *buf = NULL;
    size_t bn = n;
    if (n >= 7 && !memcmp(data, "fixsum\n", 7)) {
        data += 7;
        n -= 7;
        unsigned char dig[FQT_SHA512_BYTES];
        char hex[2 * FQT_SHA512_BYTES + 1];
        fqt_sha512(data, n, dig);
        fqt_hex(dig, sizeof dig, hex);
        buf = malloc(n + 8 + sizeof hex + 1);
        memcpy(buf, data, n);
        bn = n + (size_t)sprintf((char *)buf + n, "sha512 %s\n", hex);
        data = buf;
    } else if (n >= 1 && data[0] == 'T') {
        name = "in.tiktoken";
    }
    const char *path = fuzz_write(name, data, bn);
    free(buf);
    if (!path) return 0;
    fqt_bpe *b = NULL;
    if (fqt_bpe_load(path, &b) != FQT_OK) return 0;
    static const char text[] = "Hello, world! 123 The  quick\n\tbrown fox <|endoftext|>";
    int32_t *ids = NULL;
    int64_t nids = 0;
    if (fqt_bpe_encode(b, text, sizeof text - 1, 1, &ids, &nids) == FQT_OK) {
        char *out = NULL;
        size_t no = 0;
        if (fqt_bpe_decode(b, ids, nids, &out, &no) == FQT_OK) {
            if (no != sizeof text - 1 || memcmp(out, text, no)) abort();
            free(out);
        }
        free(ids);
    }
    fqt_bpe_free(b);
    return 0;
}
