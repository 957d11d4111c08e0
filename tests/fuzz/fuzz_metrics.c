/* tests/fuzz/fuzz_metrics.c — libFuzzer harness for `fqt report`'s metrics reader and
 * plots (report/report.c, report/svg.c): the input is metrics.jsonl of a run whose
 * run.json is fixed; a run that loads is summarised, tabulated and plotted. */
#include "fqt/report.h"
#include "fqt/svg.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static const char run_json[] = "{\"name\": \"fz\", \"recipe\": \"nvfp4\", \"steps\": 10, "
                                   "\"tokens_per_step\": 64}\n";
    if (!fuzz_write("run.json", (const uint8_t *)run_json, sizeof run_json - 1) ||
        !fuzz_write("metrics.jsonl", data, n))
        return 0;
    fqt_run_metrics r;
    if (fqt_run_metrics_load(fuzz_dir(), &r) == FQT_OK) {
        fqt_run_summary row;
        if (fqt_report_summarize(&r, 1, NULL, &row, NULL) == FQT_OK) {
            fqt_buf b = {0};
            fqt_report_table(&row, 1, false, &b);
            fqt_buf_free(&b);
        }
        for (int logx = 0; logx < 2; logx++) {
            fqt_report_plot_opts o = {.logx = logx, .ema_beta = -1};
            fqt_svg_figure *f = fqt_report_figure(&r, 1, &o);
            fqt_buf b = {0};
            if (f) fqt_svg_render(f, &b);
            fqt_buf_free(&b);
            fqt_svg_figure_free(f);
        }
    }
    fqt_run_metrics_free(&r);
    return 0;
}
