/* core/interrupt.c — the SIGINT/SIGTERM flag of fqt/common.h. The handler only records the
 * signal; the trainer finishes its step, checkpoints and returns FQT_ERR_INTERRUPTED. Not
 * for: anything done inside the handler beyond setting the flag. */
#include "fqt/common.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t pending;

static void on_signal(int sig) {
    if (pending) {
        /* Asked twice: the user wants out now. */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    pending = sig;
}

void fqt_interrupt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* file writes in progress complete normally */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int fqt_interrupt_pending(void) { return (int)pending; }
