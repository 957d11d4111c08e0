/* tests/fuzz/fuzz_util.h — shared by the libFuzzer harnesses: the parsers under test read
 * files, so each input is written to a per-process scratch file first. Not for: anything in
 * `make test` (these build only with clang's -fsanitize=fuzzer, see `make fuzz`). */
#ifndef FQT_FUZZ_UTIL_H
#define FQT_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A scratch directory of this process under $TMPDIR (or /tmp), created once. */
static const char *fuzz_dir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/fqt_fuzz_%ld", t && t[0] ? t : "/tmp", (long)getpid());
        mkdir(dir, 0755);
    }
    return dir;
}

/* Write data to fuzz_dir()/name; returns the path (static buffer) or NULL. */
static const char *fuzz_write(const char *name, const uint8_t *data, size_t n) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    if (n && fwrite(data, 1, n, f) != n) {
        fclose(f);
        return NULL;
    }
    fclose(f);
    return path;
}

#endif
