/* core/fileio.c — whole-file reads, atomic writes and mkdir -p. */
#include "fqt/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

fqt_status fqt_read_file(const char *path, void **data, size_t *n) {
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fqt_set_error("%s: cannot open: %s", path, strerror(errno));
        return FQT_ERR_IO;
    }
    fqt_status st = FQT_ERR_IO;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END)) goto fail_io;
    long len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET)) goto fail_io;
    buf = malloc((size_t)len + 1);
    if (!buf) {
        fqt_set_error("%s: out of memory reading %ld bytes", path, len);
        st = FQT_ERR_NOMEM;
        goto out;
    }
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) goto fail_io;
    buf[len] = 0;
    fclose(f);
    *data = buf;
    *n = (size_t)len;
    return FQT_OK;
fail_io:
    fqt_set_error("%s: read failed: %s", path, errno ? strerror(errno) : "short read");
out:
    free(buf);
    fclose(f);
    return st;
}

fqt_status fqt_fsync_dir_of(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == path) strcpy(dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY);
    if (fd < 0) {
        fqt_set_error("%s: cannot open directory: %s", dir, strerror(errno));
        return FQT_ERR_IO;
    }
    fsync(fd); /* some file systems refuse fsync on directories; nothing more to do then */
    close(fd);
    return FQT_OK;
}

fqt_status fqt_write_file_atomic(const char *path, const void *data, size_t n) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        fqt_set_error("%s: path too long", path);
        return FQT_ERR_ARG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fqt_set_error("%s: cannot create: %s", tmp, strerror(errno));
        return FQT_ERR_IO;
    }
    const char *p = data;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd)) goto fail;
    if (close(fd)) { fd = -1; goto fail; }
    fd = -1;
    if (rename(tmp, path)) goto fail;
    return fqt_fsync_dir_of(path);
fail:
    fqt_set_error("%s: write failed: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
    return FQT_ERR_IO;
}

fqt_status fqt_mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        fqt_set_error("%s: path too long", path);
        return FQT_ERR_ARG;
    }
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) && errno != EEXIST) {
                fqt_set_error("%s: cannot create directory: %s", buf, strerror(errno));
                return FQT_ERR_IO;
            }
            struct stat sb;
            if (stat(buf, &sb) || !S_ISDIR(sb.st_mode)) {
                fqt_set_error("%s: exists and is not a directory", buf);
                return FQT_ERR_IO;
            }
            if (!c) break;
            *p = c;
        }
    }
    return FQT_OK;
}
