/* registry.c — the process-wide tuner plugin registry: finds <name>.so on the search path,
 * dlopens it (RTLD_NOW|RTLD_LOCAL), calls its peft_plugin_init with the host table, checks the
 * ABI and the vtable, and remembers it by name for the life of the process.
 *
 * Search path, in order: $PEFT_PLUGIN_PATH (colon-separated), PEFT_PLUGIN_BUILD_DIR,
 * PEFT_PLUGIN_INSTALL_DIR (both compiled in by the Makefile), "<dir of libpeft.so>/plugins",
 * "<dir of libpeft.so>/libpeft/plugins" (a relocated install). The installed library is built
 * without PEFT_PLUGIN_BUILD_DIR (mk/install.mk) and then searches only $PEFT_PLUGIN_PATH and
 * the install locations: a deleted or shared build tree cannot plant a plugin in it.
 * The first "<dir>/<name>.so" that exists is the one loaded; if it is refused, that refusal is
 * the answer (no silent fall-through to an older copy further down the path).
 *
 * A refused plugin is dlclose'd at once (it owns nothing yet). A registered plugin is never
 * dlclose'd: adapters and vtable pointers may outlive any caller. All state is guarded by one
 * mutex; plugin init functions run under it. */
#define _GNU_SOURCE
#include "core/tuner/registry.h"
#include "core/tuner/plugin_call.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct reg_entry {
    const peft_tuner_vtable *vt; /* plugin's own table, or a zero-padded copy if it was shorter */
    char *path;                  /* the file it came from (as given / as found) */
    char *real;                  /* realpath of that file, for "same file" checks */
    void *handle;                /* dlopen handle; never closed */
} reg_entry;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static reg_entry *reg;
static size_t n_reg, cap_reg;

/* does the vtable (of struct_size bytes) reach entry f? */
#define VT_HAS(vt, f) ((vt)->struct_size >= offsetof(peft_tuner_vtable, f) + sizeof((vt)->f))

/* does vt serve adapter_config.json peft_type t (its peft_type or one of also_serves)? */
static int serves(const peft_tuner_vtable *vt, const char *t)
{
    if (strcmp(vt->peft_type, t) == 0) return 1;
    if (!VT_HAS(vt, also_serves) || !vt->also_serves) return 0;
    for (const char *const *p = vt->also_serves; *p; p++)
        if (strcmp(*p, t) == 0) return 1;
    return 0;
}

static int is_name_token(const char *s)
{
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
    return 1;
}

/* a vtable that reaches the last prompt-learning entry (ABI 1.1) */
#define PROMPT_VTABLE_SIZE \
    (offsetof(peft_tuner_vtable, prompt_num_virtual) + sizeof(void (*)(void)))

static reg_entry *find_by_name(const char *name)
{
    for (size_t i = 0; i < n_reg; i++)
        if (strcmp(reg[i].vt->name, name) == 0) return &reg[i];
    return NULL;
}

/* the version header, then the size the vtable's ABI minor and kind need. 0 or -1 with err
 * naming plugin p. */
static int check_version(const peft_tuner_vtable *vt, const char *p, char *err, size_t errlen)
{
    /* the version header is the first 8 bytes of every ABI struct: read it before the size */
    if (vt->abi_major != PEFT_ABI_MAJOR) {
        snprintf(err, errlen, "plugin '%s': ABI major %u, host speaks %u", p,
                 (unsigned)vt->abi_major, (unsigned)PEFT_ABI_MAJOR);
        return -1;
    }
    if (vt->abi_minor > PEFT_ABI_MINOR) {
        snprintf(err, errlen, "plugin '%s' needs ABI %u.%u, host has %u.%u", p,
                 (unsigned)vt->abi_major, (unsigned)vt->abi_minor, (unsigned)PEFT_ABI_MAJOR,
                 (unsigned)PEFT_ABI_MINOR);
        return -1;
    }
    if (vt->struct_size < PEFT_TUNER_VTABLE_MIN_SIZE) {
        snprintf(err, errlen, "plugin '%s': vtable is %u bytes, at least %zu required", p,
                 (unsigned)vt->struct_size, (size_t)PEFT_TUNER_VTABLE_MIN_SIZE);
        return -1;
    }
    /* a prompt-learning method acts through the model's prompt hooks (ABI 1.1 entries), a
     * site method through inject/forward */
    const int prompt = (vt->caps & PEFT_CAP_PROMPT_LEARNING) != 0;
    if (prompt && vt->struct_size < PROMPT_VTABLE_SIZE) {
        snprintf(err, errlen,
                 "plugin '%s': caps has PEFT_CAP_PROMPT_LEARNING but the vtable is %u bytes; the "
                 "prompt-learning entries (ABI 1.1) need %zu",
                 p, (unsigned)vt->struct_size, (size_t)PROMPT_VTABLE_SIZE);
        return -1;
    }
    return 0;
}

/* the entries the method's kind needs (prompt learning, attention hook, site method) and those
 * that go together. 0 or -1 with err naming plugin p. */
static int check_entries(const peft_tuner_vtable *vt, const char *p, char *err, size_t errlen)
{
    const int prompt = (vt->caps & PEFT_CAP_PROMPT_LEARNING) != 0;
    /* ABI 1.4: an attention-hook method acts through attn_forward on its adapter-level state */
    const int attn = (vt->caps & PEFT_CAP_ATTENTION) != 0;
    if (attn && (!VT_HAS(vt, attn_forward) || !vt->attn_forward || !vt->adapter_init ||
                 !vt->adapter_destroy || prompt || (vt->caps & PEFT_CAP_MERGEABLE))) {
        snprintf(err, errlen, "plugin '%s': caps has PEFT_CAP_ATTENTION, which needs the vtable "
                              "entries 'attn_forward' (ABI 1.4), 'adapter_init' and "
                              "'adapter_destroy', and excludes PEFT_CAP_PROMPT_LEARNING and "
                              "PEFT_CAP_MERGEABLE", p);
        return -1;
    }
    /* ABI 1.3: inject_in may stand for inject; adapter-level state is for site methods */
    const int has_inject_in = VT_HAS(vt, inject_in) && vt->inject_in;
    if (!prompt && !attn && !vt->inject && !has_inject_in) {
        snprintf(err, errlen, "plugin '%s': required vtable entry 'inject' is NULL (and no "
                              "'inject_in')", p);
        return -1;
    }
    static const struct {
        size_t off;
        const char *what;
        int when; /* 0 always, 1 site methods only, 2 prompt learning only */
    } required[] = {
        {offsetof(peft_tuner_vtable, name), "name", 0},
        {offsetof(peft_tuner_vtable, peft_type), "peft_type", 0},
        {offsetof(peft_tuner_vtable, prefix), "prefix", 0},
        {offsetof(peft_tuner_vtable, config_parse), "config_parse", 0},
        {offsetof(peft_tuner_vtable, config_free), "config_free", 0},

        {offsetof(peft_tuner_vtable, forward), "forward", 1},
        {offsetof(peft_tuner_vtable, destroy), "destroy", 0},
        {offsetof(peft_tuner_vtable, state_dict), "state_dict", 0},
        {offsetof(peft_tuner_vtable, module_type), "module_type", 0},
        {offsetof(peft_tuner_vtable, prompt_init), "prompt_init", 2},
        {offsetof(peft_tuner_vtable, prompt_to_save), "prompt_to_save", 2},
        {offsetof(peft_tuner_vtable, prompt_load), "prompt_load", 2},
        {offsetof(peft_tuner_vtable, prompt_num_virtual), "prompt_num_virtual", 2},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if ((required[i].when == 1 && (prompt || attn)) || (required[i].when == 2 && !prompt))
            continue;
        void *ptr;
        memcpy(&ptr, (const char *)vt + required[i].off, sizeof ptr);
        if (!ptr) {
            snprintf(err, errlen, "plugin '%s': required vtable entry '%s' is NULL%s", p,
                     required[i].what,
                     required[i].when == 2 ? " (caps has PEFT_CAP_PROMPT_LEARNING)" : "");
            return -1;
        }
    }
    if (VT_HAS(vt, adapter_destroy) && vt->adapter_init && !vt->adapter_destroy) {
        snprintf(err, errlen, "plugin '%s': vtable entry 'adapter_init' is set but "
                              "'adapter_destroy' is NULL", p);
        return -1;
    }
    if (prompt && VT_HAS(vt, inject_in) && (vt->adapter_init || vt->inject_in)) {
        snprintf(err, errlen, "plugin '%s': a prompt-learning method (PEFT_CAP_PROMPT_LEARNING) "
                              "has no adapter_init / inject_in (its prompt_init is its adapter "
                              "state)", p);
        return -1;
    }
    if (VT_HAS(vt, also_serves) && vt->also_serves)
        for (const char *const *t = vt->also_serves; *t; t++)
            if (!**t) {
                snprintf(err, errlen, "plugin '%s': an entry of 'also_serves' is empty", p);
                return -1;
            }
    return 0;
}

/* the names, and the caps that each promise an entry (merge, pre_forward, the prompt hooks).
 * 0 or -1 with err naming plugin p. */
static int check_caps(const peft_tuner_vtable *vt, const char *p, char *err, size_t errlen)
{
    const int prompt = (vt->caps & PEFT_CAP_PROMPT_LEARNING) != 0;
    if (prompt && !vt->prompt_embeddings && !vt->prefix_kv) {
        snprintf(err, errlen,
                 "plugin '%s': caps has PEFT_CAP_PROMPT_LEARNING but both 'prompt_embeddings' and "
                 "'prefix_kv' are NULL (one is required)",
                 p);
        return -1;
    }
    if (prompt && (vt->caps & PEFT_CAP_MERGEABLE)) {
        snprintf(err, errlen,
                 "plugin '%s': a prompt-learning method (PEFT_CAP_PROMPT_LEARNING) cannot be "
                 "PEFT_CAP_MERGEABLE: it has no weights to fold into the base",
                 p);
        return -1;
    }
    if (!is_name_token(vt->name)) {
        snprintf(err, errlen, "plugin '%s': name '%s' is not a valid plugin name ([a-z0-9_]+)",
                 p, vt->name);
        return -1;
    }
    if (!*vt->peft_type || !*vt->prefix) {
        snprintf(err, errlen, "plugin '%s' (%s): peft_type and prefix must not be empty", p,
                 vt->name);
        return -1;
    }
    int mergeable = (vt->caps & PEFT_CAP_MERGEABLE) != 0;
    if (mergeable && !vt->merge) {
        snprintf(err, errlen,
                 "plugin '%s' (%s): caps has PEFT_CAP_MERGEABLE but vtable entry 'merge' is NULL",
                 p, vt->name);
        return -1;
    }
    if (!mergeable && vt->merge) {
        snprintf(err, errlen,
                 "plugin '%s' (%s): vtable entry 'merge' is set but caps lacks PEFT_CAP_MERGEABLE",
                 p, vt->name);
        return -1;
    }
    int transform = (vt->caps & PEFT_CAP_INPUT_TRANSFORM) != 0;
    if (transform && !vt->pre_forward) {
        snprintf(err, errlen,
                 "plugin '%s' (%s): caps has PEFT_CAP_INPUT_TRANSFORM but vtable entry "
                 "'pre_forward' is NULL",
                 p, vt->name);
        return -1;
    }
    if (!transform && vt->pre_forward) {
        snprintf(err, errlen,
                 "plugin '%s' (%s): vtable entry 'pre_forward' is set but caps lacks "
                 "PEFT_CAP_INPUT_TRANSFORM",
                 p, vt->name);
        return -1;
    }
    return 0;
}

int peft_registry_check_vtable(const peft_tuner_vtable *vt, const char *path, char *err,
                               size_t errlen)
{
    const char *p = path ? path : "(unknown)";
    if (!vt) {
        snprintf(err, errlen, "plugin '%s': init returned no vtable", p);
        return -1;
    }
    if (check_version(vt, p, err, errlen) || check_entries(vt, p, err, errlen) ||
        check_caps(vt, p, err, errlen))
        return -1;
    return 0;
}

/* dlopens path and runs its peft_plugin_init with the host table: the plugin's vtable (not yet
 * checked) and *handle, or NULL with err (nothing left open) */
static const peft_tuner_vtable *open_plugin(const char *path, void **handle, char *err, size_t errlen)
{
    /* dlopen searches the library path for a name without '/': make it a path */
    char local[PATH_MAX + 3];
    const char *open_path = path;
    if (!strchr(path, '/')) {
        snprintf(local, sizeof local, "./%s", path);
        open_path = local;
    }
    dlerror();
    void *h = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *de = dlerror();
        snprintf(err, errlen, "cannot load plugin '%s': %s", path, de ? de : "dlopen failed");
        return NULL;
    }
    dlerror();
    void *sym = dlsym(h, PEFT_PLUGIN_ENTRY);
    if (!sym) {
        snprintf(err, errlen, "plugin '%s' exports no '%s' symbol", path, PEFT_PLUGIN_ENTRY);
        dlclose(h);
        return NULL;
    }
    peft_plugin_init_fn init;
    memcpy(&init, &sym, sizeof init); /* object pointer -> function pointer (POSIX) */

    char perr[512] = "";
    peft_plugin_crash_handlers_install(); /* a plugin that faults is named (plugin_call.h) */
    peft_plugin_call pc;
    peft_plugin_call_enter(&pc, path, PEFT_PLUGIN_ENTRY, NULL, NULL);
    const peft_tuner_vtable *vt = init(peft_host_api_get(), perr, sizeof perr);
    peft_plugin_call_leave(&pc);
    perr[sizeof perr - 1] = 0;
    if (!vt) {
        snprintf(err, errlen, "plugin '%s' failed to initialise: %s", path,
                 perr[0] ? perr : "(it gave no reason)");
        dlclose(h);
        return NULL;
    }
    *handle = h;
    return vt;
}

/* Appends a checked vt (from handle h) to the registry; reg_mu held. The vtable kept (a
 * zero-padded copy when the plugin's is shorter than ours), or NULL with err (h closed). */
static const peft_tuner_vtable *register_locked(const peft_tuner_vtable *vt, void *h, const char *path,
                                                const char *real, char *err, size_t errlen)
{
    /* a vtable shorter than ours (an older minor) gets a zero-padded copy, so that entries
     * added later read as NULL (absent) instead of past the end of the plugin's struct */
    const peft_tuner_vtable *keep = vt;
    peft_tuner_vtable *copy = NULL;
    if (vt->struct_size < sizeof(peft_tuner_vtable)) {
        copy = calloc(1, sizeof *copy);
        if (!copy) goto oom;
        memcpy(copy, vt, vt->struct_size);
        keep = copy;
    }
    if (n_reg == cap_reg) {
        size_t nc = cap_reg ? cap_reg * 2 : 8;
        reg_entry *r = realloc(reg, nc * sizeof *r);
        if (!r) goto oom;
        reg = r;
        cap_reg = nc;
    }
    char *pcopy = strdup(path), *rcopy = strdup(real);
    if (!pcopy || !rcopy) {
        free(pcopy);
        free(rcopy);
        goto oom;
    }
    reg[n_reg++] = (reg_entry){keep, pcopy, rcopy, h};
    return keep;
oom:
    free(copy);
    snprintf(err, errlen, "plugin '%s': out of memory while registering it", path);
    dlclose(h);
    return NULL;
}

/* Loads path and registers it; reg_mu held. expect_name: the name the search looked for, or
 * NULL for an explicit file. */
static const peft_tuner_vtable *load_locked(const char *path, const char *expect_name, char *err,
                                            size_t errlen)
{
    if (access(path, F_OK) != 0) {
        snprintf(err, errlen, "plugin file '%s' does not exist", path);
        return NULL;
    }
    char real[PATH_MAX];
    if (!realpath(path, real)) snprintf(real, sizeof real, "%s", path);

    /* the same file again: answer from the registry without running its init twice */
    for (size_t i = 0; i < n_reg; i++) {
        if (strcmp(reg[i].real, real) == 0) {
            if (expect_name && strcmp(reg[i].vt->name, expect_name) != 0) {
                snprintf(err, errlen, "plugin '%s' registers the name '%s', not '%s'", path,
                         reg[i].vt->name, expect_name);
                return NULL;
            }
            return reg[i].vt;
        }
    }

    void *h = NULL;
    const peft_tuner_vtable *vt = open_plugin(path, &h, err, errlen);
    if (!vt) return NULL;
    if (peft_registry_check_vtable(vt, path, err, errlen) != 0) {
        dlclose(h);
        return NULL;
    }
    if (expect_name && strcmp(vt->name, expect_name) != 0) {
        snprintf(err, errlen, "plugin '%s' registers the name '%s', not '%s'", path, vt->name,
                 expect_name);
        dlclose(h);
        return NULL;
    }
    reg_entry *dup = find_by_name(vt->name);
    if (dup) {
        if (dup->vt == vt || dup->handle == h) { /* the same object reached by another path */
            dlclose(h);                          /* drops only the extra reference */
            return dup->vt;
        }
        snprintf(err, errlen, "plugin '%s' registers the name '%s', already registered by '%s'",
                 path, vt->name, dup->path);
        dlclose(h);
        return NULL;
    }
    return register_locked(vt, h, path, real, err, errlen);
}

const peft_tuner_vtable *peft_registry_load_file(const char *path, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!path || !*path) {
        snprintf(err, errlen, "plugin path is empty");
        return NULL;
    }
    pthread_mutex_lock(&reg_mu);
    const peft_tuner_vtable *vt = load_locked(path, NULL, err, errlen);
    pthread_mutex_unlock(&reg_mu);
    return vt;
}

/* ---- search path ---- */

typedef struct {
    char **dir;
    size_t n, cap;
} dirlist;

static void dl_add(dirlist *l, const char *d, size_t len)
{
    if (!len) return;
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->dir[i]) == len && memcmp(l->dir[i], d, len) == 0) return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        char **p = realloc(l->dir, nc * sizeof *p);
        if (!p) return;
        l->dir = p;
        l->cap = nc;
    }
    char *s = strndup(d, len);
    if (s) l->dir[l->n++] = s;
}

static void dl_free(dirlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->dir[i]);
    free(l->dir);
}

static void search_dirs(dirlist *l)
{
    const char *env = getenv("PEFT_PLUGIN_PATH");
    if (env) {
        const char *s = env;
        for (;;) {
            const char *c = strchr(s, ':');
            size_t len = c ? (size_t)(c - s) : strlen(s);
            dl_add(l, s, len);
            if (!c) break;
            s = c + 1;
        }
    }
#ifdef PEFT_PLUGIN_BUILD_DIR
    dl_add(l, PEFT_PLUGIN_BUILD_DIR, strlen(PEFT_PLUGIN_BUILD_DIR));
#endif
#ifdef PEFT_PLUGIN_INSTALL_DIR
    dl_add(l, PEFT_PLUGIN_INSTALL_DIR, strlen(PEFT_PLUGIN_INSTALL_DIR));
#endif
    Dl_info info;
    if (dladdr((void *)&peft_registry_get, &info) && info.dli_fname) {
        const char *f = info.dli_fname;
        const char *slash = strrchr(f, '/');
        char buf[PATH_MAX];
        int n;
#ifdef PEFT_PLUGIN_BUILD_DIR /* the build tree's library only: an installed one searches only
                               install locations (and $PEFT_PLUGIN_PATH) */
        if (slash)
            n = snprintf(buf, sizeof buf, "%.*s/plugins", (int)(slash - f), f);
        else
            n = snprintf(buf, sizeof buf, "plugins");
        if (n > 0 && (size_t)n < sizeof buf) dl_add(l, buf, (size_t)n);
#endif
        /* an installed tree moved elsewhere (or staged with DESTDIR): <libdir>/libpeft/plugins */
        if (slash) n = snprintf(buf, sizeof buf, "%.*s/libpeft/plugins", (int)(slash - f), f);
        if (slash && n > 0 && (size_t)n < sizeof buf) dl_add(l, buf, (size_t)n);
    }
}

/* reg_mu held */
static const peft_tuner_vtable *get_locked(const char *name, char *err, size_t errlen)
{
    reg_entry *e = find_by_name(name);
    if (e) return e->vt;

    dirlist l = {0};
    search_dirs(&l);
    const peft_tuner_vtable *vt = NULL;
    for (size_t i = 0; i < l.n; i++) {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof path, "%s/%s.so", l.dir[i], name);
        if (n < 0 || (size_t)n >= sizeof path) continue;
        if (access(path, F_OK) == 0) {
            vt = load_locked(path, name, err, errlen);
            dl_free(&l);
            return vt;
        }
    }
    /* not found: list where we looked */
    size_t off = (size_t)snprintf(err, errlen, "plugin '%s' not found; searched: ", name);
    if (l.n == 0 && off < errlen) off += (size_t)snprintf(err + off, errlen - off, "(nothing)");
    for (size_t i = 0; i < l.n && off < errlen; i++)
        off += (size_t)snprintf(err + off, errlen - off, "%s%s", i ? ", " : "", l.dir[i]);
    dl_free(&l);
    return NULL;
}

const peft_tuner_vtable *peft_registry_get(const char *name, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!is_name_token(name)) {
        snprintf(err, errlen, "invalid plugin name '%s' (expected [a-z0-9_]+)",
                 name ? name : "(null)");
        return NULL;
    }
    pthread_mutex_lock(&reg_mu);
    const peft_tuner_vtable *vt = get_locked(name, err, errlen);
    pthread_mutex_unlock(&reg_mu);
    return vt;
}

/* a registered plugin serving peft_type, or NULL; reg_mu held */
static const peft_tuner_vtable *find_serving(const char *peft_type)
{
    for (size_t i = 0; i < n_reg; i++)
        if (serves(reg[i].vt, peft_type)) return reg[i].vt;
    return NULL;
}

/* loads every not yet loaded "<dir>/<name>.so" of the search path, in order (earlier
 * directories win a name), until one serves peft_type; refusals are skipped (the caller names
 * the type when nothing serves it). reg_mu held. */
static const peft_tuner_vtable *scan_for_type(const char *peft_type)
{
    dirlist l = {0};
    search_dirs(&l);
    const peft_tuner_vtable *found = NULL;
    for (size_t i = 0; i < l.n && !found; i++) {
        DIR *d = opendir(l.dir[i]);
        if (!d) continue;
        struct dirent *e;
        while (!found && (e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(len - 3), e->d_name);
            if (!is_name_token(name) || find_by_name(name)) continue;
            char path[PATH_MAX], ignored[512];
            int n = snprintf(path, sizeof path, "%s/%s", l.dir[i], e->d_name);
            if (n < 0 || (size_t)n >= sizeof path) continue;
            /* a name already served by an earlier directory's file stays that file's */
            int shadowed = 0;
            for (size_t k = 0; k < i && !shadowed; k++) {
                char p2[PATH_MAX];
                int n2 = snprintf(p2, sizeof p2, "%s/%s", l.dir[k], e->d_name);
                shadowed = n2 > 0 && (size_t)n2 < sizeof p2 && access(p2, F_OK) == 0;
            }
            if (shadowed) continue;
            const peft_tuner_vtable *vt = load_locked(path, name, ignored, sizeof ignored);
            if (vt && serves(vt, peft_type)) found = vt;
        }
        closedir(d);
    }
    dl_free(&l);
    return found;
}

const peft_tuner_vtable *peft_registry_get_by_type(const char *peft_type, char *err,
                                                   size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!peft_type || !*peft_type) {
        snprintf(err, errlen, "empty peft_type");
        return NULL;
    }
    pthread_mutex_lock(&reg_mu);
    /* a plugin already registered (maybe from an explicit file) that serves this type */
    const peft_tuner_vtable *vt = find_serving(peft_type);
    pthread_mutex_unlock(&reg_mu);
    if (vt) return vt;

    /* the core knows no method by name: first the plugin named like the type in lower case
     * (LORA -> lora.so), then whichever plugin on the search path declares the type */
    char name[64], inner[1024] = "";
    size_t n = strlen(peft_type);
    int plain = n < sizeof name;
    for (size_t i = 0; plain && i < n; i++) name[i] = (char)tolower((unsigned char)peft_type[i]);
    if (plain) name[n] = 0;
    if (plain && is_name_token(name)) {
        vt = peft_registry_get(name, inner, sizeof inner);
        if (vt && serves(vt, peft_type)) return vt;
        if (vt) snprintf(inner, sizeof inner, "plugin '%s' declares peft_type '%s'", vt->name, vt->peft_type);
    }
    pthread_mutex_lock(&reg_mu);
    vt = scan_for_type(peft_type);
    pthread_mutex_unlock(&reg_mu);
    if (vt) return vt;
    if (inner[0] && !strstr(inner, "not found"))
        snprintf(err, errlen, "peft_type '%s': %s", peft_type, inner);
    else
        snprintf(err, errlen, "unknown peft_type '%s': no plugin on the search path serves it%s%s",
                 peft_type, inner[0] ? " (" : "", inner[0] ? inner : "");
    if (inner[0] && !strstr(inner, "not found")) return NULL;
    if (inner[0]) snprintf(err + strlen(err), errlen - strlen(err), ")");
    return NULL;
}
