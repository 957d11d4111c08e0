/* fqt/train.h — the run loop: data, AdamW, schedules, QAF, gradient-to-noise ratio,
 * checkpoints, metrics and the progress line.
 *
 * A run is reproducible bit for bit from its configuration: the data windows come from a
 * seeded generator whose state is checkpointed, SR bits are keyed by (seed, linear,
 * operand, micro-step), and every reduction runs in a fixed order. Not for: model math
 * (model.h) or number formats (formats.h). */
#ifndef FQT_TRAIN_H
#define FQT_TRAIN_H

#include "fqt/json.h"
#include "fqt/model.h"

typedef enum { FQT_SCHED_COSINE = 0, FQT_SCHED_WSD, FQT_SCHED_COUNT } fqt_schedule;

typedef struct {
    /* model */
    char model_size[32];          /* "tiny", "small", "llama-124m" */
    fqt_model_config model;       /* resolved; vocab from the data/tokenizer when 0 */
    /* recipe and mode */
    char recipe[160];
    fqt_mode mode;                /* fqt (default) or qat for the main phase */
    /* data */
    char train_data[1024];        /* glob of llm.c shards */
    char val_data[1024];
    char vocab[1024];             /* tokenizer file ("": the one the data's manifest.json names,
                                     else none); checked against the data, exported with
                                     every checkpoint, used for the samples at the end */
    char tokenizer_sha512[130];   /* hex SHA-512 of the vocab file (set by the trainer) */
    char init_from[1024];         /* start from this Hugging Face Llama checkpoint ("" = init) */
    int64_t batch;                /* B sequences per micro-batch */
    int64_t seq;                  /* T */
    int64_t grad_accum;           /* micro-batches per step (per rank: the global step has
                                     grad_accum x ranks, docs/DIST.md) */
    int64_t ranks;                /* data-parallel ranks of the run (set by fqt_train) */
    int64_t resume_grad_accum;    /* on a resume: micro-batches per rank; 0 keeps the global
                                     batch on the new rank count */
    int64_t steps;
    /* optimizer and schedule */
    double lr, min_lr_frac, weight_decay, beta1, beta2, eps, grad_clip;
    int64_t warmup;
    fqt_schedule schedule;
    double wsd_decay_frac;        /* WSD: fraction of the main phase spent decaying */
    /* quantization-aware finetuning at the end */
    int64_t qaf_steps;            /* > 0: the last qaf_steps steps run in QAT mode */
    double qaf_frac;              /* alternative: a fraction of steps */
    bool qaf_auto;                /* switch when the gradient-to-noise ratio stays < sqrt(3) */
    int64_t qaf_auto_checks;      /* ... for this many consecutive checks */
    double qaf_lr_frac;           /* QAF re-warms to qaf_lr_frac * lr, then decays */
    /* measurement */
    int64_t gnr_every;            /* 0 = off */
    int64_t diag_every;           /* per-layer quantization diagnostics; 0 = off */
    int64_t val_every;
    int64_t val_tokens;
    int64_t ckpt_every;           /* 0 = only at the end */
    double ckpt_minutes;          /* also checkpoint after this much wall time (0 = off) */
    int64_t log_every;            /* plain progress lines when not a terminal */
    int64_t max_bad_steps;        /* consecutive non-finite steps before giving up */
    int64_t sample_tokens;        /* generated at the end (needs vocab) */
    int64_t stop_at;              /* stop (and checkpoint) after this step; 0 = run to the end */
    uint64_t seed;
    char run_dir[1024];
    char name[160];
    char device[16];              /* "auto" (the GPU when present), "cpu" or "cuda" */
    bool quiet;
    int64_t start_unix;           /* when the run began (seconds since 1970, UTC); set by fqt_train */
    bool overwrite;               /* a fresh run may replace the run already in run_dir */
} fqt_train_config;

/* Defaults for the tiny model on the default corpus. */
void fqt_train_config_default(fqt_train_config *c);
/* Apply one `--key value` option; FQT_ERR_ARG with a message for unknown keys or bad values.
 * Keys are the field names with '-' for '_' (e.g. "grad-accum", "qaf-steps", "qaf": auto|N). */
fqt_status fqt_train_config_set(fqt_train_config *c, const char *key, const char *value);
/* The configuration as a JSON object (run.json and checkpoints). */
char *fqt_train_config_json(const fqt_train_config *c);
fqt_status fqt_train_config_from_json(fqt_train_config *c, const char *json, size_t n, const char *what);
/* The i-th option key fqt_train_config_set accepts (for "did you mean"), NULL past the end. */
const char *fqt_train_config_key(size_t i);
/* Settings that contradict each other but are not errors (e.g. --warmup >= --steps): one
 * line per warning appended to out (nothing when all is consistent). */
void fqt_train_config_warnings(const fqt_train_config *c, fqt_buf *out);
/* Help text of all options with their defaults. */
void fqt_train_config_help(FILE *f);

/* The checks that need no data: a known recipe, positive batch, seq, grad-accum and steps,
 * QAF shorter than the run, seq within the model's context. FQT_ERR_ARG with a message. */
fqt_status fqt_train_config_check(const fqt_train_config *c);

/* The tokenizer of a fresh run: with c->vocab empty, the file named by the manifest.json
 * next to the training shards (fqt/corpus.h), verified by its SHA-512; with c->vocab given,
 * it must be the manifest's tokenizer (same digest) when there is a manifest, and cover
 * every token of the data. Sets c->vocab and c->tokenizer_sha512. FQT_ERR_MISMATCH naming
 * both files when the tokenizer does not belong to the data. */
fqt_status fqt_train_resolve_tokenizer(fqt_train_config *c);
/* --init-from: load the weights of the Hugging Face Llama checkpoint c->init_from (a run or
 * checkpoint directory with config.json and model.safetensors) into m, after checking its
 * config.json against m's architecture field by field (FQT_ERR_MISMATCH naming the field). */
fqt_status fqt_train_init_from(fqt_model *m, const fqt_train_config *c);

/* Train. resume: a checkpoint directory (or a run directory holding ckpt/), or NULL. On a
 * resume the stored configuration is used; only c->steps (when larger: extends the run; 0
 * keeps it), c->stop_at and c->quiet are taken from c.
 * Returns FQT_OK, or an error with fqt_last_error() set (bad data, impossible configuration,
 * too many non-finite steps: the last good checkpoint stays intact). */
fqt_status fqt_train(fqt_train_config *c, const char *resume);
/* A SIGINT/SIGTERM (fqt_interrupt_pending) makes fqt_train finish the step, checkpoint and
 * return FQT_ERR_INTERRUPTED; c->ckpt_minutes (default 10) bounds the work a crash loses. */

/* ---- pieces the CLI and the tests use --------------------------------------------------- */

/* Learning rate at step (0-based) of the main phase; see train.c for the QAF phase. */
double fqt_lr_at(const fqt_train_config *c, int64_t step, int64_t main_steps);

/* Token data for training and evaluation. */
typedef struct {
    uint16_t *tok;
    int64_t n;
} fqt_tokens;
fqt_status fqt_tokens_load(fqt_tokens *t, const char *pattern, int64_t vocab);
void fqt_tokens_free(fqt_tokens *t);

/* Mean loss over consecutive windows of T+1 tokens (at most max_tokens predicted tokens). */
double fqt_eval_loss(fqt_model *m, const fqt_tokens *val, int64_t B, int64_t T,
                     int64_t max_tokens, const fqt_pass *pass);

/* Checkpoints: DIR/model.safetensors (Hugging Face Llama names, F32), DIR/config.json
 * (transformers' LlamaConfig), DIR/train.json (the run configuration) and
 * DIR/state.safetensors (AdamW moments, step, data RNG, phase). Written into DIR.new and
 * renamed into place, so an interrupted save never damages the previous checkpoint. */
fqt_status fqt_checkpoint_save_model(const fqt_model *m, const char *dir);
/* Load weights into a model created from DIR/config.json (validated: names, shapes, dtypes). */
fqt_status fqt_checkpoint_load_model(fqt_model *m, const char *dir);
/* Read DIR/config.json into a model config (validated). */
fqt_status fqt_checkpoint_read_config(const char *dir, fqt_model_config *c);
/* Vocabulary size of a tokenizer file (0 if it cannot be read). */
int64_t fqt_vocab_size_of_file(const char *path);
/* Print a few samples from the trained model when c->vocab names a tokenizer. */
void fqt_train_print_samples(fqt_model *m, const fqt_train_config *c, const fqt_recipe *r);

/* Write the tokenizer files of a checkpoint into dir (see fqt/tokenizer_export.h) for the
 * tokenizer file vocab ("" : nothing), and config.json again with bos_token_id and
 * eos_token_id set to its end-of-text id. */
fqt_status fqt_checkpoint_save_tokenizer(const fqt_model *m, const char *dir, const char *vocab);

/* Open a checkpoint for inference: resolve path (run or checkpoint dir), create the model
 * from config.json, load and validate the weights, and read train.json into tc when
 * present (defaults otherwise; tc->recipe then "bf16"). */
fqt_status fqt_checkpoint_open(const char *path, fqt_model *m, fqt_train_config *tc);
/* The same with the model on backend be (fqt_backend_get: "auto", "cpu", "cuda"). */
fqt_status fqt_checkpoint_open_on(const char *path, fqt_model *m, fqt_train_config *tc,
                                  const fqt_backend *be);

/* A checkpoint directory given a run directory or a checkpoint directory. For a run
 * directory: the newest complete one of RUN/ckpt, RUN/ckpt.new and RUN/ckpt.old (a crash
 * mid-swap can leave any of them), without changing anything. When none is complete the
 * error says why the first present one is not (FQT_ERR_IO "no checkpoint here" if none is). */
fqt_status fqt_checkpoint_resolve(const char *path, char *dir, size_t n);
/* Under the run's lock: make RUN/ckpt the newest complete checkpoint (as resolve picks it),
 * removing the older or broken others; dir receives RUN/ckpt. Crash-safe at every step. */
fqt_status fqt_checkpoint_recover(const char *run, char *dir, size_t n);
/* Before writing a checkpoint: settle an interrupted swap, remove a stale RUN/ckpt.new and
 * return its path in newd (to be written completely, then committed). */
fqt_status fqt_checkpoint_begin(const char *run, char *newd, size_t n);
/* After RUN/ckpt.new is complete: validate it and swap it in as RUN/ckpt. */
fqt_status fqt_checkpoint_commit(const char *run);

/* ---- run directories (core/rundir.c) ------------------------------------------------------
 * One trainer per run directory: fqt_train holds an exclusive flock on RUN/.lock for the
 * life of the run (a second one fails at once with a message naming the holder's pid).
 * A fresh run refuses a directory that already holds a run (run.json, metrics.jsonl or a
 * checkpoint) unless c->overwrite, and removes the old run only after its own data and
 * model have been set up, so a fresh start that fails leaves the old run as it was. A
 * resume writes into the directory it was given (never the run_dir stored in train.json). */
fqt_status fqt_rundir_lock(const char *run, int *fd);   /* the directory must exist */
void fqt_rundir_unlock(int fd);                          /* -1 is a no-op */
bool fqt_rundir_has_run(const char *run);
fqt_status fqt_rundir_clear(const char *run);            /* remove the run's files */
/* The run directory of a --resume path: the path itself, or for RUN/ckpt (.new, .old) RUN;
 * a checkpoint directory with another name is FQT_ERR_ARG (nowhere to write). */
fqt_status fqt_rundir_of_resume(const char *path, char *run, size_t n);

#endif
