/* state.c — the conformance checks on an adapter's life cycle: merged output
 * equals unmerged (PEFT_CAP_MERGEABLE) and unmerge gives the unmerged output back bit-exactly;
 * unload restores every base weight and the base output bit-exactly; a disabled adapter gives
 * the base output bit-exactly; a saved adapter reloads into a fresh base with bit-identical
 * tensors and outputs. Each check perturbs the adapter's trainable tensors first, so that it is
 * not at an identity init. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conformance.h"

#define MERGE_RTOL 1e-4 /* of max(1, max |output|) */

static int site_skip(const pc_env *env, char *msg, size_t len)
{
    if (env->vt->caps & PEFT_CAP_PROMPT_LEARNING)
        return pc_msg(msg, len, PC_SKIP, "prompt-learning plugin: no linear sites");
    return PC_PASS;
}

/* base forward, inject, perturb; *base_out / *n the base outputs (caller frees) */
static int setup(const pc_env *env, const pc_model *model, pc_run_state *r, uint64_t seed,
                 float **base_out, int64_t *n, char *msg, size_t len)
{
    *base_out = NULL;
    if (pc_open_base(env, model, r, seed, msg, len)) return PC_SKIP;
    if (pc_forward(r, 0, msg, len) || !(*base_out = pc_copy_outputs(r, n))) return PC_FAIL;
    if (pc_inject(env, model, r, msg, len) || pc_perturb(r, seed, msg, len)) return PC_FAIL;
    return PC_PASS;
}

/* forward, then the outputs (caller frees) or NULL with msg */
static float *outputs(pc_run_state *r, int64_t *n, char *msg, size_t len)
{
    if (pc_forward(r, 0, msg, len)) return NULL;
    float *o = pc_copy_outputs(r, n);
    if (!o) pc_msg(msg, len, PC_FAIL, "out of memory");
    return o;
}

int pc_check_merge(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    if (site_skip(env, msg, len) != PC_PASS) return PC_SKIP;
    if (!(env->vt->caps & PEFT_CAP_MERGEABLE))
        return pc_msg(msg, len, PC_SKIP, "the plugin does not declare PEFT_CAP_MERGEABLE");
    pc_run_state r;
    float *base_out, *unmerged = NULL, *merged = NULL, *again = NULL, *folded = NULL;
    int64_t n0, n = 0, n1;
    int status = setup(env, model, &r, 4, &base_out, &n0, msg, len);
    if (status != PC_PASS) goto done;
    status = PC_FAIL;
    if (!(unmerged = outputs(&r, &n, msg, len))) goto done;
    double tol = MERGE_RTOL * (pc_max_abs(unmerged, n) > 1 ? pc_max_abs(unmerged, n) : 1);
    if (peft_merge_adapter(r.m, NULL, 0, 1)) {
        pc_msg(msg, len, PC_FAIL, "merge: %s", peft_errmsg(r.ctx));
        goto done;
    }
    if (!(merged = outputs(&r, &n1, msg, len))) goto done;
    double d = pc_max_diff(merged, unmerged, n);
    if (n1 != n || !(d <= tol)) {
        pc_msg(msg, len, PC_FAIL, "merged outputs differ from unmerged by %.3g (allowed %.2g)",
               d, tol);
        goto done;
    }
    if (peft_unmerge_adapter(r.m)) {
        pc_msg(msg, len, PC_FAIL, "unmerge: %s", peft_errmsg(r.ctx));
        goto done;
    }
    if (!(again = outputs(&r, &n1, msg, len))) goto done;
    if (n1 != n || memcmp(again, unmerged, (size_t)n * sizeof *again) != 0) {
        pc_msg(msg, len, PC_FAIL, "after unmerge the outputs differ from before the merge by %.3g "
               "(must be bit-exact)", pc_max_diff(again, unmerged, n));
        goto done;
    }
    /* merge_and_unload: the base alone now computes the merged model */
    peft_base_model *base;
    if (peft_merge_and_unload(r.m, 1, NULL, 0, &base)) {
        pc_msg(msg, len, PC_FAIL, "merge_and_unload: %s", peft_errmsg(r.ctx));
        goto done;
    }
    r.m = NULL;
    r.base = base;
    if (!(folded = outputs(&r, &n1, msg, len))) goto done;
    double d2 = pc_max_diff(folded, unmerged, n);
    if (n1 != n || !(d2 <= tol)) {
        pc_msg(msg, len, PC_FAIL, "merge_and_unload's base differs from the adapter's outputs by "
               "%.3g (allowed %.2g)", d2, tol);
        goto done;
    }
    status = pc_msg(msg, len, PC_PASS, "merged vs unmerged max diff %.3g, merge_and_unload %.3g "
                    "(allowed %.2g); unmerge restores the outputs bit-exactly", d, d2, tol);
done:
    free(base_out);
    free(unmerged);
    free(merged);
    free(again);
    free(folded);
    pc_close(&r);
    return status;
}

int pc_check_unload(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    if (site_skip(env, msg, len) != PC_PASS) return PC_SKIP;
    pc_run_state r;
    float *base_out, *after = NULL;
    int64_t n0, n1;
    int status = setup(env, model, &r, 5, &base_out, &n0, msg, len);
    if (status != PC_PASS) goto done;
    status = PC_FAIL;
    if (pc_forward(&r, 1, msg, len)) goto done; /* a training step's worth of use first */
    int merged = 0;
    if (env->vt->caps & PEFT_CAP_MERGEABLE) { /* and a merge/unmerge round trip */
        if (peft_merge_adapter(r.m, NULL, 0, 0) || peft_unmerge_adapter(r.m)) {
            pc_msg(msg, len, PC_FAIL, "merge/unmerge: %s", peft_errmsg(r.ctx));
            goto done;
        }
        merged = 1;
    }
    peft_base_model *base;
    if (peft_unload(r.m, &base)) {
        pc_msg(msg, len, PC_FAIL, "unload: %s", peft_errmsg(r.ctx));
        goto done;
    }
    r.m = NULL;
    r.base = base;
    if (pc_base_unchanged(base, model->dir, msg, len)) goto done;
    if (!(after = outputs(&r, &n1, msg, len))) goto done;
    if (n1 != n0 || memcmp(after, base_out, (size_t)n0 * sizeof *after) != 0) {
        pc_msg(msg, len, PC_FAIL, "after unload the base outputs differ by %.3g (must be "
               "bit-exact)", n1 == n0 ? pc_max_diff(after, base_out, n0) : -1.0);
        goto done;
    }
    status = pc_msg(msg, len, PC_PASS, "after forward/backward%s and unload, every base weight "
                    "and the base outputs are bit-exact", merged ? ", merge, unmerge" : "");
done:
    free(base_out);
    free(after);
    pc_close(&r);
    return status;
}

int pc_check_disabled(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    pc_run_state r;
    float *base_out, *on = NULL, *off = NULL, *back = NULL;
    int64_t n0, n = 0, n1;
    int status = setup(env, model, &r, 6, &base_out, &n0, msg, len);
    if (status != PC_PASS) goto done;
    status = PC_FAIL;
    if (!(on = outputs(&r, &n, msg, len))) goto done;
    if (peft_disable_adapter(r.m)) {
        pc_msg(msg, len, PC_FAIL, "disable_adapter: %s", peft_errmsg(r.ctx));
        goto done;
    }
    if (!(off = outputs(&r, &n1, msg, len))) goto done;
    if (n1 != n0 || memcmp(off, base_out, (size_t)n0 * sizeof *off) != 0) {
        pc_msg(msg, len, PC_FAIL, "with the adapter disabled the outputs differ from the base by "
               "%.3g (must be bit-exact)", n1 == n0 ? pc_max_diff(off, base_out, n0) : -1.0);
        goto done;
    }
    if (peft_enable_adapter(r.m)) {
        pc_msg(msg, len, PC_FAIL, "enable_adapter: %s", peft_errmsg(r.ctx));
        goto done;
    }
    if (!(back = outputs(&r, &n1, msg, len))) goto done;
    if (n1 != n || memcmp(back, on, (size_t)n * sizeof *back) != 0) {
        pc_msg(msg, len, PC_FAIL, "re-enabled adapter outputs differ from before by %.3g",
               n1 == n ? pc_max_diff(back, on, n) : -1.0);
        goto done;
    }
    status = pc_msg(msg, len, PC_PASS, "disabled == base bit-exactly (adapter on: max diff %.3g); "
                    "re-enabled == before", n == n0 ? pc_max_diff(on, base_out, n) : -1.0);
done:
    free(base_out);
    free(on);
    free(off);
    free(back);
    pc_close(&r);
    return status;
}

/* the two state dicts hold the same keys with bit-identical tensors; 0 or -1 with msg */
static int same_state(peft_model *a, peft_model *b, size_t *n_keys, char *msg, size_t len)
{
    peft_state_dict *sa = NULL, *sb = NULL;
    int rc = -1;
    if (peft_get_peft_model_state_dict(a, "default", &sa) ||
        peft_get_peft_model_state_dict(b, "default", &sb)) {
        pc_msg(msg, len, PC_FAIL, "state dict: %s", peft_errmsg(peft_model_ctx(sa ? b : a)));
        goto out;
    }
    if (sa->n != sb->n) {
        pc_msg(msg, len, PC_FAIL, "%zu tensors saved, %zu after reload", sa->n, sb->n);
        goto out;
    }
    for (size_t i = 0; i < sa->n; i++) {
        peft_tensor *x = sa->tensors[i], *y = NULL;
        for (size_t j = 0; j < sb->n && !y; j++)
            if (!strcmp(sa->names[i], sb->names[j])) y = sb->tensors[j];
        if (!y) {
            pc_msg(msg, len, PC_FAIL, "'%s' is missing after reload", sa->names[i]);
            goto out;
        }
        if (x->numel != y->numel || x->ndim != y->ndim ||
            memcmp(x->shape, y->shape, sizeof x->shape) != 0 ||
            memcmp(x->data, y->data, (size_t)x->numel * sizeof(float)) != 0) {
            pc_msg(msg, len, PC_FAIL, "'%s' differs after reload (shape or values)", sa->names[i]);
            goto out;
        }
    }
    *n_keys = sa->n;
    rc = 0;
out:
    peft_state_dict_free(sa);
    peft_state_dict_free(sb);
    return rc;
}

int pc_check_save_load(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    pc_run_state r;
    float *base_out, *before = NULL, *after = NULL;
    int64_t n0, n = 0, n1;
    peft_model *m2 = NULL;
    char dir[4096];
    int made = 0;
    int status = setup(env, model, &r, 7, &base_out, &n0, msg, len);
    if (status != PC_PASS) goto done;
    status = PC_FAIL;
    if (!(before = outputs(&r, &n, msg, len))) goto done;
    if (pc_temp_template(dir, sizeof dir, "save") || !mkdtemp(dir)) {
        pc_msg(msg, len, PC_FAIL, "cannot make a temp dir for the saved adapter");
        goto done;
    }
    made = 1;
    if (peft_save_pretrained(r.m, dir, NULL, 0, 1)) {
        pc_msg(msg, len, PC_FAIL, "save_pretrained: %s", peft_errmsg(r.ctx));
        goto done;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    const char *pt = json_string_value(json_object_get(cfg, "peft_type"));
    int ok = pt && !strcmp(pt, env->vt->peft_type);
    json_decref(cfg);
    if (!ok) {
        pc_msg(msg, len, PC_FAIL, "%s lacks \"peft_type\": \"%s\"", path, env->vt->peft_type);
        goto done;
    }
    peft_base_model *base2;
    if (peft_load_base_model(r.ctx, model->dir, &base2)) {
        pc_msg(msg, len, PC_FAIL, "%s", peft_errmsg(r.ctx));
        goto done;
    }
    if (peft_from_pretrained(r.ctx, base2, dir, "default", 0, &m2)) {
        pc_msg(msg, len, PC_FAIL, "from_pretrained of the saved adapter: %s", peft_errmsg(r.ctx));
        peft_base_model_free(base2);
        goto done;
    }
    size_t n_keys = 0;
    if (same_state(r.m, m2, &n_keys, msg, len)) goto done;
    peft_model *keep = r.m;
    r.m = m2;
    after = outputs(&r, &n1, msg, len);
    r.m = keep;
    if (!after) goto done;
    if (n1 != n || memcmp(after, before, (size_t)n * sizeof *after) != 0) {
        pc_msg(msg, len, PC_FAIL, "the reloaded adapter's outputs differ by %.3g (must be "
               "bit-exact)", n1 == n ? pc_max_diff(after, before, n) : -1.0);
        goto done;
    }
    status = pc_msg(msg, len, PC_PASS, "%zu tensors saved and reloaded bit-exactly; outputs "
                    "identical", n_keys);
done:
    peft_model_free(m2);
    if (made) pc_rm_dir(dir);
    free(base_out);
    free(before);
    free(after);
    pc_close(&r);
    return status;
}
