/* core/train_extra.h — internal pieces of the run loop kept out of train.c: run.json's
 * start time. (The public ones are in fqt/train.h.) */
#ifndef FQT_CORE_TRAIN_EXTRA_H
#define FQT_CORE_TRAIN_EXTRA_H

#include "fqt/json.h"

/* Append `, "start_unix": N, "started_at": "YYYY-MM-DDTHH:MM:SSZ"` (nothing when 0). */
void fqt_train_json_start_time(fqt_buf *b, int64_t start_unix);

#endif
