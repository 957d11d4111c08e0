/* tests/fuzz/fuzz_json.c — libFuzzer harness for the JSON parser (io/json.c): any bytes
 * parse or fail cleanly; a parsed DOM is walked and written back out. */
#include "fqt/json.h"

#include <stdint.h>

static void walk(const fqt_json *j, fqt_buf *b) {
    switch (j->type) {
    case FQT_JSON_STR: fqt_buf_json_str(b, j->str); break;
    case FQT_JSON_NUM: fqt_buf_json_num(b, j->num); break;
    case FQT_JSON_ARR:
    case FQT_JSON_OBJ:
        for (int64_t i = 0; i < j->n; i++) {
            if (j->keys) fqt_buf_json_str(b, j->keys[i]);
            walk(&j->items[i], b);
        }
        break;
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    fqt_json *j = NULL;
    if (fqt_json_parse_limited((const char *)data, n, 1 << 16, &j) == FQT_OK) {
        fqt_buf b = {0};
        walk(j, &b);
        int64_t v;
        (void)fqt_json_int64(fqt_json_get(j, "step"), &v);
        (void)fqt_json_get_num(j, "x", 0.0);
        (void)fqt_json_get_str(j, "kind", "");
        fqt_buf_free(&b);
        fqt_json_free(j);
    }
    return 0;
}
