/* peft_model.c — PeftModel: creating it, adding, switching and deleting adapters, trainable
 * parameters and their counts, and the forward pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/io/cfg.h"
#include "core/ops/blas_check.h"
#include "core/peft/internal.h"
#include "core/tuner/plugin_call.h"
#include "core/tuner/registry.h"

/* PEFT's prompt-learning PeftModel holds the transformers model directly as base_model (no
 * tuner model in between): its modules_to_save keys read "base_model.classifier.weight" */
const char *peft_key_prefix(const peft_model *m)
{
    return m->bare ? "" : peft_model_is_prompt(m) ? "base_model." : "base_model.model.";
}

const char *peft_saved_prefix(const peft_model *m, const peft_adapter *owner)
{
    if (m->mixed && !m->bare && peft_adapter_is_prompt(owner)) return "base_model.";
    return peft_key_prefix(m);
}

peft_ctx *peft_model_ctx(peft_model *m) { return m->ctx; }
int peft_model_is_mixed(const peft_model *m) { return m->mixed; }
int peft_adapter_active(const peft_model *m, int i)
{
    return i >= 0 && i < m->n_adapters && m->adapters[i]->active;
}
peft_base_model *peft_get_base_model(peft_model *m) { return m->base; }
int peft_adapter_count(const peft_model *m) { return m->n_adapters; }
const char *peft_adapter_name(const peft_model *m, int i)
{
    return i >= 0 && i < m->n_adapters ? m->adapters[i]->name : NULL;
}

peft_adapter *peft_find_adapter(const peft_model *m, const char *name)
{
    for (int i = 0; i < m->n_adapters; i++)
        if (strcmp(m->adapters[i]->name, name) == 0) return m->adapters[i];
    return NULL;
}

int peft_load_base_model(peft_ctx *ctx, const char *dir, peft_base_model **out)
{
    return peft_load_base_model_ex(ctx, dir, NULL, out);
}

int peft_load_base_model_ex(peft_ctx *ctx, const char *dir, const peft_load_options *opts,
                            peft_base_model **out)
{
    char err[1024] = "";
    if (!out) return peft_set_error(ctx, PEFT_EINVAL, "peft_load_base_model: out is NULL");
    ops_blas_check(); /* a warning when OpenBLAS runs pre-AVX kernels on an AVX2+ CPU */
    int rc = peft_model_load_dir(dir, opts, out, err, sizeof err);
    if (rc) return peft_set_error(ctx, rc, "%s", err);
    return PEFT_OK;
}

int peft_load_base_model_meta(peft_ctx *ctx, const char *config_path, const char *task_type,
                              peft_base_model **out)
{
    char err[1024] = "";
    if (!out) return peft_set_error(ctx, PEFT_EINVAL, "peft_load_base_model_meta: out is NULL");
    int rc = peft_model_load_config(config_path, task_type, out, err, sizeof err);
    if (rc) return peft_set_error(ctx, rc, "%s", err);
    return PEFT_OK;
}

static int valid_adapter_name(const char *s)
{
    if (!s || !*s || strlen(s) > 128) return 0;
    for (; *s; s++)
        if (*s == '/' || *s == '.' || *s == '\\' || (unsigned char)*s < 32) return 0;
    return 1;
}

static int add_record(peft_model *m, peft_adapter *a)
{
    if (m->n_adapters == m->cap_adapters) {
        int cap = m->cap_adapters ? m->cap_adapters * 2 : 4;
        peft_adapter **p = realloc(m->adapters, (size_t)cap * sizeof *p);
        if (!p) return -1;
        m->adapters = p;
        m->cap_adapters = cap;
    }
    m->adapters[m->n_adapters++] = a;
    return 0;
}

/* a new adapter from config text, injected and registered; not yet active */
int peft_add_adapter_from(peft_model *m, const char *name, const char *config_json,
                          const char *source, peft_adapter **out)
{
    if (!name) name = "default";
    if (!valid_adapter_name(name))
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "invalid adapter name '%s': use a non-empty name without '.', '/'",
                              name);
    if (peft_find_adapter(m, name))
        return peft_set_error(m->ctx, PEFT_EINVAL, "an adapter named '%s' already exists", name);
    peft_adapter *a = peft_adapter_create(m, name, config_json, source);
    if (!a) return PEFT_EINVAL;
    if (!m->mixed && m->n_adapters > 0 && m->adapters[0]->vt != a->vt) {
        peft_set_error(m->ctx, PEFT_EINVAL,
                       "adapter '%s' is %s but adapter '%s' is %s: adapters of different methods "
                       "need a mixed model (peft_get_peft_model(..., mixed=1))",
                       name, a->vt->peft_type, m->adapters[0]->name, m->adapters[0]->vt->peft_type);
        peft_adapter_free(a);
        return PEFT_EINVAL;
    }
    int rc = peft_adapter_inject(m, a);
    if (rc) {
        peft_adapter_free(a);
        return rc;
    }
    if (add_record(m, a)) {
        peft_adapter_uninject(m, a);
        peft_adapter_free(a);
        return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    }
    if (out) *out = a;
    return PEFT_OK;
}

static int new_model(peft_ctx *ctx, peft_base_model *base, int mixed, int bare, peft_model **out)
{
    peft_model *m = calloc(1, sizeof *m);
    if (!m) return peft_set_error(ctx, PEFT_ENOMEM, "out of memory");
    m->ctx = ctx;
    m->base = base;
    m->mixed = mixed;
    m->bare = bare;
    *out = m;
    return PEFT_OK;
}

static int wrap(peft_ctx *ctx, peft_base_model *base, const char *config_json, const char *name,
                int mixed, int bare, peft_model **out)
{
    if (!base) return peft_set_error(ctx, PEFT_EINVAL, "no base model");
    peft_model *m = NULL;
    int rc = new_model(ctx, base, mixed, bare, &m);
    if (rc) return rc;
    peft_adapter *a;
    rc = peft_add_adapter_from(m, name, config_json, "adapter config", &a);
    if (rc) {
        base->attn_hook = NULL;
        m->base = NULL; /* the caller keeps the base on failure */
        peft_model_free(m);
        return rc;
    }
    a->active = 1;
    peft_adapter_set_trainable(m, a, 1);
    peft_prompt_apply(m); /* one active adapter: cannot fail */
    *out = m;
    return PEFT_OK;
}

int peft_get_peft_model(peft_ctx *ctx, peft_base_model *base, const char *config_json,
                        const char *adapter_name, int mixed, peft_model **out)
{
    return wrap(ctx, base, config_json, adapter_name, mixed, 0, out);
}

int peft_inject_adapter_in_model(peft_ctx *ctx, peft_base_model *base, const char *config_json,
                                 const char *adapter_name, peft_model **out)
{
    return wrap(ctx, base, config_json, adapter_name, 0, 1, out);
}

void peft_model_free(peft_model *m)
{
    if (!m) return;
    peft_prompt_release(m); /* unhooks the base even when unload handed it out (m->base NULL) */
    peft_mts_release(m, 0);
    if (m->base)
        for (size_t i = m->base->n_sites; i-- > 0;) /* last merged first: tied sites nest */
            peft_site_release(m->base->sites[i]);
    for (int i = 0; i < m->n_adapters; i++) peft_adapter_free(m->adapters[i]);
    free(m->adapters);
    free(m->biases);
    peft_base_model_free(m->base);
    free(m);
}

int peft_add_adapter(peft_model *m, const char *adapter_name, const char *config_json)
{
    peft_adapter *a = NULL;
    int rc = peft_add_adapter_from(m, adapter_name, config_json, "adapter config", &a);
    if (rc) return rc;
    peft_adapter_set_trainable(m, a, 0); /* PEFT: not trained until set active */
    return PEFT_OK;
}

int peft_set_adapters(peft_model *m, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!peft_find_adapter(m, names[i]))
            return peft_set_error(m->ctx, PEFT_ENOTFOUND, "no adapter named '%s'", names[i]);
    /* one prompt-learning adapter at most (a mixed model may add layer adapters to it) */
    const char *prompt = NULL;
    for (int i = 0; i < n; i++) {
        if (!peft_adapter_is_prompt(peft_find_adapter(m, names[i]))) continue;
        if (prompt && strcmp(prompt, names[i]))
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "adapters '%s' and '%s' are prompt learning (%s): only one "
                                  "prompt-learning adapter can be active at a time",
                                  prompt, names[i], peft_find_adapter(m, names[i])->vt->peft_type);
        prompt = names[i];
    }
    if (n > 1)
        for (int i = 0; i < m->n_mts; i++) {
            int owners = 0;
            for (int j = 0; j < m->mts[i].n_copies; j++)
                for (int k = 0; k < n; k++)
                    owners += !strcmp(m->mts[i].copies[j].owner->name, names[k]);
            if (owners > 1)
                return peft_set_error(m->ctx, PEFT_EINVAL,
                                      "%s is in modules_to_save of several of the adapters to "
                                      "activate: only one copy can be active at a time",
                                      m->mts[i].module);
        }
    /* as PEFT: switching adapters unmerges what was merged */
    int rc = peft_unmerge_adapter(m);
    if (rc) return rc;
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *a = m->adapters[i];
        int on = 0;
        for (int j = 0; j < n; j++) on |= strcmp(names[j], a->name) == 0;
        a->active = on;
        peft_adapter_set_trainable(m, a, on && a->trainable_allowed);
    }
    return peft_prompt_apply(m);
}

int peft_set_adapter(peft_model *m, const char *adapter_name)
{
    return peft_set_adapters(m, &adapter_name, 1);
}

int peft_delete_adapter(peft_model *m, const char *adapter_name)
{
    peft_adapter *a = peft_find_adapter(m, adapter_name);
    if (!a) return peft_set_error(m->ctx, PEFT_ENOTFOUND, "no adapter named '%s'", adapter_name);
    char err[512] = "";
    PEFT_EACH_SITE_ADAPTER(it, m->base, a) {
        if (peft_site_unmerge(it.site, it.j, err, sizeof err))
            return peft_set_error(m->ctx, PEFT_ESTATE, "%s", err);
        peft_site_detach(it.site, it.j);
    }
    int k = 0;
    for (int i = 0; i < m->n_biases; i++)
        if (m->biases[i].owner != a) m->biases[k++] = m->biases[i];
    m->n_biases = k;
    if (peft_adapter_is_prompt(a)) peft_prompt_uninject(m, a); /* its state and head copies */
    else peft_mts_drop(m, a);
    for (int i = 0; i < m->n_adapters; i++)
        if (m->adapters[i] == a) {
            memmove(&m->adapters[i], &m->adapters[i + 1],
                    (size_t)(m->n_adapters - i - 1) * sizeof *m->adapters);
            m->n_adapters--;
            break;
        }
    int was_active = a->active;
    peft_adapter_free(a);
    int any = 0;
    for (int i = 0; i < m->n_adapters; i++) any |= m->adapters[i]->active;
    if (was_active && !any && m->n_adapters > 0) /* as PEFT: the first remaining one */
        return peft_set_adapter(m, m->adapters[0]->name);
    return peft_prompt_apply(m);
}

int peft_disable_adapter(peft_model *m)
{
    int rc = peft_unmerge_adapter(m); /* PEFT unmerges before disabling */
    if (rc) return rc;
    m->base->adapters_disabled = 1;
    peft_mts_apply(m);
    return peft_prompt_apply(m); /* the hooks go: the base model's own forward */
}

int peft_enable_adapter(peft_model *m)
{
    m->base->adapters_disabled = 0;
    peft_mts_apply(m);
    return peft_prompt_apply(m);
}

int peft_set_adapter_scale(peft_model *m, const char *adapter_name, double mult)
{
    peft_adapter *a = peft_find_adapter(m, adapter_name);
    if (!a) return peft_set_error(m->ctx, PEFT_ENOTFOUND, "no adapter named '%s'", adapter_name);
    if (!a->vt->set_scale)
        return peft_set_error(m->ctx, PEFT_EINVAL, "%s adapters have no runtime scale",
                              a->vt->peft_type);
    PEFT_EACH_SITE_ADAPTER(it, m->base, a)
        if (it.sa->merged)
            return peft_set_error(m->ctx, PEFT_ESTATE, "adapter '%s' is merged: unmerge it first",
                                  adapter_name);
    PEFT_EACH_SITE_ADAPTER(it, m->base, a)
        PEFT_PLUGIN_CALL(a->vt, "set_scale", a->name, it.site->info.name,
                         a->vt->set_scale(it.sa->state, mult));
    a->scale_mult = mult;
    return PEFT_OK;
}

/* ---- parameters ---- */

/* visits every adapter tensor of every site, in module order */
typedef int (*param_visit)(void *ud, peft_site *s, peft_adapter *a, peft_param_ref *ref);

static int each_adapter_param(peft_model *m, peft_adapter *only, param_visit fn, void *ud)
{
    peft_refs refs;
    PEFT_EACH_SITE_ADAPTER(it, m->base, only) {
        if (peft_refs_get(&refs, it.sa->adapter, it.sa->state)) return -1;
        for (int k = 0; k < refs.n; k++) {
            int rc = fn(ud, it.site, it.sa->adapter, &refs.v[k]);
            if (rc) {
                peft_refs_free(&refs);
                return rc;
            }
        }
        peft_refs_free(&refs);
    }
    /* adapter-level tensors (ABI 1.3), after the layers' as PEFT's named_parameters lists them */
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *a = m->adapters[i];
        if ((only && a != only) || !a->adapter_state) continue;
        if (peft_refs_get(&refs, a, NULL)) return -1;
        for (int k = 0; k < refs.n; k++) {
            int rc = fn(ud, NULL, a, &refs.v[k]);
            if (rc) {
                peft_refs_free(&refs);
                return rc;
            }
        }
        peft_refs_free(&refs);
    }
    return 0;
}

static int set_trainable_visit(void *ud, peft_site *s, peft_adapter *a, peft_param_ref *ref)
{
    (void)a;
    (void)s;
    int on = *(int *)ud && ref->trainable && peft_ref_is_param(ref);
    ref->tensor->requires_grad = on;
    if (on) ref->tensor->flags |= PEFT_T_PARAM;
    return 0;
}

/* visits the prompt-learning adapters' tensors (only's, or every adapter's) */
static int each_prompt_param(peft_model *m, peft_adapter *only, param_visit fn, void *ud)
{
    peft_param_ref refs[32];
    for (int i = 0; i < m->n_adapters; i++) {
        if (only && m->adapters[i] != only) continue;
        int n = peft_prompt_params(m, m->adapters[i], refs, 32);
        for (int k = 0; k < n; k++) {
            int rc = fn(ud, NULL, m->adapters[i], &refs[k]);
            if (rc) return rc;
        }
    }
    return 0;
}

void peft_adapter_set_trainable(peft_model *m, peft_adapter *a, int trainable)
{
    each_adapter_param(m, a, set_trainable_visit, &trainable);
    each_prompt_param(m, a, set_trainable_visit, &trainable);
    for (int i = 0; i < m->n_biases; i++)
        if (m->biases[i].owner == a) m->biases[i].param->t->requires_grad = trainable;
    a->trainable = trainable;
    peft_mts_set_trainable(m, a, trainable);
}

typedef struct count_ud {
    int64_t trainable, all;
} count_ud;

static int count_visit(void *ud, peft_site *s, peft_adapter *a, peft_param_ref *ref)
{
    (void)a;
    (void)s;
    count_ud *c = ud;
    if (!peft_ref_is_param(ref)) return 0; /* buffers and save-only copies are no parameters */
    c->all += ref->tensor->numel;
    if (ref->tensor->requires_grad) c->trainable += ref->tensor->numel;
    return 0;
}

int peft_get_nb_trainable_parameters(const peft_model *m, int64_t *trainable, int64_t *all)
{
    count_ud c = {0, 0};
    each_adapter_param((peft_model *)m, NULL, count_visit, &c);
    each_prompt_param((peft_model *)m, NULL, count_visit, &c);
    for (size_t i = 0; i < m->base->n_params; i++) {
        peft_tensor *t = m->base->params[i].t;
        c.all += t->numel;
        int is_mts = 0;
        for (int k = 0; k < m->n_mts; k++) is_mts |= m->mts[k].param == &m->base->params[i];
        if (t->requires_grad && !is_mts) c.trainable += t->numel;
    }
    /* PEFT counts the original module and every modules_to_save copy */
    for (int k = 0; k < m->n_mts; k++)
        for (int j = 0; j < m->mts[k].n_copies; j++) {
            peft_tensor *t = m->mts[k].copies[j].t;
            c.all += t->numel;
            if (t->requires_grad) c.trainable += t->numel;
        }
    *trainable = c.trainable;
    *all = c.all;
    return PEFT_OK;
}

static void with_commas(int64_t v, char *buf, size_t len)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 1 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0 && digits[0] != '-' && o + 1 < len) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
}

int peft_format_trainable_parameters(const peft_model *m, char *buf, size_t len)
{
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    char ts[32], as[32];
    with_commas(t, ts, sizeof ts);
    with_commas(a, as, sizeof as);
    snprintf(buf, len, "trainable params: %s || all params: %s || trainable%%: %.4f", ts, as,
             a ? 100.0 * (double)t / (double)a : 0.0);
    return PEFT_OK;
}

void peft_print_trainable_parameters(const peft_model *m, FILE *out)
{
    char line[256];
    peft_format_trainable_parameters(m, line, sizeof line);
    fprintf(out, "%s\n", line);
}

/* ---- forward ---- */

void peft_model_train(peft_model *m, int training) { m->training = training; }

/* ---- extra loss terms (ABI 1.3 loss_term) ---- */

typedef struct add_term_ctx {
    peft_tensor *loss, *term, *out;
} add_term_ctx;

// dout (1) -> dloss (1) += dout, dterm (1) += dout
static void add_term_backward(peft_graph *g, void *vc)
{
    add_term_ctx *c = vc;
    if (!c->out->grad) return;
    float *dl = peft_grad_of(g, c->loss), *dt = peft_grad_of(g, c->term);
    if (dl) dl[0] += c->out->grad[0];
    if (dt) dt[0] += c->out->grad[0];
}

// loss () + term (1 element) -> () with its backward
static peft_tensor *add_term(peft_graph *g, peft_tensor *loss, peft_tensor *term)
{
    peft_tensor *out = peft_graph_tensor(g, loss->ndim, loss->shape);
    if (!out) return NULL;
    peft_f32(out)[0] = peft_f32(loss)[0] + peft_f32(term)[0];
    out->requires_grad = peft_needs_grad(g, loss, term);
    if (out->requires_grad) {
        add_term_ctx *c = peft_tape_push(g, add_term_backward, sizeof *c);
        if (c) *c = (add_term_ctx){loss, term, out};
    }
    return out;
}

static int add_loss_terms(peft_model *m, peft_graph *g, peft_model_outputs *out)
{
    if (!out->loss || m->base->adapters_disabled) return PEFT_OK;
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *a = m->adapters[i];
        if (!a->active || !a->vt->loss_term) continue;
        peft_tensor *term = NULL;
        if (PEFT_PLUGIN_CALL(a->vt, "loss_term", a->name, NULL, a->vt->loss_term(a->adapter_state, g, &term)) ||
            peft_graph_error(g))
            return peft_set_error(m->ctx, PEFT_EPLUGIN, "adapter '%s' (%s) loss term: %s", a->name,
                                  a->vt->peft_type, peft_graph_error(g) ? peft_graph_error(g) : "failed");
        if (!term) continue;
        if (term->dtype != PEFT_DTYPE_F32 || term->numel != 1)
            return peft_set_error(m->ctx, PEFT_EPLUGIN,
                                  "adapter '%s' (%s): loss_term gave a tensor of %lld values, not one",
                                  a->name, a->vt->peft_type, (long long)term->numel);
        peft_tensor *sum = add_term(g, out->loss, term);
        if (!sum) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory in the step arena");
        out->loss = sum;
    }
    return PEFT_OK;
}

int peft_model_forward(peft_model *m, peft_graph *g, const peft_model_inputs *in,
                       peft_model_outputs *out)
{
    char err[1024] = "";
    g->training = m->training;
    peft_mts_apply(m);
    memset(out, 0, sizeof *out);
    int rc = peft_prompt_apply(m);
    if (rc) return rc;
    peft_prompt_task_ids(m, in->task_ids);
    int frc = m->base->arch->forward(m->base, g, in, out, err, sizeof err);
    peft_prompt_task_ids(m, NULL);
    if ((frc = peft_forward_result(m->ctx, g, frc, err))) return frc;
    return add_loss_terms(m, g, out);
}

int peft_forward_result(peft_ctx *ctx, const peft_graph *g, int rc, const char *err)
{
    /* the graph's first error is the cause (a plugin's own message, the arena out of memory);
     * the architecture's message is only the symptom it saw next */
    if (peft_graph_errcode(g)) return peft_set_error(ctx, peft_graph_errcode(g), "%s", g->error);
    if (rc) return peft_set_error(ctx, PEFT_EINVAL, "%s", err[0] ? err : "forward failed");
    return PEFT_OK;
}

int peft_model_step_end(peft_model *m, int64_t step, int64_t total_steps)
{
    char err[1024] = "";
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *a = m->adapters[i];
        if (!a->trainable || !a->vt->step_end) continue;
        peft_cfg pc = {a->config};
        if (PEFT_PLUGIN_CALL(a->vt, "step_end", a->name, NULL,
                             a->vt->step_end(a->adapter_state, &pc, step, total_steps, err, sizeof err)))
            return peft_set_error(m->ctx, PEFT_EPLUGIN, "adapter '%s' (%s) after step %lld: %s",
                                  a->name, a->vt->peft_type, (long long)step,
                                  err[0] ? err : "failed (no message)");
    }
    return PEFT_OK;
}
