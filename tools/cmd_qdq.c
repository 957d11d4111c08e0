/* tools/cmd_qdq.c — `fqt qdq`: quantize-dequantize a raw little-endian float32 file and
 * print the §6 diagnostics to stderr. The whole file is one tensor [rows, K]. */
#include "cli.h"
#include "fqt/fileio.h"
#include "fqt/formats.h"

#include <math.h>
#include <string.h>

static int usage(void) {
    printf("usage: fqt qdq --format F --cols K [--rounding rtn|sr] [--seed N] [--axis rows|cols]\n"
           "               IN OUT\n\n"
           "IN is raw little-endian float32, row-major with K columns; blocks run along each\n"
           "row (--axis cols: down each column). OUT receives the dequantized float32 values in\n"
           "the same layout; diagnostics go to stderr. Formats: see `fqt formats`.\n");
    return 0;
}

int fqt_cmd_qdq(int argc, char **argv) {
    const char *fmt_name = NULL, *in = NULL, *out = NULL;
    int64_t K = 0;
    uint64_t seed = 0;
    fqt_rounding rounding = FQT_ROUND_RNE;
    fqt_axis axis = FQT_AXIS_ROWS;
    static const cli_opt opts[] = {{"help", 0}, {"format", 1}, {"cols", 1}, {"rounding", 1}, {"seed", 1}, {"axis", 1}};
    cli_parser p;
    cli_parser_init(&p, "qdq", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]));
    for (;;) {
        const char *v;
        int k = cli_next(&p, &v);
        if (k == CLI_END) break;
        if (k == CLI_ERR) return 2;
        switch (k) {
        case CLI_POS:
            if (!in) in = v;
            else if (!out) out = v;
            else return cli_usage_error("qdq", "unexpected argument '%s'", v);
            break;
        case 0: return usage();
        case 1: fmt_name = v; break;
        case 2:
            if (cli_parse_i64(v, &K) || K <= 0)
                return cli_usage_error("qdq", "--cols must be a positive integer, not '%s'", v);
            break;
        case 3:
            if (!strcmp(v, "rtn") || !strcmp(v, "rne")) rounding = FQT_ROUND_RNE;
            else if (!strcmp(v, "sr")) rounding = FQT_ROUND_SR;
            else return cli_usage_error("qdq", "--rounding must be rtn or sr, not '%s'", v);
            break;
        case 4:
            if (cli_parse_u64(v, &seed))
                return cli_usage_error("qdq", "--seed must be a non-negative integer, not '%s'", v);
            break;
        case 5:
            if (!strcmp(v, "rows")) axis = FQT_AXIS_ROWS;
            else if (!strcmp(v, "cols")) axis = FQT_AXIS_COLS;
            else return cli_usage_error("qdq", "--axis must be rows or cols, not '%s'", v);
            break;
        }
    }
    if (!fmt_name) return cli_usage_error("qdq", "--format is required (see fqt formats)");
    if (!K) return cli_usage_error("qdq", "--cols is required");
    if (!in || !out) return cli_usage_error("qdq", "needs IN and OUT files");
    fqt_format f;
    if (fqt_format_parse(fmt_name, &f)) return cli_usage_error("qdq", "%s", fqt_last_error());

    void *data = NULL;
    size_t n = 0;
    if (fqt_read_file(in, &data, &n)) return cli_fail("qdq", "reading input");
    if (n == 0 || (uint64_t)K > n / 4 || n % (4 * (size_t)K)) {
        free(data);
        return cli_usage_error("qdq", "%s: size %zu bytes is not a positive multiple of 4*K bytes "
                               "(float32 rows of K = %lld columns)", in, n, (long long)K);
    }
    int64_t rows = (int64_t)(n / (4 * (size_t)K));
    float *x = data, *y = fqt_xmalloc(n);
    fqt_qstats st;
    memset(&st, 0, sizeof st);
    fqt_status s = fqt_qdq(&f, x, y, rows, K, axis, rounding, seed, 0, &st);
    if (s && s != FQT_ERR_NONFINITE) {
        free(data); free(y);
        return cli_fail("qdq", "quantizing");
    }
    if (fqt_write_file_atomic(out, y, n)) {
        free(data); free(y);
        return cli_fail("qdq", "writing output");
    }
    char name[64];
    fprintf(stderr, "format %s, rounding %s, tensor [%lld, %lld], axis %s\n",
            fqt_format_name(&f, name, sizeof name), rounding == FQT_ROUND_SR ? "sr" : "rtn",
            (long long)rows, (long long)K, axis == FQT_AXIS_ROWS ? "rows" : "cols");
    double nf = (double)(st.n ? st.n : 1);
    fprintf(stderr, "mse %.6g  snr %.2f dB  saturated %.4f%%  flushed-to-zero %.4f%%  non-finite %lld\n",
            fqt_qstats_mse(&st), fqt_qstats_snr_db(&st), 100.0 * st.n_saturated / nf,
            100.0 * st.n_flushed / nf, (long long)st.n_nonfinite);
    if (f.block)
        fprintf(stderr, "blocks %lld (%lld all-zero), scale range [%g, %g]\n", (long long)st.n_blocks,
                (long long)st.n_zero_blocks, (double)st.scale_min, (double)st.scale_max);
    if (fqt_elem_bits(f.elem) == 4) {
        fprintf(stderr, "code histogram:");
        for (int c = 0; c < 16; c++)
            fprintf(stderr, " %g:%lld", (double)fqt_elem_decode(f.elem, (uint32_t)c), (long long)st.code_hist[c]);
        fprintf(stderr, "\n");
    }
    free(data);
    free(y);
    if (s == FQT_ERR_NONFINITE)
        fprintf(stderr, "fqt qdq: warning: %lld non-finite inputs; their blocks are NaN in %s\n",
                (long long)st.n_nonfinite, out);
    return s == FQT_ERR_NONFINITE ? 1 : 0;
}
