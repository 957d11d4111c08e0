/* tools/cmd_train.c — `fqt train`: parse options into a fqt_train_config and run it. With
 * no arguments it prepares the default corpus when missing and trains the tiny model with
 * the paper's nvfp4 recipe. */
#include "cli.h"
#include "fqt/corpus.h"
#include "fqt/dist.h"
#include "fqt/train.h"

#include <glob.h>
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
           "                      bit-identically; --steps may extend it, --stop-at pause it,\n"
           "                      --grad-accum set the micro-batches per rank on another rank count\n\n"
           "Data parallel: mpirun -np P fqt train ... trains one model on P ranks (global batch\n"
           "batch x grad-accum x P), bit-identical to one process with --grad-accum P x grad-accum\n"
           "(docs/DIST.md).\n\n");
    fqt_train_config_help(stdout);
    return 0;
}

static int have_files(const char *pattern) {
    glob_t g;
    int ok = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    globfree(&g);
    return ok;
}

static int train_main(int argc, char **argv);

/* Joins the data-parallel world around the run; a rank whose training fails takes the whole
 * job down with a message that names it (the other ranks may be waiting in a collective). */
int fqt_cmd_train(int argc, char **argv) {
    if (fqt_dist_init()) return cli_fail("train", "starting the data-parallel world");
    int rc = train_main(argc, argv);
    if (rc && fqt_dist_world()->size > 1)
        fqt_dist_abort(rc, "fqt train stopped (the error is above); all ranks stop");
    fqt_dist_finalize();
    return rc;
}

static int train_main(int argc, char **argv) {
    const fqt_dist_info *w = fqt_dist_world();
    fqt_train_config c;
    fqt_train_config_default(&c);
    const char *resume = NULL, *other = NULL;
    int data_given = 0, run_dir_given = 0, steps_given = 0, accum_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage();
        if (!strcmp(a, "--quiet")) { c.quiet = true; continue; }
        if (strncmp(a, "--", 2)) return cli_usage_error("train", "unexpected argument '%s' (options are --KEY VALUE)", a);
        if (i + 1 >= argc) return cli_usage_error("train", "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--resume")) { resume = v; continue; }
        if (strcmp(a, "--steps") && strcmp(a, "--stop-at") && strcmp(a, "--grad-accum")) other = a;
        if (fqt_train_config_set(&c, a + 2, v)) return cli_usage_error("train", "%s", fqt_last_error());
        if (!strcmp(a, "--train-data") || !strcmp(a, "--val-data")) data_given = 1;
        if (!strcmp(a, "--run-dir")) run_dir_given = 1;
        if (!strcmp(a, "--steps")) steps_given = 1;
        if (!strcmp(a, "--grad-accum")) accum_given = 1;
        if (!strcmp(a, "--recipe") && !run_dir_given) snprintf(c.run_dir, sizeof c.run_dir, "runs/%s", v);
        if (!strcmp(a, "--name") && !run_dir_given) snprintf(c.run_dir, sizeof c.run_dir, "runs/%s", v);
    }
    /* A resumed run is the stored run: silently ignoring --lr and friends would mislead. */
    if (resume && other)
        return cli_usage_error("train", "%s cannot be combined with --resume: a resumed run keeps its "
                               "stored configuration (only --steps, --stop-at and --grad-accum may change)", other);
    /* A resume keeps the stored length unless --steps extends it (0 = keep), and the stored
     * global batch unless --grad-accum is given (0 = derive it for this rank count). */
    if (resume && !steps_given) c.steps = 0;
    if (resume && accum_given) c.resume_grad_accum = c.grad_accum;
    /* Only rank 0 talks; the others are quiet. */
    if (w->rank != 0) c.quiet = true;
    /* Configuration errors are usage errors, found before any data is prepared. */
    if (!resume && fqt_train_config_check(&c)) return cli_usage_error("train", "%s", fqt_last_error());
    /* The default corpus is prepared on first use, by rank 0 while the others wait. */
    if (!resume && !data_given && w->rank == 0 && !have_files(c.train_data)) {
        fqt_sotu_options o = {.data_dir = "data/sotu", .vocab_size = 4096, .log = log_line};
        fqt_sotu_report rep;
        if (fqt_sotu_prepare(&o, &rep)) return cli_fail("train", "preparing the default corpus");
    }
    fqt_dist_barrier();
    if (fqt_train(&c, resume)) {
        if (w->size > 1) fprintf(stderr, "fqt train: rank %d of %d: training stopped: %s\n", w->rank, w->size, fqt_last_error());
        else cli_fail("train", "training stopped");
        return 1;
    }
    return 0;
}
