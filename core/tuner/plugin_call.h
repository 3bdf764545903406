/* plugin_call.h — which plugin entry is running on this thread, so that a plugin that crashes
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL) is named before the process dies: the core wraps each call
 * into a plugin (inject, forward, merge, the prompt hooks...) in enter/leave, and a handler
 * installed when the first plugin is loaded writes "libpeft: plugin 'lora' crashed with SIGSEGV
 * in forward (adapter 'default', module 'transformer.h.0.attn.c_attn')" to stderr with
 * async-signal-safe calls only, then hands the signal to the handler that was there before (or
 * dies with it). PEFT_NO_CRASH_HANDLER=1 in the environment leaves the signals alone
 * (core-internal). */
#ifndef CORE_TUNER_PLUGIN_CALL_H
#define CORE_TUNER_PLUGIN_CALL_H

/* One running plugin entry; lives on the caller's stack between enter and leave. The strings
 * are borrowed and must outlive the call (vtable names, adapter and module names). */
typedef struct peft_plugin_call {
    const char *plugin;  /* vt->name */
    const char *entry;   /* "forward" */
    const char *adapter; /* or NULL */
    const char *module;  /* or NULL */
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

/* installs the crash handlers once (process-wide; the registry calls it on the first load) */
void peft_plugin_crash_handlers_install(void);

#endif
