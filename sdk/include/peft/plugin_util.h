/* peft/plugin_util.h — header-only helpers for tuner plugins: the code every plugin used to write
 * for itself (error messages, the host-table check of peft_plugin_init, state-dict names,
 * trainable parameters and their init, the checks of a linear site, PEFT's fan_in_fan_out
 * rewrite and rank/alpha patterns, merge arguments).
 *
 * Everything is static inline over the host table (peft/plugin.h): a plugin still links nothing
 * of libpeft, and nothing here is part of the ABI (no struct of peft/plugin.h changes; the small
 * structs below live only inside a plugin). Companions: peft/plugin_config.h validates
 * adapter_config.json fields, peft/plugin_kernels.h holds GEMM wrappers and small kernels.
 *
 * Names: functions peft_pu_*, macros PEFT_PU_* ("plugin util"). A helper that can fail returns
 * 0, or -1 with a message in err (errlen bytes; err may be NULL). Messages start with the
 * plugin's name ("lora: ...") and name the module, field or entry and what was expected.
 * Strings and tensors a helper returns are the caller's, freed with host->free /
 * host->tensor_free. Every host entry a helper calls is one that peft_pu_host_check verifies
 * (PEFT_PU_BASE_NEEDS), unless the helper says otherwise.
 */
#ifndef PEFT_PLUGIN_UTIL_H
#define PEFT_PLUGIN_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "peft/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PEFT_PU_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PEFT_PU_PRINTF(f, a)
#endif

/* number of elements of a true array */
#define PEFT_PU_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors and strings ------------------------------------------------------------------- */

/* printf into err (errlen bytes, always terminated); nothing when err is NULL or errlen 0 */
static inline void peft_pu_errf(char *err, size_t errlen, const char *fmt, ...)
    PEFT_PU_PRINTF(3, 4);
static inline void peft_pu_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* a + b + c (NULL parts count as "") in a new host->alloc'd string; NULL on OOM */
static inline char *peft_pu_concat(const peft_host_api *host, const char *a, const char *b,
                                   const char *c)
{
    a = a ? a : "";
    b = b ? b : "";
    c = c ? c : "";
    const size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *p = (char *)host->alloc(la + lb + lc + 1);
    if (!p) return NULL;
    memcpy(p, a, la);
    memcpy(p + la, b, lb);
    memcpy(p + la + lb, c, lc + 1);
    return p;
}

/* a host->alloc'd copy of s; NULL on OOM */
static inline char *peft_pu_strdup(const peft_host_api *host, const char *s)
{
    return peft_pu_concat(host, s, NULL, NULL);
}

/* PEFT's two names of one adapter tensor (peft_param_ref): *saved = leaf + suffix, the key
 * suffix in adapter_model.safetensors ("lora_A.weight", "hada_w1_a"); *memory = leaf + "." +
 * adapter + suffix, the in-memory parameter name ("lora_A.default.weight"). suffix may be NULL
 * (""). Both host->alloc'd, the caller's; 0, or -1 on OOM with whichever was made still set
 * (NULL or a string to free). */
static inline int peft_pu_param_names(const peft_host_api *host, const char *leaf,
                                      const char *suffix, const char *adapter, char **saved,
                                      char **memory)
{
    *saved = peft_pu_concat(host, leaf, suffix, NULL);
    char *mid = peft_pu_concat(host, leaf, ".", adapter);
    *memory = mid ? peft_pu_concat(host, mid, suffix, NULL) : NULL;
    host->free(mid);
    return *saved && *memory ? 0 : -1;
}

/* "\"a\", \"b\", \"c\"" from a NULL-terminated list, into buf */
static inline const char *peft_pu_quoted_list(const char *const *values, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; values[i] && len < n; i++) {
        int w = snprintf(buf + len, n - len, "%s\"%s\"", i ? ", " : "", values[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
    return buf;
}

/* a 2-d tensor's shape as "[rows, cols]", anything else as "a <n>-d tensor", into buf */
static inline const char *peft_pu_shape_str(const peft_tensor *t, char *buf, size_t n)
{
    if (t->ndim == 2)
        snprintf(buf, n, "[%lld, %lld]", (long long)t->shape[0], (long long)t->shape[1]);
    else
        snprintf(buf, n, "a %d-d tensor", (int)t->ndim);
    return buf;
}

/* ---- the host table ----------------------------------------------------------------------- */

/* One host entry a plugin calls: its name (for the message) and where it sits in the table. */
typedef struct peft_pu_need {
    const char *name;
    size_t offset;
} peft_pu_need;

#define PEFT_PU_NEED(entry) {#entry, offsetof(peft_host_api, entry)}

/* The ABI 1.0 entries the helpers of plugin_util.h and plugin_config.h call: memory, tensors,
 * the graph's arena and tape, every cfg getter and setter (but cfg_pattern_real), the RNG and
 * warn. peft_pu_host_check always requires them. */
#define PEFT_PU_BASE_NEEDS                                                                        \
    PEFT_PU_NEED(alloc), PEFT_PU_NEED(free), PEFT_PU_NEED(tensor_new), PEFT_PU_NEED(tensor_free), \
    PEFT_PU_NEED(graph_tensor), PEFT_PU_NEED(graph_recording), PEFT_PU_NEED(tape_push),           \
    PEFT_PU_NEED(grad_of), PEFT_PU_NEED(cfg_type), PEFT_PU_NEED(cfg_bool), PEFT_PU_NEED(cfg_int), \
    PEFT_PU_NEED(cfg_real), PEFT_PU_NEED(cfg_str), PEFT_PU_NEED(cfg_list_len),                    \
    PEFT_PU_NEED(cfg_list_str), PEFT_PU_NEED(cfg_list_int), PEFT_PU_NEED(cfg_set_bool),           \
    PEFT_PU_NEED(cfg_set_int), PEFT_PU_NEED(cfg_set_real), PEFT_PU_NEED(cfg_set_str),             \
    PEFT_PU_NEED(cfg_set_json), PEFT_PU_NEED(rng_uniform), PEFT_PU_NEED(rng_normal),              \
    PEFT_PU_NEED(warn)

/* 1 when the entry at `offset` lies inside host's table and is set */
static inline int peft_pu_host_entry(const peft_host_api *host, size_t offset)
{
    void (*fn)(void) = NULL;
    if (!host || host->struct_size < offset + sizeof fn) return 0;
    memcpy(&fn, (const char *)host + offset, sizeof fn);
    return fn != NULL;
}

/* An entry of a later ABI minor (e.g. regex_fullmatch, 1.2) that a plugin uses only when the
 * host has it: the host speaks at least 1.minor, its table reaches the entry and it is set. */
#define PEFT_PU_HOST_HAS(host, entry, minor)                                                      \
    ((host)->abi_minor >= (minor) && peft_pu_host_entry((host), offsetof(peft_host_api, entry)))

/* What peft_plugin_init checks before keeping the table: host given, same ABI major, minor at
 * least min_minor, the table long enough for every entry of PEFT_PU_BASE_NEEDS and need[n]
 * (need may be NULL when n is 0), and each of those entries set. plugin names the plugin in
 * the messages ("lora: host API entry 'sgemm' is NULL"). 0 or -1 with err set. */
static inline int peft_pu_host_check(const peft_host_api *host, const char *plugin,
                                     unsigned min_minor, const peft_pu_need *need, size_t n,
                                     char *err, size_t errlen)
{
    static const peft_pu_need base[] = {PEFT_PU_BASE_NEEDS};
    if (!host) {
        peft_pu_errf(err, errlen, "%s: no host API table given", plugin);
        return -1;
    }
    if (host->abi_major != PEFT_ABI_MAJOR) {
        peft_pu_errf(err, errlen, "%s: host ABI major %u, plugin built for %d", plugin,
                     (unsigned)host->abi_major, PEFT_ABI_MAJOR);
        return -1;
    }
    if (host->abi_minor < min_minor) {
        peft_pu_errf(err, errlen, "%s: host ABI %u.%u is older than %d.%u, which this plugin "
                     "needs", plugin, (unsigned)host->abi_major, (unsigned)host->abi_minor,
                     PEFT_ABI_MAJOR, min_minor);
        return -1;
    }
    size_t size = 0;
    for (size_t i = 0; i < PEFT_PU_COUNT(base) + n; i++) {
        const peft_pu_need *e = i < PEFT_PU_COUNT(base) ? &base[i] : &need[i - PEFT_PU_COUNT(base)];
        if (e->offset + sizeof(void (*)(void)) > size) size = e->offset + sizeof(void (*)(void));
    }
    if (host->struct_size < size) {
        peft_pu_errf(err, errlen, "%s: host API table too short (%u bytes, need %zu)", plugin,
                     (unsigned)host->struct_size, size);
        return -1;
    }
    for (size_t i = 0; i < PEFT_PU_COUNT(base) + n; i++) {
        const peft_pu_need *e = i < PEFT_PU_COUNT(base) ? &base[i] : &need[i - PEFT_PU_COUNT(base)];
        if (!peft_pu_host_entry(host, e->offset)) {
            peft_pu_errf(err, errlen, "%s: host API entry '%s' is NULL", plugin, e->name);
            return -1;
        }
    }
    return 0;
}

/* The first three fields of every vtable: put first in a designated initializer. */
#define PEFT_PU_VTABLE_HEADER                                                                     \
    .struct_size = sizeof(peft_tuner_vtable), .abi_major = PEFT_ABI_MAJOR,                        \
    .abi_minor = PEFT_ABI_MINOR

/* ---- trainable parameters ----------------------------------------------------------------- */

/* a zeroed f32 tensor made trainable (requires_grad, PEFT_T_PARAM); NULL on OOM */
static inline peft_tensor *peft_pu_param(const peft_host_api *host, int ndim,
                                         const int64_t *shape)
{
    peft_tensor *t = host->tensor_new(ndim, shape);
    if (t) {
        t->requires_grad = 1;
        t->flags |= PEFT_T_PARAM;
    }
    return t;
}

/* the same, (rows, cols) */
static inline peft_tensor *peft_pu_param2(const peft_host_api *host, int64_t rows, int64_t cols)
{
    const int64_t shape[2] = {rows, cols};
    return peft_pu_param(host, 2, shape);
}

/* t (numel) ~ U(-bound, bound), drawn in order from rng (torch's kaiming_uniform_ and
 * nn.Linear's init are this with bound 1/sqrt(fan_in)) */
static inline void peft_pu_fill_uniform(const peft_host_api *host, peft_tensor *t, double bound,
                                        peft_rng *rng)
{
    float *p = peft_f32(t);
    for (int64_t i = 0; i < t->numel; i++)
        p[i] = (float)(bound * (2.0 * host->rng_uniform(rng) - 1.0));
}

/* t (numel) ~ N(0, std^2), drawn in order from rng */
static inline void peft_pu_fill_normal(const peft_host_api *host, peft_tensor *t, double std,
                                       peft_rng *rng)
{
    float *p = peft_f32(t);
    for (int64_t i = 0; i < t->numel; i++) p[i] = (float)(std * host->rng_normal(rng));
}

/* host->tensor_free on each non-NULL ts[i] (a state's tensors, in destroy) */
static inline void peft_pu_free_tensors(const peft_host_api *host, peft_tensor *const *ts, int n)
{
    for (int i = 0; i < n; i++)
        if (ts[i]) host->tensor_free(ts[i]);
}

/* host->free on each of strs[n] (NULL ok) */
static inline void peft_pu_free_strings(const peft_host_api *host, char *const *strs, int n)
{
    for (int i = 0; i < n; i++) host->free(strs[i]);
}

/* copies the first min(n, max) of refs into out (a vtable state_dict) and returns n, the count
 * it has, as snprintf (ABI 1.3: the host asks again with room for all when n > max) */
static inline int peft_pu_state_refs(peft_param_ref *out, int max, const peft_param_ref *refs,
                                     int n)
{
    for (int i = 0; out && i < n && i < max; i++) out[i] = refs[i];
    return n;
}

/* the integer config field key, or def when it is missing or not an integer */
static inline int64_t peft_pu_cfg_int_or(const peft_host_api *host, const peft_cfg *cfg,
                                         const char *key, int64_t def)
{
    int64_t v;
    return host->cfg_int(cfg, key, &v) == 0 ? v : def;
}

/* ---- linear sites ------------------------------------------------------------------------- */

/* the vtable inject's arguments are all given ("<plugin> inject: missing argument") */
static inline int peft_pu_inject_args(const char *plugin, const void *parsed, const peft_cfg *cfg,
                                      const peft_site_info *site, const char *adapter_name,
                                      const peft_rng *rng, char *err, size_t errlen)
{
    if (parsed && cfg && site && adapter_name && rng) return 0;
    peft_pu_errf(err, errlen, "%s inject: missing argument", plugin);
    return -1;
}

/* the site's module name, "?" when it has none (for messages) */
static inline const char *peft_pu_site_name(const peft_site_info *site)
{
    return site && site->name ? site->name : "?";
}

/* a site kind's name for messages: "linear (torch.nn.Linear)", "embedding (torch.nn.Embedding)" */
static inline const char *peft_pu_site_kind_name(int kind)
{
    switch (kind) {
    case PEFT_SITE_LINEAR: return "linear (torch.nn.Linear)";
    case PEFT_SITE_CONV1D: return "Conv1D (transformers Conv1D)";
    case PEFT_SITE_EMBEDDING: return "embedding (torch.nn.Embedding)";
    case PEFT_SITE_NORM: return "norm (LayerNorm / RMSNorm)";
    default: return "unknown";
    }
}

/* A site the method can take: nn.Linear, or also GPT-2's Conv1D when conv1d_ok, with positive
 * in/out features. method is the method's display name in the message ("LoRA", "(IA)^3"). */
static inline int peft_pu_site_check(const peft_site_info *site, const char *plugin,
                                     const char *method, int conv1d_ok, char *err, size_t errlen)
{
    const char *name = peft_pu_site_name(site);
    if (site->kind != PEFT_SITE_LINEAR && !(conv1d_ok && site->kind == PEFT_SITE_CONV1D)) {
        peft_pu_errf(err, errlen, "%s: target module '%s' is a%s %s site (kind %d), which %s "
                     "does not support; supported: torch.nn.Linear%s", plugin, name,
                     site->kind == PEFT_SITE_EMBEDDING ? "n" : "",
                     peft_pu_site_kind_name(site->kind), (int)site->kind, method,
                     conv1d_ok ? ", transformers Conv1D" : "");
        return -1;
    }
    if (site->in_features <= 0 || site->out_features <= 0) {
        peft_pu_errf(err, errlen, "%s: target module '%s' has invalid shape in=%lld out=%lld",
                     plugin, name, (long long)site->in_features, (long long)site->out_features);
        return -1;
    }
    return 0;
}

#define PEFT_PU_MSG_CONV1D_FIFO "fan_in_fan_out is set to False but the target module is " \
                                "`Conv1D`. Setting fan_in_fan_out to True."
#define PEFT_PU_MSG_LINEAR_FIFO "fan_in_fan_out is set to True but the target module is " \
                                "`torch.nn.Linear`. Setting fan_in_fan_out to False."

/* PEFT's dispatch (LoRA, IA3): fan_in_fan_out follows the module type. A Conv1D site with
 * fan_in_fan_out false, or an nn.Linear one with it true, gets PEFT's warning and the field
 * rewritten in cfg (so the saved config says what was used). */
static inline void peft_pu_fan_in_fan_out(const peft_host_api *host, peft_cfg *cfg,
                                          const peft_site_info *site)
{
    int fifo = 0;
    if (host->cfg_bool(cfg, "fan_in_fan_out", &fifo) != 0) fifo = 0;
    if (site->kind == PEFT_SITE_CONV1D && !fifo) {
        host->warn(PEFT_PU_MSG_CONV1D_FIFO);
        host->cfg_set_bool(cfg, "fan_in_fan_out", 1);
    } else if (site->kind == PEFT_SITE_LINEAR && fifo) {
        host->warn(PEFT_PU_MSG_LINEAR_FIFO);
        host->cfg_set_bool(cfg, "fan_in_fan_out", 0);
    }
}

/* the site is stored (in, out): GPT-2's Conv1D, or fan_in_fan_out */
static inline int peft_pu_in_out(const peft_site_info *site)
{
    return site->kind == PEFT_SITE_CONV1D || site->fan_in_fan_out;
}

/* One pattern dict lookup: 1 found (*out set), 0 not, -1 when the host lacks the entry. */
static inline int peft_pu_pattern(const peft_host_api *host, const peft_cfg *cfg,
                                  const char *dict_key, const char *module, int lycoris,
                                  double *out)
{
    if (!lycoris) return host->cfg_pattern_real(cfg, dict_key, module, out) ? 1 : 0;
    if (!PEFT_PU_HOST_HAS(host, cfg_pattern_real_lycoris, 2)) return -1;
    return host->cfg_pattern_real_lycoris(cfg, dict_key, module, out) ? 1 : 0;
}

/* PEFT's per-module rank and alpha: *r from rank_pattern (a positive integer) and, when alpha
 * is not NULL, *alpha from alpha_pattern (finite), where a key matches the module; else they
 * keep the values passed in. The key rule is LoRA's ".*\.key$" (host->cfg_pattern_real, which
 * the caller's host check must list) or, lycoris = 1, the LyCORIS tuners' "(.*\.)?key$"
 * (host->cfg_pattern_real_lycoris, ABI 1.2: an older host gets an error). */
static inline int peft_pu_rank_alpha(const peft_host_api *host, const peft_cfg *cfg,
                                     const char *plugin, const char *module, int lycoris,
                                     int64_t *r, double *alpha, char *err, size_t errlen)
{
    double v = 0;
    int found = peft_pu_pattern(host, cfg, "rank_pattern", module, lycoris, &v);
    if (found < 0) {
        peft_pu_errf(err, errlen, "%s config: rank_pattern and alpha_pattern need the host's "
                     "cfg_pattern_real_lycoris (ABI 1.2); this host speaks %u.%u", plugin,
                     (unsigned)host->abi_major, (unsigned)host->abi_minor);
        return -1;
    }
    if (found) {
        if (!(v >= 1.0) || v != floor(v) || v > 1e9) {
            peft_pu_errf(err, errlen, "%s config: rank_pattern value for '%s' must be a positive "
                         "integer, got %g", plugin, module, v);
            return -1;
        }
        *r = (int64_t)v;
    }
    if (alpha && peft_pu_pattern(host, cfg, "alpha_pattern", module, lycoris, &v) > 0) {
        if (!isfinite(v)) {
            peft_pu_errf(err, errlen, "%s config: alpha_pattern value for '%s' must be a finite "
                         "number, got %g", plugin, module, v);
            return -1;
        }
        *alpha = v;
    }
    return 0;
}

/* the vtable merge's arguments: state, site and weight given, sign +1 or -1 */
static inline int peft_pu_merge_args(const char *plugin, const void *state,
                                     const peft_site_info *site, const float *weight, int sign,
                                     char *err, size_t errlen)
{
    if (!state || !site || !weight) {
        peft_pu_errf(err, errlen, "%s merge: missing state, site or weight", plugin);
        return -1;
    }
    if (sign != 1 && sign != -1) {
        peft_pu_errf(err, errlen, "%s merge: sign must be +1 or -1, got %d", plugin, sign);
        return -1;
    }
    return 0;
}

/* the site still has the shape the adapter was made for (in, out) */
static inline int peft_pu_merge_shape(const char *plugin, const peft_site_info *site, int64_t in,
                                      int64_t out, char *err, size_t errlen)
{
    if (site->in_features == in && site->out_features == out) return 0;
    peft_pu_errf(err, errlen, "%s merge: '%s' is (in=%lld, out=%lld) but the adapter was made "
                 "for (in=%lld, out=%lld)", plugin, peft_pu_site_name(site),
                 (long long)site->in_features, (long long)site->out_features, (long long)in,
                 (long long)out);
    return -1;
}

#ifdef __cplusplus
}
#endif
#endif
