/* tests/fuzz/fuzz_shard.c — libFuzzer harness for the llm.c token-shard reader
 * (io/shard.c): a header and tokens that parse, or a clean error. */
#include "fqt/shard.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write("in.bin", data, n);
    if (!path) return 0;
    uint16_t *tok = NULL;
    int64_t nt = 0;
    if (fqt_shards_load(path, &tok, &nt) == FQT_OK) {
        uint64_t s = 0;
        for (int64_t i = 0; i < nt; i++) s += tok[i];
        if (s == 0xFFFFFFFFFFFFFFFFull) abort(); /* keep the reads */
    }
    free(tok);
    return 0;
}
