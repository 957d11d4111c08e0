/* io/fileio.c — whole-file reads, atomic whole-file writes (temp + fsync + rename +
 * directory fsync) and mkdir -p, for every module that persists files.
 *
 * Not for: parsing or validating contents; each format checks its own bytes. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fqt/fileio.h"

#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fsync the directory that contains path, so a completed rename is durable. Filesystems
 * that refuse fsync on directories (EINVAL) are tolerated: nothing more can be done there. */
fqt_status fqt_fsync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t len = (size_t)(slash - path);
        if (len >= sizeof dir) {
            fqt_set_error("%s: directory name too long", path);
            return FQT_ERR_IO;
        }
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        fqt_set_error("%s: cannot open directory to fsync: %s", dir, strerror(errno));
        return FQT_ERR_IO;
    }
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) {
        fqt_set_error("%s: fsync of directory failed: %s", dir, strerror(err));
        return FQT_ERR_IO;
    }
    return FQT_OK;
}

static long fault_countdown;

void fqt_fault_arm(long n) { fault_countdown = n > 0 ? n : 0; }

void fqt_fault_point(void) {
    if (fault_countdown > 0 && --fault_countdown == 0) _exit(FQT_FAULT_EXIT);
}

fqt_status fqt_write_file_atomic(const char *path, const void *data, size_t n) {
    char tmp[PATH_MAX];
    int fd = -1;
    fqt_status st = FQT_ERR_IO;
    if (!path || (!data && n)) {
        fqt_set_error("fqt_write_file_atomic: NULL path or data");
        return FQT_ERR_ARG;
    }
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        fqt_set_error("%s: path too long", path);
        return FQT_ERR_IO;
    }
    fqt_fault_point();
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fqt_set_error("%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        return FQT_ERR_IO;
    }
    const unsigned char *p = data;
    size_t left = n;
    fqt_fault_point();
    while (left > 0) {
        ssize_t w = write(fd, p, left > (size_t)1 << 30 ? (size_t)1 << 30 : left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            fqt_set_error("%s: write failed after %zu of %zu bytes: %s", tmp, n - left, n,
                          w < 0 ? strerror(errno) : "no progress");
            goto fail_unlink;
        }
        p += w;
        left -= (size_t)w;
    }
    fqt_fault_point();
    if (fsync(fd) != 0) {
        fqt_set_error("%s: fsync failed: %s", tmp, strerror(errno));
        goto fail_unlink;
    }
    if (close(fd) != 0) {
        fd = -1;
        fqt_set_error("%s: close failed: %s", tmp, strerror(errno));
        goto fail_unlink;
    }
    fd = -1;
    fqt_fault_point();
    if (rename(tmp, path) != 0) {
        fqt_set_error("%s: rename from %s failed: %s", path, tmp, strerror(errno));
        goto fail_unlink;
    }
    return fqt_fsync_dir_of(path);

fail_unlink:
    if (fd >= 0) close(fd);
    unlink(tmp);
    return st;
}

fqt_status fqt_read_file(const char *path, void **data, size_t *n) {
    *data = NULL;
    *n = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        fqt_set_error("%s: cannot open: %s", path, strerror(errno));
        return FQT_ERR_IO;
    }
    fqt_status st = FQT_ERR_IO;
    unsigned char *buf = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        fqt_set_error("%s: stat failed: %s", path, strerror(errno));
        goto out_close;
    }
    if (S_ISDIR(sb.st_mode)) {
        fqt_set_error("%s: is a directory, not a file", path);
        goto out_close;
    }
    if (!S_ISREG(sb.st_mode)) {
        fqt_set_error("%s: not a regular file (a FIFO, socket or device?)", path);
        goto out_close;
    }
    /* Regular files report their size (procfs-like ones report 0 and grow as read). */
    size_t cap = sb.st_size > 0 ? (size_t)sb.st_size + 1 : 4096, len = 0;
    if (sb.st_size < 0 || (uint64_t)sb.st_size >= SIZE_MAX / 2) {
        fqt_set_error("%s: too large to read into memory", path);
        st = FQT_ERR_NOMEM;
        goto out_close;
    }
    buf = malloc(cap);
    if (!buf) {
        fqt_set_error("%s: out of memory reading %zu bytes", path, cap);
        st = FQT_ERR_NOMEM;
        goto out_close;
    }
    for (;;) {
        if (len + 1 >= cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                fqt_set_error("%s: out of memory reading %zu bytes", path, cap * 2);
                st = FQT_ERR_NOMEM;
                goto out_free;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            fqt_set_error("%s: read failed: %s", path, strerror(errno));
            goto out_free;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    *data = buf;
    *n = len;
    close(fd);
    return FQT_OK;

out_free:
    free(buf);
out_close:
    close(fd);
    return st;
}

fqt_status fqt_mkdir_p(const char *path) {
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) {
        fqt_set_error("mkdir -p: bad path '%s'", path);
        return FQT_ERR_ARG;
    }
    memcpy(buf, path, len + 1);
    /* Create each prefix that ends just before a '/', then the full path. */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            fqt_set_error("%s: cannot create directory %s: %s", path, buf, strerror(errno));
            return FQT_ERR_IO;
        }
        struct stat sb;
        if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fqt_set_error("%s: %s exists and is not a directory", path, buf);
            return FQT_ERR_IO;
        }
        buf[i] = saved;
    }
    return FQT_OK;
}

int fqt_file_exists(const char *path, int64_t *size) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    if (size) *size = (int64_t)sb.st_size;
    return 1;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    fqt_fault_point();
    return remove(path) ? -1 : 0;
}

fqt_status fqt_remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb)) return errno == ENOENT ? FQT_OK : (fqt_set_error("%s: %s", path, strerror(errno)), FQT_ERR_IO);
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS)) {
        fqt_set_error("%s: cannot remove: %s", path, strerror(errno));
        return FQT_ERR_IO;
    }
    return FQT_OK;
}
