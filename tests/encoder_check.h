/* tests/encoder_check.h — what the two bit-arithmetic encoder tests (test_e2m1_fast.c,
 * test_e4m3_fast.c) share: an encoder's bit form against its reference, code for code, one
 * float at a time; SR with the random words just below, at and just above the one where the
 * reference's decision flips (from the reference's own fraction) and the two extremes. */
#ifndef FQT_TESTS_ENCODER_CHECK_H
#define FQT_TESTS_ENCODER_CHECK_H

#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    uint8_t (*rne_bits)(float), (*rne_ref)(float);
    uint8_t (*sr_bits)(float, uint32_t), (*sr_ref)(float, uint32_t);
    uint32_t (*threshold)(float); /* the reference's SR fraction in units of 2^-24, rounded down */
    long long n, bad_rne, bad_sr;
} enc_check;

static inline void enc_check_one(enc_check *c, uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    c->n++;
    if (c->rne_bits(x) != c->rne_ref(x) && ++c->bad_rne <= 10)
        fprintf(stderr, "  %s rne 0x%08x (%a): bits 0x%02x, reference 0x%02x\n", c->name, u, (double)x,
                c->rne_bits(x), c->rne_ref(x));
    const uint32_t k = c->threshold(x);
    const uint32_t rnds[5] = {0u, 0xFFFFFFFFu, k ? (k - 1) << 8 | 0xFFu : 0u, k << 8,
                              k < 16777215u ? (k + 1) << 8 : k << 8 | 0xFFu};
    for (int i = 0; i < 5; i++)
        if (c->sr_bits(x, rnds[i]) != c->sr_ref(x, rnds[i]) && ++c->bad_sr <= 10)
            fprintf(stderr, "  %s sr 0x%08x (%a) rnd 0x%08x: bits 0x%02x, reference 0x%02x\n", c->name, u, (double)x,
                    rnds[i], c->sr_bits(x, rnds[i]), c->sr_ref(x, rnds[i]));
}

/* Every one of the 2^32 patterns (`--all`: minutes). */
static inline void enc_check_all(enc_check *c) {
    for (uint64_t u = 0; u < (1ull << 32); u++) enc_check_one(c, (uint32_t)u);
}

/* Every 409th pattern (every exponent, subnormals, infinities, NaNs with payloads), then the
 * named values, their two neighbours either side and their negatives. */
static inline void enc_check_sampled(enc_check *c, const float *named, size_t n_named) {
    for (uint64_t u = 0; u < (1ull << 32); u += 409) enc_check_one(c, (uint32_t)u);
    for (size_t i = 0; i < n_named; i++)
        for (int d = -2; d <= 2; d++)
            for (int s = 0; s < 2; s++) {
                uint32_t u;
                memcpy(&u, &named[i], 4);
                enc_check_one(c, (uint32_t)((int64_t)u + d) | (s ? 0x80000000u : 0u));
            }
}

static inline void enc_check_report(const enc_check *c) {
    CHECK_MSG(c->bad_rne == 0, "%lld inputs where the %s RNE bit form differs from the reference", c->bad_rne, c->name);
    CHECK_MSG(c->bad_sr == 0, "%lld (input, rnd) pairs where the %s SR bit form differs from the reference", c->bad_sr,
              c->name);
}

#endif
