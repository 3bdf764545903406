/* peft/status.h — libpeft's status codes, shared by the application API (peft/peft.h) and the
 * plugin ABI (peft/plugin.h: a plugin reports its own failure on the graph with one of them).
 *
 * One convention everywhere outward: a call returns PEFT_OK (0) or a negative code, and leaves
 * a message naming what was wrong on the context (peft_errmsg / peft_errcode) — or, inside a
 * step, on the graph (peft_graph_error / peft_graph_errcode), whose first error sticks until
 * peft_graph_reset and is what peft_model_forward / peft_graph_backward return.
 */
#ifndef PEFT_STATUS_H
#define PEFT_STATUS_H

#include "peft/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PEFT_OK 0
#define PEFT_EINVAL -1    /* bad argument, config value or input */
#define PEFT_EIO -2       /* file or directory missing, unreadable or unwritable */
#define PEFT_ENOMEM -3    /* out of memory (the heap, or a graph's step arena) */
#define PEFT_EFORMAT -4   /* malformed file content */
#define PEFT_ENOTFOUND -5 /* no such adapter / module / tensor */
#define PEFT_EPLUGIN -6   /* a plugin could not be loaded, refused, or failed */
#define PEFT_ESTATE -7    /* not valid in the current state */

#ifdef __cplusplus
}
#endif
#endif
