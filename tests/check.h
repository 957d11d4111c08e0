/* tests/check.h — the minimal test harness every tests/test_*.c uses.
 *
 * CHECK counts a pass or prints the failing expression with file:line and counts a
 * failure; CHECK_MSG adds a printf-style explanation. check_finish() prints the line
 * "N passed, N failed" and returns the exit status (non-zero on any failure), so each
 * test binary ends with `return check_finish();`. */
#ifndef FQT_TEST_CHECK_H
#define FQT_TEST_CHECK_H

#include <stdio.h>
#include <stdint.h>
#include <string.h>

static long check_passed_, check_failed_;

#define CHECK(cond) CHECK_MSG(cond, "%s", "")

#define CHECK_MSG(cond, ...)                                                          \
    do {                                                                              \
        if (cond) {                                                                   \
            check_passed_++;                                                          \
        } else {                                                                      \
            check_failed_++;                                                          \
            if (check_failed_ <= 50) {                                                \
                fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
                fprintf(stderr, __VA_ARGS__);                                         \
                fputc('\n', stderr);                                                  \
            }                                                                         \
        }                                                                             \
    } while (0)

/* Compare floats bit for bit (NaN == NaN only if the bits match). */
static inline uint32_t check_bits_(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
#define CHECK_BITS(a, b)                                                              \
    CHECK_MSG(check_bits_(a) == check_bits_(b), "%.9g (0x%08x) != %.9g (0x%08x)",     \
              (double)(a), check_bits_(a), (double)(b), check_bits_(b))

static inline int check_finish(void) {
    printf("%ld passed, %ld failed\n", check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#endif
