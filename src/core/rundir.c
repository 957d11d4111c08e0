/* core/rundir.c — a run directory's safety rules (fqt/train.h, "run directories"): one
 * trainer at a time (an exclusive flock on RUN/.lock for the life of the run), no fresh run
 * on top of an existing one unless asked to overwrite it, and the directory a --resume
 * writes into. Not for: the checkpoint swap (checkpoint.c) or what a run writes (train.c). */
#include "fqt/fileio.h"
#include "fqt/train.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

fqt_status fqt_rundir_lock(const char *run, int *fd_out) {
    *fd_out = -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/.lock", run);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fqt_set_error("%s: cannot create the run lock: %s", path, strerror(errno));
        return FQT_ERR_IO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        char pid[32] = "";
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        if (r > 0) pid[r] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        if (e == EWOULDBLOCK) {
            fqt_set_error("%s is in use by another fqt process%s%s%s: wait for it to finish (or stop "
                          "it), or use another --run-dir",
                          run, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
            return FQT_ERR_IO;
        }
        fqt_set_error("%s: cannot lock: %s", path, strerror(e));
        return FQT_ERR_IO;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n) {
        /* the pid is only for the message above; the lock itself is held */
    }
    *fd_out = fd;
    return FQT_OK;
}

void fqt_rundir_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing the only descriptor releases the flock */
}

static const char *const run_entries[] = {"run.json", "metrics.jsonl", "ckpt", "ckpt.new", "ckpt.old"};

bool fqt_rundir_has_run(const char *run) {
    struct stat sb;
    char path[4200];
    for (size_t i = 0; i < sizeof run_entries / sizeof run_entries[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", run, run_entries[i]);
        if (!lstat(path, &sb)) return true;
    }
    return false;
}

fqt_status fqt_rundir_clear(const char *run) {
    char path[4200];
    for (size_t i = 0; i < sizeof run_entries / sizeof run_entries[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", run, run_entries[i]);
        fqt_status st = fqt_remove_tree(path);
        if (st) return st;
    }
    return FQT_OK;
}

fqt_status fqt_rundir_of_resume(const char *path, char *run, size_t n) {
    struct stat sb;
    char cand[4200];
    snprintf(cand, sizeof cand, "%s/config.json", path);
    if (stat(cand, &sb)) {
        if (stat(path, &sb) || !S_ISDIR(sb.st_mode)) {
            fqt_set_error("%s: no checkpoint here (expected %s/config.json or %s/ckpt/config.json)", path, path,
                          path);
            return FQT_ERR_IO;
        }
        snprintf(run, n, "%s", path);
        return FQT_OK;
    }
    /* A checkpoint directory: its run directory is the parent when it is one of the swap's
     * names; anything else has no run directory to write into. */
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/') b--;
    const char *base = path + b;
    size_t bl = len - b;
    if ((bl == 4 && !strncmp(base, "ckpt", 4)) || (bl == 8 && !strncmp(base, "ckpt.new", 8)) ||
        (bl == 8 && !strncmp(base, "ckpt.old", 8))) {
        if (b == 0) snprintf(run, n, ".");
        else snprintf(run, n, "%.*s", (int)(b > 1 ? b - 1 : 1), path);
        return FQT_OK;
    }
    fqt_set_error("%s: a checkpoint outside a run directory; --resume takes a run directory (the one "
                  "holding ckpt/), and writes into it. Copy it to RUN/ckpt to continue it there",
                  path);
    return FQT_ERR_ARG;
}
