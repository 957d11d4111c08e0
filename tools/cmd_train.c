/* tools/cmd_train.c — `fqt train`: parse options into a fqt_train_config and run it. With
 * no arguments it prepares the default corpus when missing and trains the tiny model with
 * the paper's nvfp4 recipe. */
#include "cli.h"
#include "fqt/backend.h"
#include "fqt/corpus.h"
#include "fqt/dist.h"
#include "fqt/train.h"

#include <glob.h>
#include <stdbool.h>
#include <string.h>

static void log_line(const char *line) { fprintf(stderr, "fqt prepare: %s\n", line); }

static int usage(void) {
    printf("usage: fqt train [--resume DIR] [--KEY VALUE]...\n\n"
           "Trains a Llama-style model with fully quantized FP4 training (FQT). With no options:\n"
           "the tiny model on the State of the Union corpus (prepared on first use) with the\n"
           "paper's nvfp4 recipe, then validation loss and a few generated samples.\n\n"
           "Recipes: fp32 bf16 nvfp4 nvfp4-rtn mxfp4 nvfp4-nvidia fp8 int4, plus overrides\n"
           "(e.g. 'nvfp4,hp=first+last', 'nvfp4,fprop.x=mxfp4/rtn', 'nvfp4,lm_head=quant').\n\n"
           "Options:\n"
           "  --resume DIR        continue a run from its checkpoint (run dir or ckpt dir),\n"
           "                      bit-identically, writing into DIR; --steps may extend it,\n"
           "                      --stop-at pause it, --grad-accum set the micro-batches per\n"
           "                      rank on another rank count\n"
           "  --overwrite         replace the run already in --run-dir (without it, a fresh\n"
           "                      run refuses a directory that holds one)\n"
           "  --quiet             no progress output\n"
           "Options take --KEY VALUE or --KEY=VALUE. --train-data and --val-data take a quoted\n"
           "glob ('d/train_*.bin') or the files an unquoted glob expands to. Without --vocab the\n"
           "tokenizer is the one the data's manifest.json names (fqt prepare writes it).\n"
           "Ctrl-C (SIGINT) or SIGTERM: the step finishes, a checkpoint is written, and the run\n"
           "exits with 130/143; continue with fqt train --resume RUN_DIR.\n\n"
           "Data parallel: mpirun -np P fqt train ... trains one model on P ranks (global batch\n"
           "batch x grad-accum x P), bit-identical to one process with --grad-accum P x grad-accum\n"
           "(docs/DIST.md). Only rank 0 prints and writes the run directory.\n\n");
    fqt_train_config_help(stdout);
    return 0;
}

static int have_files(const char *pattern) {
    glob_t g;
    int ok = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    globfree(&g);
    return ok;
}

static bool is_model_key(const char *k) {
    static const char *const keys[] = {"model", "dim", "layers", "heads", "kv-heads", "ffn", "ctx", "vocab-size"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) if (!strcmp(k, keys[i])) return true;
    return false;
}

/* Files the shell expanded from an unquoted glob, as one brace list "{a,b,...}". */
static int file_list_pattern(const char *opt, char **files, int n, char *out, size_t cap) {
    fqt_buf b = {0};
    fqt_buf_printf(&b, "{");
    for (int i = 0; i < n; i++) {
        if (strpbrk(files[i], ",{}*?[")) {
            fqt_buf_free(&b);
            return cli_usage_error("train", "--%s: file name '%s' has one of , { } * ? [ and cannot be part of a "
                                   "file list; quote a glob instead (--%s 'DIR/*.bin')", opt, files[i], opt);
        }
        if (!have_files(files[i])) {
            fqt_buf_free(&b);
            return cli_usage_error("train", "--%s: no such file '%s'", opt, files[i]);
        }
        fqt_buf_printf(&b, "%s%s", i ? "," : "", files[i]);
    }
    fqt_buf_printf(&b, "}");
    int rc = 0;
    if (b.len >= cap) rc = cli_usage_error("train", "--%s: %d files make too long a list; quote a glob instead", opt, n);
    else snprintf(out, cap, "%s", b.s);
    fqt_buf_free(&b);
    return rc;
}

static int train_main(int argc, char **argv);

/* Joins the data-parallel world around the run; a rank whose training fails takes the whole
 * job down with a message that names it (the other ranks may be waiting in a collective). An
 * interrupted run (SIGINT/SIGTERM) stops on every rank together after its checkpoint, so it is
 * not a failure of one rank. */
int fqt_cmd_train(int argc, char **argv) {
    if (fqt_dist_init()) return cli_fail("train", "starting the data-parallel world");
    int rc = train_main(argc, argv);
    if (rc && rc != 130 && rc != 143 && fqt_dist_world()->size > 1)
        fqt_dist_abort(rc, "fqt train stopped (the error is above); all ranks stop");
    fqt_dist_finalize();
    return rc;
}

static int train_main(int argc, char **argv) {
    const fqt_dist_info *w = fqt_dist_world();
    fqt_train_config c;
    fqt_train_config_default(&c);
    const char *resume = NULL, *other = NULL;
    int data_given = 0, run_dir_given = 0, steps_given = 0, model_given = 0, accum_given = 0;
    cli_opt opts[160];
    int no = 0;
    for (size_t i = 0; fqt_train_config_key(i) && no < 150; i++) opts[no++] = (cli_opt){fqt_train_config_key(i), 1};
    const int k_resume = no, k_quiet = no + 1, k_help = no + 2, k_overwrite = no + 3;
    opts[no++] = (cli_opt){"resume", 1};
    opts[no++] = (cli_opt){"quiet", 0};
    opts[no++] = (cli_opt){"help", 0};
    opts[no++] = (cli_opt){"overwrite", 0};
    /* Shell-expanded globs: the files after --train-data / --val-data. */
    char **lists[2] = {fqt_xcalloc((size_t)argc, sizeof(char *)), fqt_xcalloc((size_t)argc, sizeof(char *))};
    int nlist[2] = {0, 0}, last_data = -1, rc = 0;
    cli_parser p;
    cli_parser_init(&p, "train", argc, argv, opts, no);
    for (;;) {
        const char *v;
        int k = cli_next(&p, &v);
        if (k == CLI_END) break;
        if (k == CLI_ERR) { rc = 2; goto done; }
        if (k == CLI_POS) {
            if (last_data < 0) {
                rc = cli_usage_error("train", "unexpected argument '%s' (options are --KEY VALUE; several shard "
                                     "files go right after --train-data or --val-data)", v);
                goto done;
            }
            lists[last_data][nlist[last_data]++] = (char *)v;
            continue;
        }
        if (k == k_help) { usage(); goto done; }
        if (k == k_quiet) { c.quiet = true; continue; }
        if (k == k_overwrite) { c.overwrite = true; continue; }
        if (k == k_resume) { resume = v; last_data = -1; continue; }
        const char *a = opts[k].name;
        if (strcmp(a, "steps") && strcmp(a, "stop-at") && strcmp(a, "grad-accum")) other = a;
        if (fqt_train_config_set(&c, a, v)) { rc = cli_usage_error("train", "%s", fqt_last_error()); goto done; }
        last_data = !strcmp(a, "train-data") ? 0 : !strcmp(a, "val-data") ? 1 : -1;
        if (last_data >= 0) {
            data_given = 1;
            nlist[last_data] = 0;
            lists[last_data][nlist[last_data]++] = (char *)v;
        }
        if (is_model_key(a)) model_given = 1;
        if (!strcmp(a, "run-dir")) run_dir_given = 1;
        if (!strcmp(a, "steps")) steps_given = 1;
        if (!strcmp(a, "grad-accum")) accum_given = 1;
        if (!strcmp(a, "recipe") && !run_dir_given) snprintf(c.run_dir, sizeof c.run_dir, "runs/%s", v);
        if (!strcmp(a, "name") && !run_dir_given) snprintf(c.run_dir, sizeof c.run_dir, "runs/%s", v);
    }
    for (int d = 0; d < 2; d++)
        if (nlist[d] > 1) {
            const char *opt = d ? "val-data" : "train-data";
            char pat[1024];
            if ((rc = file_list_pattern(opt, lists[d], nlist[d], pat, sizeof pat))) goto done;
            snprintf(d ? c.val_data : c.train_data, sizeof c.train_data, "%s", pat);
        }
    /* A resumed run is the stored run: silently ignoring --lr and friends would mislead. */
    if (resume && other) {
        rc = cli_usage_error("train", "--%s cannot be combined with --resume: a resumed run keeps its "
                             "stored configuration (only --steps, --stop-at and --grad-accum may change)", other);
        goto done;
    }
    /* A resume keeps the stored length unless --steps extends it (0 = keep), and the stored
     * global batch unless --grad-accum is given (0 = derive it for this rank count). */
    if (resume && !steps_given) c.steps = 0;
    if (resume && accum_given) c.resume_grad_accum = c.grad_accum;
    /* Only rank 0 talks; the others are quiet. */
    if (w->rank != 0) c.quiet = true;
    /* --init-from without model options: the checkpoint's architecture. */
    if (!resume && c.init_from[0] && !model_given) {
        char dir[4200];
        fqt_model_config cc;
        if (fqt_checkpoint_resolve(c.init_from, dir, sizeof dir) || fqt_checkpoint_read_config(dir, &cc)) {
            rc = cli_fail("train", "--init-from");
            goto done;
        }
        c.model = cc;
        snprintf(c.model_size, sizeof c.model_size, "init");
    }
    /* Configuration errors are usage errors, found before any data is prepared. */
    if (!resume && fqt_train_config_check(&c)) { rc = cli_usage_error("train", "%s", fqt_last_error()); goto done; }
    if (!resume && w->rank == 0) {
        fqt_buf wb = {0};
        fqt_train_config_warnings(&c, &wb);
        for (char *line = wb.s, *nl; line && *line; line = nl + 1) {
            nl = strchr(line, '\n');
            fprintf(stderr, "fqt train: warning: %.*s\n", (int)(nl - line), line);
        }
        fqt_buf_free(&wb);
    }
    /* The device too: a build without CUDA, or no GPU, says so before any data is prepared. */
    if (!fqt_backend_get(c.device)) {
        fprintf(stderr, "fqt train: %s\n", fqt_last_error());
        rc = 1;
        goto done;
    }
    /* The default corpus is prepared on first use (and given its manifest.json when an
     * older fqt prepared it), by rank 0 while the others wait. */
    if (!resume && !data_given && w->rank == 0 && (!have_files(c.train_data) || !have_files("data/sotu/" FQT_DATA_MANIFEST)) &&
        !strcmp(c.train_data, "data/sotu/train_*.bin")) {
        fqt_sotu_options o = {.data_dir = "data/sotu", .vocab_size = 4096, .log = log_line};
        fqt_sotu_report rep;
        if (fqt_sotu_prepare(&o, &rep)) { rc = cli_fail("train", "preparing the default corpus"); goto done; }
    }
    fqt_dist_barrier();
    fqt_interrupt_install();
    fqt_status st = fqt_train(&c, resume);
    if (st == FQT_ERR_INTERRUPTED) {
        /* Every rank agreed on the stop (fqt_train records the agreed signal on every rank,
         * also where none was delivered); rank 0 says so. */
        if (w->rank == 0) fprintf(stderr, "fqt train: %s\n", fqt_last_error());
        rc = 128 + fqt_interrupt_pending();
    } else if (st) {
        if (w->size > 1) fprintf(stderr, "fqt train: rank %d of %d: training stopped: %s\n", w->rank, w->size, fqt_last_error());
        else rc = cli_fail("train", "training stopped");
        rc = 1;
    }
done:
    free(lists[0]);
    free(lists[1]);
    return rc;
}
