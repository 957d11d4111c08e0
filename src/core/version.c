/* core/version.c — fqt's version and the git commit of the build (fqt/common.h). The
 * Makefile writes build/<config>/version.h and adds its folder to this file's include
 * path only; without it (a build outside the Makefile) both read "unknown". */
#include "fqt/common.h"

#if defined(__has_include)
#if __has_include("fqt_version.h")
#include "fqt_version.h"
#endif
#endif
#ifndef FQT_VERSION_STRING
#define FQT_VERSION_STRING "unknown"
#endif
#ifndef FQT_GIT_COMMIT
#define FQT_GIT_COMMIT "unknown"
#endif

const char *fqt_version(void) { return FQT_VERSION_STRING; }
const char *fqt_git_commit(void) { return FQT_GIT_COMMIT; }
