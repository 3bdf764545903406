/* contract.c — the per-method contract table over Python PEFT's fixture cases (see
 * contract.h). Each step compares with what the real PEFT 0.13.2 produced. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "contract.h"
#include "model_fixture.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "testutil.h"

#define TOL 1e-4

/* the fixture sets, each with its INDEX.json: hf-peft/ (the first set) and hf-peft-v2/ (new
 * methods and architectures); a case name is unique across them */
static const char *const fixture_sets[] = {"hf-peft", "hf-peft-v2"};
#define N_SETS (int)(sizeof fixture_sets / sizeof fixture_sets[0])

static json_t *set_index(int k)
{
    static json_t *idx[N_SETS];
    char rel[64];
    snprintf(rel, sizeof rel, "%s/INDEX.json", fixture_sets[k]);
    if (!idx[k]) idx[k] = json_load_file(tu_fixture(rel), 0, NULL);
    return idx[k];
}

/* the set of the case being run and its flags (contract_run_case_flags sets them) */
static const char *cur_set = "hf-peft";
static unsigned cur_flags;

static json_t *index_json(void) { return set_index(0); }

const char *const *contract_cases(const char *prefix)
{
    static const char *names[128];
    size_t n = 0, i;
    json_t *c;
    /* the first set only: its suites list prefixes; a hf-peft-v2 case is named */
    json_array_foreach(json_object_get(index_json(), "cases"), i, c) {
        const char *name = json_string_value(json_object_get(c, "case"));
        if (name && strncmp(name, prefix, strlen(prefix)) == 0 && n < 127) names[n++] = name;
    }
    names[n] = NULL;
    return names;
}

/* the INDEX.json entry of case `name` in any set; *set (may be NULL) names its set */
static json_t *case_entry_in(const char *name, const char **set)
{
    size_t i;
    json_t *c;
    for (int k = 0; k < N_SETS; k++)
        json_array_foreach(json_object_get(set_index(k), "cases"), i, c)
            if (!strcmp(json_string_value(json_object_get(c, "case")), name)) {
                if (set) *set = fixture_sets[k];
                return c;
            }
    return NULL;
}

static json_t *case_entry(const char *name) { return case_entry_in(name, NULL); }

/* largest difference between every tensor of fixture file rel and the output of that name */
static double diff_outputs(const char *rel, const peft_model_outputs *o)
{
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    double worst = 0;
    for (size_t i = 0; i < f->n_entries; i++) {
        peft_tensor *t = tu_output_named(o, f->entries[i].name);
        ck_assert_msg(t, "%s: the model gave no '%s'", rel, f->entries[i].name);
        ck_assert_msg((int64_t)(f->entries[i].nbytes / 4) == t->numel, "%s: '%s' has %lld values, the model %lld",
                      rel, f->entries[i].name, (long long)(f->entries[i].nbytes / 4), (long long)t->numel);
        double d = tu_max_abs_diff((const float *)f->entries[i].data, peft_f32(t), t->numel);
        if (!(d <= worst)) worst = d;
    }
    peft_st_close(f);
    return worst;
}

/* every output concatenated (to compare two runs bit for bit) */
static float *copy_outputs(const peft_model_outputs *o, int64_t *n)
{
    peft_tensor *ts[4] = {o->logits, o->start_logits, o->end_logits, o->last_hidden_state};
    int64_t total = 0;
    for (int k = 0; k < 4; k++) total += ts[k] ? ts[k]->numel : 0;
    float *c = malloc((size_t)(total ? total : 1) * sizeof *c), *p = c;
    for (int k = 0; k < 4; k++)
        if (ts[k]) {
            memcpy(p, ts[k]->data, (size_t)ts[k]->numel * sizeof *c);
            p += ts[k]->numel;
        }
    *n = total;
    return c;
}

/* the largest differences from PEFT seen in the case being run (printed with CONTRACT_REPORT) */
static struct {
    double logits, loss, grads, merged;
} seen;

static void note(double *slot, double d)
{
    if (!(d <= *slot)) *slot = d;
}

typedef struct run {
    peft_ctx *ctx;
    peft_model *m;
    peft_inputs in;
    peft_graph *g;
    peft_model_outputs out;
    int no_labels; /* outputs only (prompt tuning's P + T labels do not fit the base model) */
} run;

static void forward(run *r, int record)
{
    peft_graph_reset(r->g);
    peft_graph_set_recording(r->g, record);
    peft_model_inputs mi;
    peft_inputs_view(&r->in, &mi);
    if (r->no_labels) mi.labels = NULL, mi.labels_len = 0;
    ck_assert_msg(peft_model_forward(r->m, r->g, &mi, &r->out) == PEFT_OK, "%s", peft_errmsg(r->ctx));
}

static float *copy_logits(const run *r)
{
    int64_t n;
    return copy_outputs(&r->out, &n);
}

static int64_t n_outputs(const run *r)
{
    int64_t n;
    free(copy_outputs(&r->out, &n));
    return n;
}

static double diff_outputs_ref(const run *r, const float *ref, int64_t n)
{
    int64_t m;
    float *c = copy_outputs(&r->out, &m);
    double d = m == n ? tu_max_abs_diff(c, ref, n) : INFINITY;
    free(c);
    return d;
}

/* the saved adapter dir of a case, and the adapter name */
static void adapter_location(const char *case_name, json_t *entry, char *dir, size_t len,
                             const char **name)
{
    const char *an = json_string_value(json_object_get(entry, "adapter_name"));
    *name = an ? an : strstr(case_name, "named_adapter") ? "my_adapter" : "default";
    snprintf(dir, len, "%s", tu_fixture(""));
    snprintf(dir, len, "%s%s/%s/adapter", tu_fixture(""), cur_set, case_name);
}

/* prefix / prompt tuning: PEFT's trained state is not its saved one (prefix_projection saves
 * the MLP's output, not the MLP), so such a case starts, as PEFT did, from get_peft_model with
 * the case's config in training mode */
static int is_prompt_learning(json_t *entry)
{
    const char *method = json_string_value(json_object_get(entry, "method"));
    return method && (!strcmp(method, "prefix") || !strcmp(method, "prompt") ||
                      !strcmp(method, "p_tuning") || !strcmp(method, "multitask_prompt_tuning"));
}

/* methods that prepend virtual tokens (their P + T labels do not fit the base model) */
static int prepends_tokens(const char *method)
{
    return method && (!strcmp(method, "prompt") || !strcmp(method, "p_tuning") ||
                      !strcmp(method, "multitask_prompt_tuning"));
}

static void open_case(run *r, const char *case_name, json_t *entry, const char **name)
{
    char dir[4096], rel[512];
    adapter_location(case_name, entry, dir, sizeof dir, name);
    r->ctx = peft_ctx_new(0);
    peft_base_model *base;
    snprintf(rel, sizeof rel, "%s/%s", cur_set, json_string_value(json_object_get(entry, "base_model_dir")));
    ck_assert_msg(peft_load_base_model(r->ctx, tu_fixture(rel), &base) == 0, "%s", peft_errmsg(r->ctx));
    if (is_prompt_learning(entry)) {
        json_t *cfg = json_deep_copy(json_object_get(entry, "adapter_config"));
        json_object_set_new(cfg, "inference_mode", json_false());
        char *text = json_dumps(cfg, JSON_COMPACT);
        json_decref(cfg);
        ck_assert_msg(peft_get_peft_model(r->ctx, base, text, *name, 0, &r->m) == 0, "%s: %s",
                      case_name, peft_errmsg(r->ctx));
        free(text);
    } else {
        ck_assert_msg(peft_from_pretrained(r->ctx, base, dir, *name, 1, &r->m) == 0, "%s: %s",
                      case_name, peft_errmsg(r->ctx));
    }
    /* the perturbed trainable values PEFT ran with (includes biases that 0.13.2 never saves) */
    snprintf(rel, sizeof rel, "%s/%s/trainable_params.safetensors", cur_set, case_name);
    ck_assert_msg(peft_set_peft_model_state_dict(r->m, tu_fixture(rel), *name, 1) == 0, "%s",
                  peft_errmsg(r->ctx));
    snprintf(rel, sizeof rel, "%s/%s/inputs.json", cur_set, case_name);
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(rel), &r->in) == 0, "%s", peft_errmsg(tu_ctx()));
    r->g = peft_graph_new(peft_ctx_rng(r->ctx));
}

static void close_case(run *r)
{
    peft_graph_free(r->g);
    peft_model_free(r->m);
    peft_inputs_free(&r->in);
    peft_ctx_free(r->ctx);
}

static void check_outputs_and_grads(run *r, const char *case_name, json_t *entry)
{
    char rel[512];
    forward(r, 1);
    snprintf(rel, sizeof rel, "%s/%s/peft_logits.safetensors", cur_set, case_name);
    double d = diff_outputs(rel, &r->out);
    note(&seen.logits, d);
    ck_assert_msg(d <= TOL, "%s: outputs differ from PEFT by %g", case_name, d);
    double want = json_real_value(json_object_get(entry, "loss"));
    if (r->out.loss) note(&seen.loss, fabs(peft_f32(r->out.loss)[0] - want));
    ck_assert_msg(r->out.loss && fabs(peft_f32(r->out.loss)[0] - want) <= TOL,
                  "%s: loss %.9g, PEFT %.9g", case_name, r->out.loss ? peft_f32(r->out.loss)[0] : NAN, want);
    ck_assert(peft_graph_backward(r->g, r->out.loss) == 0);
    peft_state_dict *tp;
    ck_assert(peft_trainable_parameters(r->m, &tp) == 0);
    snprintf(rel, sizeof rel, "%s/%s/grads.safetensors", cur_set, case_name);
    peft_st_file *gf;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &gf) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_msg(tp->n == gf->n_entries, "%s: %zu trainable tensors, PEFT has %zu", case_name, tp->n,
                  gf->n_entries);
    for (size_t i = 0; i < tp->n; i++) {
        const peft_st_entry *e = peft_st_find(gf, tp->names[i]);
        ck_assert_msg(e, "%s: PEFT has no trainable parameter named %s", case_name, tp->names[i]);
        ck_assert_msg(tp->tensors[i]->grad, "%s: no gradient for %s", case_name, tp->names[i]);
        double gd = tu_max_abs_diff((const float *)e->data, tp->tensors[i]->grad, tp->tensors[i]->numel);
        note(&seen.grads, gd);
        ck_assert_msg(gd <= TOL, "%s: grad of %s differs by %g", case_name, tp->names[i], gd);
        peft_tensor_zero_grad(tp->tensors[i]);
    }
    peft_st_close(gf);
    peft_state_dict_free(tp);
}

static void check_counts_and_status(run *r, const char *case_name)
{
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s/nb_trainable_parameters.json", cur_set, case_name);
    json_t *nb = json_load_file(tu_fixture(rel), 0, NULL);
    int64_t t, a;
    peft_get_nb_trainable_parameters(r->m, &t, &a);
    ck_assert_int_eq(t, json_integer_value(json_object_get(nb, "trainable_params")));
    ck_assert_int_eq(a, json_integer_value(json_object_get(nb, "all_params")));
    char line[256];
    peft_format_trainable_parameters(r->m, line, sizeof line);
    ck_assert_str_eq(line, json_string_value(json_object_get(nb, "print_trainable_parameters")));
    json_decref(nb);

    const char *files[2] = {"model_status.json", "layer_status.json"};
    for (int k = 0; k < 2; k++) {
        char *mine = NULL;
        int rc = (k ? peft_get_layer_status : peft_get_model_status)(r->m, &mine);
        snprintf(rel, sizeof rel, "%s/%s/%s", cur_set, case_name, files[k]);
        json_t *want = json_load_file(tu_fixture(rel), 0, NULL);
        const char *raised = json_string_value(json_object_get(want, "error"));
        if (raised) { /* PEFT raised (prompt learning): so must we, with its message */
            const char *colon = strstr(raised, ": ");
            ck_assert_msg(rc == PEFT_EINVAL && !mine, "%s: %s should fail as PEFT's did", case_name,
                          files[k]);
            ck_assert_msg(strstr(peft_errmsg(r->ctx), colon ? colon + 2 : raised),
                          "%s: %s: error '%s', PEFT raised '%s'", case_name, files[k],
                          peft_errmsg(r->ctx), raised);
            json_decref(want);
            continue;
        }
        json_t *got = json_loads(mine, 0, NULL);
        ck_assert_msg(want && got, "%s: bad status json", case_name);
        ck_assert_msg(json_equal(want, got), "%s: %s differs:\n%s", case_name, files[k], mine);
        json_decref(want);
        json_decref(got);
        free(mine);
    }
}

/* merged, disabled and unloaded models against PEFT's numbers. The generic invariants (merged ==
 * unmerged, unmerge / re-enable / unload restoring bit-exactly) are the conformance table's
 * (sdk/conformance/, run on every plugin by tests/test_conformance.c), not repeated here. */
static void check_merge_disable_unload(run *r, const char *case_name)
{
    char rel[512];
    double d;
    snprintf(rel, sizeof rel, "%s/%s/merged_logits.safetensors", cur_set, case_name);
    json_t *entry = case_entry(case_name);
    int mergeable = json_object_get(json_object_get(entry, "files"), "merged_logits") != NULL;
    if (cur_flags & CONTRACT_MERGE_DEPARTS) {
        /* PEFT's merge is wrong (or fails) here; libpeft's merged model is its unmerged one */
        forward(r, 0);
        int64_t n = n_outputs(r);
        float *unmerged = copy_logits(r);
        ck_assert_msg(peft_merge_adapter(r->m, NULL, 0, 1) == 0, "%s", peft_errmsg(r->ctx));
        forward(r, 0);
        d = diff_outputs_ref(r, unmerged, n);
        ck_assert_msg(d <= TOL, "%s: merged vs unmerged differ by %g", case_name, d);
        if (mergeable) {
            d = diff_outputs(rel, &r->out);
            ck_assert_msg(d > 1e-3, "%s: merged outputs equal PEFT's (%g): no departure to "
                          "declare", case_name, d);
        }
        ck_assert(peft_unmerge_adapter(r->m) == 0);
        free(unmerged);
    } else if (mergeable) {
        ck_assert_msg(peft_merge_adapter(r->m, NULL, 0, 1) == 0, "%s", peft_errmsg(r->ctx));
        forward(r, 0);
        d = diff_outputs(rel, &r->out);
        note(&seen.merged, d);
        ck_assert_msg(d <= TOL, "%s: merged outputs differ from PEFT by %g", case_name, d);
        ck_assert(peft_unmerge_adapter(r->m) == 0);
    }

    /* disabled adapter == PEFT's base (biases trained by the adapter stay, as in PEFT) */
    const char *bias = json_string_value(json_object_get(json_object_get(entry, "adapter_config"), "bias"));
    const char *method = json_string_value(json_object_get(entry, "method"));
    r->no_labels = prepends_tokens(method);
    ck_assert(peft_disable_adapter(r->m) == 0);
    forward(r, 0);
    json_t *files = json_object_get(entry, "files");
    if (json_object_get(files, "disabled_adapter_logits")) { /* PiSSA: the base is the residual */
        snprintf(rel, sizeof rel, "%s/%s/%s", cur_set, case_name,
                 json_string_value(json_object_get(files, "disabled_adapter_logits")));
        d = diff_outputs(rel, &r->out);
        ck_assert_msg(d <= 1e-4, "%s: disabled adapter differs from PEFT's by %g", case_name, d);
    } else if (!bias || !strcmp(bias, "none")) {
        snprintf(rel, sizeof rel, "%s/%s/base_logits.safetensors", cur_set,
                 json_string_value(json_object_get(entry, "base_model_dir")));
        d = diff_outputs(rel, &r->out);
        ck_assert_msg(d <= TOL, "%s: disabled adapter differs from the base by %g", case_name, d);
    }
    ck_assert(peft_enable_adapter(r->m) == 0);
    r->no_labels = 0;

    /* unload: PiSSA rewrote some base weights into residuals, as PEFT: those must equal PEFT's */
    const char *resid_rel = json_string_value(json_object_get(files, "pissa_residual_base_weights"));
    if (!resid_rel) return;
    peft_base_model *base;
    ck_assert(peft_unload(r->m, &base) == 0);
    r->m = NULL;
    peft_st_file *resid = NULL;
    char rp[512];
    snprintf(rp, sizeof rp, "%s/%s/%s", cur_set, case_name, resid_rel);
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rp), &resid) == 0, "%s", peft_errmsg(tu_ctx()));
    int n_resid = 0;
    for (size_t i = 0; i < peft_base_model_num_params(base); i++) {
        const char *pname;
        peft_tensor *a = peft_base_model_param(base, i, &pname);
        char key[1024];
        const char *dot = strrchr(pname, '.');
        snprintf(key, sizeof key, "base_model.model.%.*s.base_layer%s", (int)(dot - pname), pname, dot);
        const peft_st_entry *e = peft_st_find(resid, key);
        if (!e) continue;
        float *f = malloc((size_t)a->numel * sizeof *f);
        peft_tensor_to_f32(a, f);
        double rd = tu_max_abs_diff((const float *)e->data, f, a->numel);
        free(f);
        ck_assert_msg(rd <= 1e-4, "%s: residual %s differs from PEFT's by %g", case_name, key, rd);
        n_resid++;
    }
    ck_assert_msg(n_resid > 0, "%s: no residual weight found", case_name);
    peft_st_close(resid);
    peft_base_model_free(base);
}

/* save, compare keys/shapes/dtypes and config with PEFT's, reload and compare outputs */
static void check_save_load(run *r, const char *case_name, json_t *entry, const char *name)
{
    char *tmp = tu_tmpdir(), path[4096];
    forward(r, 0);
    float *before = copy_logits(r);
    int64_t n = n_outputs(r);
    ck_assert_msg(peft_save_pretrained(r->m, tmp, NULL, 0, 1) == 0, "%s", peft_errmsg(r->ctx));
    const char *sub = strcmp(name, "default") ? name : "";
    snprintf(path, sizeof path, "%s/%s%sadapter_model.safetensors", tmp, sub, *sub ? "/" : "");
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), path, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_msg(f->metadata_json && strstr(f->metadata_json, "\"format\"") && strstr(f->metadata_json, "\"pt\""),
                  "metadata %s", f->metadata_json ? f->metadata_json : "(none)");
    json_t *keys = json_object_get(entry, "adapter_keys");
    const char *bias = json_string_value(json_object_get(json_object_get(entry, "adapter_config"), "bias"));
    int lora_only = bias && strstr(bias, "_only");
    /* every PEFT key is there with its shape; extra keys only for lora_only biases (which PEFT
     * 0.13.2 drops by mistake: we keep them under the in-memory name) */
    const char *k;
    json_t *shape;
    json_object_foreach(keys, k, shape) {
        const peft_st_entry *e = peft_st_find(f, k);
        ck_assert_msg(e, "%s: saved adapter lacks PEFT key %s", case_name, k);
        ck_assert_int_eq(e->dtype, PEFT_DTYPE_F32);
        ck_assert_int_eq(e->ndim, (int)json_array_size(shape));
        for (int d = 0; d < e->ndim; d++)
            ck_assert_int_eq(e->shape[d], json_integer_value(json_array_get(shape, (size_t)d)));
    }
    for (size_t i = 0; i < f->n_entries; i++)
        ck_assert_msg(json_object_get(keys, f->entries[i].name) ||
                          (lora_only && strstr(f->entries[i].name, "base_layer.bias")),
                      "%s: extra key %s", case_name, f->entries[i].name);
    peft_st_close(f);

    snprintf(path, sizeof path, "%s/%s%sadapter_config.json", tmp, sub, *sub ? "/" : "");
    json_t *cfg = json_load_file(path, 0, NULL), *want = json_object_get(entry, "adapter_config");
    ck_assert(cfg != NULL);
    json_object_foreach(want, k, shape) {
        json_t *mine = json_object_get(cfg, k);
        ck_assert_msg(mine, "%s: adapter_config.json lacks %s", case_name, k);
        if (!strcmp(k, "base_model_name_or_path")) continue;
        if (!strcmp(k, "target_modules") && json_is_array(shape)) { /* a set in PEFT */
            ck_assert_int_eq(json_array_size(mine), json_array_size(shape));
            size_t i, j;
            json_t *a, *b;
            json_array_foreach(shape, i, a) {
                int found = 0;
                json_array_foreach(mine, j, b) found |= json_equal(a, b);
                ck_assert_msg(found, "%s: target %s missing", case_name, json_string_value(a));
            }
            continue;
        }
        int eq = json_equal(mine, shape) ||
                 (json_is_number(mine) && json_is_number(shape) &&
                  fabs(json_number_value(mine) - json_number_value(shape)) < 1e-12);
        char *a = json_dumps(mine, JSON_ENCODE_ANY), *b = json_dumps(shape, JSON_ENCODE_ANY);
        ck_assert_msg(eq, "%s: adapter_config.json %s = %s, PEFT wrote %s", case_name, k, a, b);
        free(a);
        free(b);
    }
    ck_assert_int_eq(json_object_size(cfg), json_object_size(want));
    json_decref(cfg);

    /* reload into a fresh base: same outputs */
    peft_base_model *base;
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s", cur_set, json_string_value(json_object_get(entry, "base_model_dir")));
    ck_assert(peft_load_base_model(r->ctx, tu_fixture(rel), &base) == 0);
    peft_model *m2;
    ck_assert_msg(peft_from_pretrained(r->ctx, base, tmp, name, 0, &m2) == 0, "%s", peft_errmsg(r->ctx));
    peft_model *keep = r->m;
    r->m = m2;
    forward(r, 0);
    double d = diff_outputs_ref(r, before, n);
    ck_assert_msg(d == 0 || (lora_only && d <= TOL), "%s: reloaded adapter differs by %g", case_name, d);
    r->m = keep;
    peft_model_free(m2);
    free(before);
    tu_rmtree(tmp);
    free(tmp);
}

void contract_run_case(const char *case_name) { contract_run_case_flags(case_name, 0); }

void contract_run_case_flags(const char *case_name, unsigned flags)
{
    json_t *entry = case_entry_in(case_name, &cur_set);
    ck_assert_msg(entry, "no case %s in any INDEX.json", case_name);
    cur_flags = flags;
    memset(&seen, 0, sizeof seen);
    run r = {0};
    const char *name;
    open_case(&r, case_name, entry, &name);
    check_counts_and_status(&r, case_name);
    check_outputs_and_grads(&r, case_name, entry);
    check_save_load(&r, case_name, entry, name);
    check_merge_disable_unload(&r, case_name);
    close_case(&r);
    if (getenv("CONTRACT_REPORT"))
        fprintf(stderr, "contract %s: max |diff| vs PEFT: logits %.3g, loss %.3g, grads %.3g, "
                "merged %.3g\n", case_name, seen.logits, seen.loss, seen.grads, seen.merged);
}

static const char *suite_cases[128];

START_TEST(suite_case)
{
    contract_run_case(suite_cases[_i]);
}
END_TEST

int contract_suite_main(const char *suite, const char *const *prefixes, int n_prefixes, int min_cases)
{
    int n = 0;
    for (int p = 0; p < n_prefixes; p++)
        for (const char *const *c = contract_cases(prefixes[p]); *c && n < 127; c++) suite_cases[n++] = *c;
    Suite *s = suite_create(suite);
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, suite_case, 0, n);
    suite_add_tcase(s, tc);
    int failed = tu_run_suite(s);
    return n >= min_cases && failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
