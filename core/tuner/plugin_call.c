/* plugin_call.c — the running plugin entry per thread, the trampoline that runs a plugin's
 * tape closures inside such a record, and the crash report written when a plugin faults (see
 * plugin_call.h). The handler uses only write(2), sigaction and raise. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tuner/plugin_call.h"
#include "core/tensor/graph_internal.h"
#include "peft/graph.h"

static __thread peft_plugin_call *cur __attribute__((tls_model("initial-exec")));
/* the record of the last core op a plugin entered, process-wide: a fault on a thread with no
 * record of its own (an OpenBLAS thread inside host->sgemm) is blamed on it while it runs */
static peft_plugin_call *_Atomic in_op;

void peft_plugin_call_enter(peft_plugin_call *c, const char *plugin, const char *entry,
                            const char *adapter, const char *module)
{
    c->plugin = plugin;
    c->entry = entry;
    c->adapter = adapter;
    c->module = module;
    c->phase = NULL;
    c->op = NULL;
    c->op_backward = 0;
    c->prev = cur;
    cur = c;
}

void peft_plugin_call_leave(peft_plugin_call *c) { cur = c->prev; }

const peft_plugin_call *peft_plugin_call_current(void) { return cur; }

void peft_plugin_call_adopt(const peft_plugin_call *c) { cur = (peft_plugin_call *)c; }

const char *peft_plugin_op_enter(const char *op)
{
    peft_plugin_call *c = cur;
    if (!c) return NULL;
    const char *prev = c->op;
    c->op = op;
    atomic_store_explicit(&in_op, c, memory_order_relaxed);
    return prev;
}

void peft_plugin_op_leave(const char *prev)
{
    peft_plugin_call *c = cur;
    if (!c) return;
    c->op = prev;
    if (!prev) {
        peft_plugin_call *expect = c;
        atomic_compare_exchange_strong(&in_op, &expect, NULL);
    }
}

/* ---- core op tape nodes recorded for a plugin ---- */

typedef struct {
    peft_backward_fn fn;
    void *ctx;
    const char *plugin, *entry, *adapter, *module, *op;
} op_head;

static void op_backward(peft_graph *g, void *ctx)
{
    const op_head *h = ctx;
    peft_plugin_call pc;
    peft_plugin_call_enter(&pc, h->plugin, h->entry, h->adapter, h->module);
    pc.op = h->op;
    pc.op_backward = 1;
    h->fn(g, h->ctx);
    peft_plugin_call_leave(&pc);
}

void peft_plugin_op_tape(peft_graph *g, size_t n0, const char *op)
{
    const peft_plugin_call *c = cur;
    if (!c || !g) return;
    for (size_t i = n0; i < g->n_nodes; i++) {
        op_head *h = peft_arena_alloc(g->arena, sizeof *h);
        if (!h) return;
        *h = (op_head){g->nodes[i].fn, g->nodes[i].ctx, c->plugin, c->entry, c->adapter, c->module, op};
        g->nodes[i].fn = op_backward;
        g->nodes[i].ctx = h;
    }
}

/* ---- plugin tape closures ---- */

/* what the trampoline needs, in front of the plugin's own ctx; the strings are borrowed from the
 * call that recorded it (vtable, adapter and site names outlive the step) */
typedef struct {
    peft_backward_fn fn;
    const char *plugin, *entry, *adapter, *module;
} tape_head;
#define HEAD_BYTES 64 /* a multiple of the arena's alignment: the plugin's ctx stays aligned */
_Static_assert(sizeof(tape_head) <= HEAD_BYTES, "tape_head fits its slot");

static void plugin_backward(peft_graph *g, void *ctx)
{
    const tape_head *h = ctx;
    peft_plugin_call pc;
    peft_plugin_call_enter(&pc, h->plugin, h->entry, h->adapter, h->module);
    pc.phase = "backward";
    h->fn(g, (char *)ctx + HEAD_BYTES);
    peft_plugin_call_leave(&pc);
}

void *peft_plugin_tape_push(peft_graph *g, peft_backward_fn fn, size_t ctx_bytes)
{
    const peft_plugin_call *c = cur;
    if (!c || ctx_bytes > (size_t)-1 - HEAD_BYTES) return peft_tape_push(g, fn, ctx_bytes);
    tape_head *h = peft_tape_push(g, plugin_backward, HEAD_BYTES + ctx_bytes);
    if (!h) return NULL;
    *h = (tape_head){fn, c->plugin, c->entry, c->adapter, c->module};
    return (char *)h + HEAD_BYTES;
}

static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#define N_FATAL (sizeof fatal / sizeof *fatal)
static struct sigaction previous[N_FATAL];

/* appends s (at most 200 bytes of it) to buf at *o, within len */
static void put(char *buf, size_t len, size_t *o, const char *s)
{
    for (size_t n = 0; s && *s && n < 200 && *o + 1 < len; n++) buf[(*o)++] = *s++;
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV (segmentation fault)";
    case SIGBUS: return "SIGBUS (bus error)";
    case SIGFPE: return "SIGFPE (arithmetic exception)";
    case SIGILL: return "SIGILL (illegal instruction)";
    default: return "a fatal signal";
    }
}

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
    const peft_plugin_call *c = cur;
    if (!c) c = atomic_load_explicit(&in_op, memory_order_relaxed);
    if (c) {
        char buf[1024];
        size_t o = 0;
        put(buf, sizeof buf, &o, "libpeft: plugin '");
        put(buf, sizeof buf, &o, c->plugin);
        put(buf, sizeof buf, &o, "' crashed with ");
        put(buf, sizeof buf, &o, sig_name(sig));
        put(buf, sizeof buf, &o, " in ");
        if (c->op) {
            put(buf, sizeof buf, &o, c->op_backward ? "the backward of core op '" : "core op '");
            put(buf, sizeof buf, &o, c->op);
            put(buf, sizeof buf, &o, "' called from ");
        }
        if (c->phase) {
            put(buf, sizeof buf, &o, "the ");
            put(buf, sizeof buf, &o, c->phase);
            put(buf, sizeof buf, &o, " of ");
        }
        put(buf, sizeof buf, &o, "its ");
        put(buf, sizeof buf, &o, c->entry);
        put(buf, sizeof buf, &o, " entry");
        if (c->adapter) {
            put(buf, sizeof buf, &o, " (adapter '");
            put(buf, sizeof buf, &o, c->adapter);
            put(buf, sizeof buf, &o, "'");
            if (c->module) {
                put(buf, sizeof buf, &o, ", module '");
                put(buf, sizeof buf, &o, c->module);
                put(buf, sizeof buf, &o, "'");
            }
            put(buf, sizeof buf, &o, ")");
        } else if (c->module) {
            put(buf, sizeof buf, &o, " (module '");
            put(buf, sizeof buf, &o, c->module);
            put(buf, sizeof buf, &o, "')");
        }
        put(buf, sizeof buf, &o, "\n");
        ssize_t w = write(STDERR_FILENO, buf, o);
        (void)w;
        cur = NULL; /* one report, even if the chained handler faults again */
        atomic_store_explicit(&in_op, NULL, memory_order_relaxed);
    }
    size_t i = 0;
    while (i < N_FATAL && fatal[i] != sig) i++;
    const struct sigaction *p = i < N_FATAL ? &previous[i] : NULL;
    if (p && (p->sa_flags & SA_SIGINFO) && p->sa_sigaction) {
        p->sa_sigaction(sig, si, uc);
        return;
    }
    if (p && !(p->sa_flags & SA_SIGINFO) && p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
        p->sa_handler(sig);
        return;
    }
    /* die of it as before: the default action, re-raised (a fault re-executes on return too) */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

static void install(void)
{
    const char *off = getenv("PEFT_NO_CRASH_HANDLER");
    if (off && *off && strcmp(off, "0") != 0) return;
    for (size_t i = 0; i < N_FATAL; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fatal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        if (sigaction(fatal[i], NULL, &previous[i]) != 0) continue;
        if (!(previous[i].sa_flags & SA_SIGINFO) && previous[i].sa_handler == SIG_IGN) continue;
        sigaction(fatal[i], &sa, NULL);
    }
}

void peft_plugin_crash_handlers_install(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);
}
