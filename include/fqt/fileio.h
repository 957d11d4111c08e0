/* fqt/fileio.h — whole-file reads, crash-safe whole-file writes and mkdir -p.
 *
 * Shared by every module that persists something (token shards, vocabularies, checkpoints,
 * manifests). Not for: streaming I/O of files larger than memory, or anything that parses
 * a file's contents (each format validates its own bytes). */
#ifndef FQT_FILEIO_H
#define FQT_FILEIO_H

#include "fqt/common.h"

/* Write n bytes to path so that a reader sees either the old file or the complete new one,
 * never a prefix: the bytes go to "<path>.tmp.<pid>", which is fsync'ed, renamed over path,
 * and then the containing directory is fsync'ed so the rename itself survives a crash.
 * n == 0 writes an empty file. On failure the temporary file is removed, path is left as it
 * was, and the error names the path and the failing step (FQT_ERR_IO). The directory must
 * exist (see fqt_mkdir_p). */
fqt_status fqt_write_file_atomic(const char *path, const void *data, size_t n);

/* Read the whole file into a malloc'ed buffer. *data gets one extra NUL byte after the n
 * bytes (not counted in *n) so text parsers may treat it as a C string; an empty file gives
 * *n == 0 and a valid 1-byte buffer. On failure *data is NULL, *n is 0, and the error names
 * the file (FQT_ERR_IO, or FQT_ERR_NOMEM when the file does not fit in memory). */
fqt_status fqt_read_file(const char *path, void **data, size_t *n);

/* Create the directory and any missing parents (mode 0755), like `mkdir -p`. Existing
 * directories are fine; an existing non-directory on the path is an FQT_ERR_IO naming it. */
fqt_status fqt_mkdir_p(const char *path);

/* fsync the directory holding path (after a rename into it); a file system that cannot
 * sync directories is not an error. */
fqt_status fqt_fsync_dir_of(const char *path);

/* rm -rf: remove path and everything below it; a missing path is fine. Symbolic links
 * are removed, never followed. */
fqt_status fqt_remove_tree(const char *path);

/* 1 if path exists as a regular file (following symlinks), else 0; *size gets its size
 * when size is non-NULL. Never sets an error. */
int fqt_file_exists(const char *path, int64_t *size);

/* Fault injection for crash tests: after fqt_fault_arm(n) with n > 0, the n-th call of
 * fqt_fault_point() ends the process at once with _exit(FQT_FAULT_EXIT), as a kill -9
 * would. The writers above, fqt_st_write and the checkpoint swap call it before each
 * file-system call that changes something (create, write, fsync, rename, remove), so a test
 * can stop a checkpoint save at every one of them. n <= 0 disarms. Not thread-safe; for
 * tests only (tests/test_rundir.c). */
#define FQT_FAULT_EXIT 86
void fqt_fault_arm(long n);
void fqt_fault_point(void);

#endif
