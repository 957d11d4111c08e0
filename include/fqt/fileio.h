/* fqt/fileio.h — whole-file reads and atomic writes (temporary file, fsync, rename,
 * fsync of the directory), so a crash never leaves a half-written file under the final
 * name. Not for: streaming large outputs (safetensors has its own streaming writer). */
#ifndef FQT_FILEIO_H
#define FQT_FILEIO_H

#include "fqt/common.h"

/* Read a whole file; *data is malloc'ed (one extra NUL byte after the contents). */
fqt_status fqt_read_file(const char *path, void **data, size_t *n);
/* Write n bytes to path atomically; on failure an existing file at path is untouched. */
fqt_status fqt_write_file_atomic(const char *path, const void *data, size_t n);
/* mkdir -p; existing directories are fine. */
fqt_status fqt_mkdir_p(const char *path);
/* fsync the directory holding path (after a rename into it). */
fqt_status fqt_fsync_dir_of(const char *path);

#endif
