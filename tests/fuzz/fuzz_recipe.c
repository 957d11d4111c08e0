/* tests/fuzz/fuzz_recipe.c — libFuzzer harness for the recipe grammar (core/recipe.c):
 * any string parses or fails with a message; a parsed recipe describes itself. */
#include "fqt/recipe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n > 4096) return 0;
    char *s = malloc(n + 1);
    memcpy(s, data, n);
    s[n] = 0;
    fqt_recipe r;
    if (fqt_recipe_parse(s, &r) == FQT_OK) {
        char desc[1024];
        fqt_recipe_describe(&r, desc, sizeof desc);
    }
    free(s);
    return 0;
}
