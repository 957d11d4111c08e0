/* tests/fuzz/fuzz_safetensors.c — libFuzzer harness for the safetensors reader
 * (io/safetensors.c): open validates everything; every tensor it lists must then read as
 * float without faults. */
#include "fqt/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write("in.safetensors", data, n);
    if (!path) return 0;
    fqt_st_file *f = NULL;
    if (fqt_st_open(path, &f) != FQT_OK) return 0;
    (void)fqt_st_meta(f, "format");
    for (int64_t i = 0; i < fqt_st_count(f); i++) {
        const fqt_st_info *t = fqt_st_at(f, i);
        if (!t || fqt_st_find(f, t->name) == NULL) abort();
        int64_t numel = t->numel;
        if (numel > (1 << 20)) continue;
        float *dst = malloc((size_t)(numel ? numel : 1) * sizeof(float));
        (void)fqt_st_read_f32(f, t->name, t->ndim, t->shape, dst);
        free(dst);
    }
    fqt_st_close(f);
    return 0;
}
