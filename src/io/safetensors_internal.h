/* io/safetensors_internal.h — test hooks of io/safetensors.c; not part of the API.
 *
 * For: tests/test_safetensors.c, which needs to fail a write halfway to check atomicity.
 * Not for: anything else (the hook is a process-wide global, not thread-safe). */
#ifndef FQT_CORE_SAFETENSORS_INTERNAL_H
#define FQT_CORE_SAFETENSORS_INTERNAL_H

#include <stdint.h>

/* When >= 0, fqt_st_write fails with ENOSPC (as if the disk were full) once this many bytes
 * of the temporary file have been written. -1 (the default) disables the hook. */
extern int64_t fqt_st_test_fail_at_byte;

#endif
