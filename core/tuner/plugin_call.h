/* plugin_call.h — which plugin entry is running on this thread, so that a plugin that crashes
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL) is named before the process dies: the core wraps each call
 * into a plugin (every vtable entry: inject, forward, merge, state_dict, destroy, the prompt
 * hooks...) in enter/leave, the backward closures a plugin records on the tape run inside a
 * record naming the entry that recorded them ("the backward of its forward entry"), and a handler
 * installed when the first plugin is loaded writes "libpeft: plugin 'lora' crashed with SIGSEGV
 * in forward (adapter 'default', module 'transformer.h.0.attn.c_attn')" to stderr with
 * async-signal-safe calls only, then hands the signal to the handler that was there before (or
 * dies with it). A core op a plugin calls through the host table (host->op_linear, sgemm, svd...)
 * runs with its name on the record ("in core op 'sgemm' called from its forward entry"), the
 * backward it records runs inside a record naming it too ("the backward of core op 'op_linear'
 * called from its forward entry"), and the kernels' pool workers take the caller's record for
 * their slices. PEFT_NO_CRASH_HANDLER=1 in the environment leaves the signals alone
 * (core-internal). */
#ifndef CORE_TUNER_PLUGIN_CALL_H
#define CORE_TUNER_PLUGIN_CALL_H

#include <stddef.h>

#include "peft/plugin.h"

/* One running plugin entry; lives on the caller's stack between enter and leave. The strings
 * are borrowed and must outlive the call (vtable names, adapter and module names). */
typedef struct peft_plugin_call {
    const char *plugin;  /* vt->name */
    const char *entry;   /* "forward" */
    const char *adapter; /* or NULL */
    const char *module;  /* or NULL */
    const char *phase;   /* NULL, or "backward": a tape closure recorded by `entry` */
    const char *op;      /* NULL, or the core op (host table entry, "sgemm") the plugin called */
    int op_backward;     /* 1: running the backward that core op recorded */
    struct peft_plugin_call *prev;
} peft_plugin_call;

void peft_plugin_call_enter(peft_plugin_call *c, const char *plugin, const char *entry,
                            const char *adapter, const char *module);
void peft_plugin_call_leave(peft_plugin_call *c);

/* the value of expr, a call into plugin vt's entry, with the call recorded (GNU C statement
 * expression): PEFT_PLUGIN_CALL(vt, "forward", a->name, s->info.name, vt->forward(...)) */
#define PEFT_PLUGIN_CALL(vt, entry, adapter, module, expr)                                      \
    __extension__({                                                                            \
        peft_plugin_call pc__;                                                                 \
        peft_plugin_call_enter(&pc__, (vt)->name, entry, adapter, module);                     \
        __typeof__(expr) r__ = (expr);                                                         \
        peft_plugin_call_leave(&pc__);                                                         \
        r__;                                                                                   \
    })

/* the same for an entry that returns nothing (destroy, config_free...) */
#define PEFT_PLUGIN_CALL_VOID(vt, entry, adapter, module, expr)                                 \
    do {                                                                                       \
        peft_plugin_call pcv__;                                                                \
        peft_plugin_call_enter(&pcv__, (vt)->name, entry, adapter, module);                    \
        expr;                                                                                  \
        peft_plugin_call_leave(&pcv__);                                                        \
    } while (0)

/* host->tape_push as plugins see it: records fn like peft_tape_push, behind a core trampoline
 * that runs it inside a record copied from the plugin call running now (plugin, entry, adapter,
 * module; phase "backward"). Returns the ctx_bytes of zeroed arena memory handed to fn, as
 * peft_tape_push does; NULL when not recording or out of memory (the graph error is set). */
void *peft_plugin_tape_push(peft_graph *g, peft_backward_fn fn, size_t ctx_bytes);

/* A core op called by a plugin through the host table: enter names it on this thread's record
 * (when a plugin call is running; returns the name it replaces, for leave), leave restores it.
 * HOST_OP(name, expr) in host_api.c wraps each compute entry. */
const char *peft_plugin_op_enter(const char *op);
void peft_plugin_op_leave(const char *prev);

/* the tape nodes g got from index n0 on (pushed by core op `op` a plugin called) run their
 * backward inside a record naming the op and the plugin entry running now; nothing when no
 * plugin call is running or out of arena memory (then they run unattributed) */
void peft_plugin_op_tape(peft_graph *g, size_t n0, const char *op);

/* the record running on this thread (NULL: none), and a pool worker taking the caller's record
 * for a slice it runs for it (NULL after: none) */
const peft_plugin_call *peft_plugin_call_current(void);
void peft_plugin_call_adopt(const peft_plugin_call *c);

/* installs the crash handlers once (process-wide; the registry calls it on the first load) */
void peft_plugin_crash_handlers_install(void);

#endif
