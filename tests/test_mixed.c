/* test_mixed.c — mixed models (PeftMixedModel) on the LLaMA fixture model (LoHa has no GPT-2
 * Conv1D), with the adapters Python PEFT 0.13.2 trained for the llama__lora_default, llama__loha,
 * llama__ia3 and llama__prompt cases, over every pair of the plugins, the triple, and the
 * triple plus prompt tuning; and the other methods PEFT's mixed model takes (LoKr, OFT, AdaLoRA, from
 * the hf-peft-v2 cases on the same base) beside LoRA and LoHa. LoRA and LoHa share q_proj and v_proj; the fixture IA3 takes its
 * own layers (its vectors for k_proj and down_proj, without v_proj), and a separate check puts
 * IA3 and LoRA on one layer in both orders (PEFT's mixed model refuses IA3; libpeft nests it).
 *   1. each part alone in the mixed model gives what it gives alone in a plain PeftModel, and
 *      its fixture's logits (IA3: the plain model on the same layers); all on together differ;
 *   2. the math at one layer: LoRA and LoHa deltas add; IA3 and LoRA nest in the order added;
 *   3. merging in the order added == unmerged outputs, unmerging gives them back bit-exactly,
 *      merge_and_unload (with its progress reports) == the unmerged model;
 *   4. unload hands back the base bit-exactly;
 *   5. get_layer_status / get_model_status against the files in tests/fixtures/mixed/;
 *   6. save (one folder per adapter + peft_mixed.json) and peft_mixed_from_pretrained: same
 *      order, active set, scales and identical logits; each folder an ordinary PEFT adapter;
 *      manifest errors naming the manifest and the entry;
 *   7. a prompt method beside the layer adapters: forward, counts, status, save/load, and the
 *      refusals that stay for non-mixed models;
 *   8. `peft forward --mixed`, `peft forward` of a saved mixed directory, `peft merge` progress;
 *   9. the core's site x adapter traversal (PEFT_EACH_SITE_ADAPTER) on hand-made chains: orders,
 *      one adapter, empty sites, and an entry detached by the loop body. */
#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "core/model/site.h"           /* the site x adapter traversal */
#include "peft/graph.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "testutil.h"
#include "peft/util.h"
#include "peft/warn.h"

#define MODEL "hf-peft/_models/llama"
#define V_PROJ "model.layers.0.self_attn.v_proj"
#define Q_PROJ "model.layers.0.self_attn.q_proj"

/* one fixture adapter: the name it gets in the mixed model, its case */
typedef struct part {
    const char *name, *fixture, *type;
} part;
static const part LORA = {"lora", "hf-peft/llama__lora_default", "LORA"};
static const part LOHA = {"loha", "hf-peft/llama__loha", "LOHA"};
static const part IA3 = {"ia3", NULL, "IA3"}; /* IA3 on k_proj and down_proj: ia3_dir() */
static const part PROMPT = {"prompt", "hf-peft/llama__prompt", "PROMPT_TUNING"};
/* the other methods PEFT 0.13.2's mixed model takes (COMPATIBLE_TUNER_TYPES), on the same base */
static const part LOKR = {"lokr", "hf-peft-v2/llama__lokr", "LOKR"};
static const part OFT = {"oft", "hf-peft-v2/llama__oft", "OFT"};
static const part ADALORA = {"adalora", "hf-peft-v2/llama__adalora", "ADALORA"};

/* the combinations under test, each in the order added */
typedef struct combo {
    const char *label;
    const part *parts[4];
    int n;
} combo;
static const combo COMBOS[] = {
    {"lora+loha", {&LORA, &LOHA}, 2},
    {"lora+ia3", {&LORA, &IA3}, 2},
    {"loha+ia3", {&LOHA, &IA3}, 2},
    {"lora+loha+ia3", {&LORA, &LOHA, &IA3}, 3},
    {"lora+loha+ia3+prompt", {&LORA, &LOHA, &IA3, &PROMPT}, 4},
    {"lora+lokr", {&LORA, &LOKR}, 2},
    {"oft+lora", {&OFT, &LORA}, 2},
    {"adalora+loha+lokr", {&ADALORA, &LOHA, &LOKR}, 3},
};
#define N_COMBOS (int)(sizeof COMBOS / sizeof COMBOS[0])

static peft_ctx *ctx;
static peft_inputs in;
static char *tmp;

static void setup(void)
{
    peft_set_warning_handler(tu_quiet, NULL);
    ctx = peft_ctx_new(7);
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(MODEL "/inputs.json"), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    tmp = tu_tmpdir();
    ck_assert_ptr_nonnull(tmp);
}

static void teardown(void)
{
    peft_inputs_free(&in);
    peft_ctx_free(ctx);
    tu_rmtree(tmp);
    free(tmp);
}

static peft_base_model *load_base(void)
{
    peft_base_model *b;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture(MODEL), &b) == 0, "%s", peft_errmsg(ctx));
    return b;
}

/* the llama__ia3 adapter without its v_proj vectors, written once per test into tmp */
static const char *ia3_dir(void)
{
    static char dir[4096];
    char src[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/ia3_kd", tmp);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    struct stat st;
    if (!stat(path, &st)) return dir;
    ck_assert(mkdir(dir, 0755) == 0);
    snprintf(src, sizeof src, "%s/adapter_config.json", tu_fixture("hf-peft/llama__ia3/adapter"));
    json_t *cfg = json_load_file(src, 0, NULL);
    ck_assert_ptr_nonnull(cfg);
    json_object_set_new(cfg, "target_modules", json_pack("[ss]", "k_proj", "down_proj"));
    ck_assert(json_dump_file(cfg, path, JSON_INDENT(2)) == 0);
    json_decref(cfg);
    snprintf(src, sizeof src, "%s/adapter_model.safetensors", tu_fixture("hf-peft/llama__ia3/adapter"));
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), src, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_st_out outs[8];
    size_t n = 0;
    for (size_t i = 0; i < f->n_entries && n < 8; i++) {
        const peft_st_entry *e = &f->entries[i];
        if (strstr(e->name, "v_proj")) continue;
        outs[n++] = (peft_st_out){e->name, e->dtype, e->ndim, e->shape, e->data};
    }
    ck_assert_int_eq(n, 4);
    static const char *const meta[] = {"format", "pt", NULL};
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    ck_assert_msg(peft_st_write(tu_ctx(), path, outs, n, meta) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_st_close(f);
    return dir;
}

static const char *adapter_dir(const part *p)
{
    static char buf[4][4096];
    static int next;
    if (!p->fixture) return ia3_dir();
    char *b = buf[next++ & 3];
    snprintf(b, sizeof buf[0], "%s", tu_fixture(p->fixture));
    strcat(b, "/adapter");
    return b;
}

/* a mixed model of parts[0..n), added in that order, all active and trainable */
static peft_model *mixed_of(const part *const *parts, int n)
{
    peft_model *m;
    ck_assert_msg(peft_mixed_from_pretrained(ctx, load_base(), adapter_dir(parts[0]), parts[0]->name, 1, &m) == 0,
                  "%s", peft_errmsg(ctx));
    ck_assert(peft_model_is_mixed(m));
    const char *names[4] = {parts[0]->name};
    for (int i = 1; i < n; i++) {
        ck_assert_msg(peft_load_adapter(m, adapter_dir(parts[i]), parts[i]->name, 1) == 0, "%s", peft_errmsg(ctx));
        names[i] = parts[i]->name;
    }
    ck_assert_msg(peft_set_adapters(m, names, n) == 0, "%s", peft_errmsg(ctx));
    return m;
}

static peft_model *combo_model(const combo *c) { return mixed_of(c->parts, c->n); }

/* logits of a forward on the fixture inputs (caller frees), their count in *n */
static float *run(peft_model *m, peft_base_model *b, int64_t *n)
{
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    mi.labels = NULL;
    peft_model_outputs o;
    char err[512] = "";
    if (m) ck_assert_msg(peft_model_forward(m, g, &mi, &o) == 0, "%s", peft_errmsg(ctx));
    else ck_assert_msg(b->arch->forward(b, g, &mi, &o, err, sizeof err) == 0, "%s", err);
    *n = o.logits->numel;
    float *out = malloc((size_t)*n * sizeof *out);
    memcpy(out, o.logits->data, (size_t)*n * sizeof *out);
    peft_graph_free(g);
    return out;
}

/* largest |logits - fixture's peft_logits| (shapes must agree) */
static double vs_fixture(const float *l, int64_t n, const part *p)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/peft_logits.safetensors", tu_fixture(p->fixture));
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), path, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *e = peft_st_find(f, "logits");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq((int64_t)(e->nbytes / 4), n);
    double d = tu_max_abs_diff(l, e->data, n);
    peft_st_close(f);
    return d;
}

static int has_prompt(const combo *c) { return c->parts[c->n - 1] == &PROMPT; }

/* ---- 1. each part alone gives its own fixture ----------------------------------------------- */

START_TEST(parts_match_fixtures)
{
    const combo *c = &COMBOS[_i];
    peft_model *m = combo_model(c);
    int64_t n;
    float *all = run(m, NULL, &n);
    for (int i = 0; i < n; i++) ck_assert_msg(isfinite(all[i]), "%s: logit %d not finite", c->label, i);
    for (int k = 0; k < c->n; k++) {
        ck_assert_msg(peft_set_adapter(m, c->parts[k]->name) == 0, "%s", peft_errmsg(ctx));
        int64_t nk, np;
        float *one = run(m, NULL, &nk);
        peft_model *plain;
        ck_assert_msg(peft_from_pretrained(ctx, load_base(), adapter_dir(c->parts[k]), NULL, 0, &plain) == 0,
                      "%s", peft_errmsg(ctx));
        float *alone = run(plain, NULL, &np);
        ck_assert_int_eq(nk, np);
        ck_assert_msg(memcmp(one, alone, (size_t)nk * 4) == 0, "%s: %s in the mixed model != alone (%g)",
                      c->label, c->parts[k]->name, tu_max_abs_diff(one, alone, nk));
        free(alone);
        peft_model_free(plain);
        double d = c->parts[k]->fixture ? vs_fixture(one, nk, c->parts[k]) : 0;
        ck_assert_msg(d < 2e-6, "%s: %s alone differs from its fixture by %g", c->label, c->parts[k]->name, d);
        if (nk == n) ck_assert_msg(tu_max_abs_diff(one, all, n) > 1e-4, "%s: all on == %s alone", c->label,
                                   c->parts[k]->name);
        free(one);
    }
    free(all);
    peft_model_free(m);
}
END_TEST

/* ---- 2. the math at one layer ---------------------------------------------------------------- */

enum { SN = 6, SC = 32 }; /* tokens, hidden size of the llama fixture */

static peft_site *site_named(peft_model *m, const char *name)
{
    peft_base_model *b = peft_get_base_model(m);
    for (size_t i = 0; i < b->n_sites; i++)
        if (!strcmp(b->sites[i]->info.name, name)) return b->sites[i];
    ck_abort_msg("no site %s", name);
    return NULL;
}

/* the site's output for x (SN, SC) with the given adapters active (NULL: disabled = base) */
static float *site_out(peft_model *m, const char *site, const float *x, const char *const *names, int n,
                       int64_t *len)
{
    if (names) {
        ck_assert(peft_enable_adapter(m) == 0);
        ck_assert_msg(peft_set_adapters(m, names, n) == 0, "%s", peft_errmsg(ctx));
    } else {
        ck_assert(peft_disable_adapter(m) == 0);
    }
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    const int64_t shape[2] = {SN, SC};
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, 2, shape);
    memcpy(t->data, x, sizeof(float) * SN * SC);
    peft_tensor *y = peft_site_forward(g, site_named(m, site), t);
    ck_assert_ptr_nonnull(y);
    *len = y->numel;
    float *out = malloc((size_t)y->numel * sizeof *out);
    memcpy(out, y->data, (size_t)y->numel * sizeof *out);
    peft_graph_free(g);
    peft_tensor_free(t);
    ck_assert(peft_enable_adapter(m) == 0);
    return out;
}

static void random_x(float *x)
{
    peft_rng r;
    peft_rng_seed(&r, 99);
    for (int i = 0; i < SN * SC; i++) x[i] = (float)peft_rng_normal(&r);
}

START_TEST(site_lora_plus_loha_adds)
{
    const part *parts[2] = {&LORA, &LOHA};
    peft_model *m = mixed_of(parts, 2);
    float x[SN * SC];
    random_x(x);
    const char *both[2] = {"lora", "loha"}, *lora[1] = {"lora"}, *loha[1] = {"loha"};
    int64_t n;
    float *yb = site_out(m, Q_PROJ, x, NULL, 0, &n), *ym = site_out(m, Q_PROJ, x, both, 2, &n);
    float *yl = site_out(m, Q_PROJ, x, lora, 1, &n), *yh = site_out(m, Q_PROJ, x, loha, 1, &n);
    double worst = 0, dl = 0, dh = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = ((double)yl[i] - yb[i]) + ((double)yh[i] - yb[i]);
        worst = fmax(worst, fabs(((double)ym[i] - yb[i]) - want));
        dl = fmax(dl, fabs((double)yl[i] - yb[i]));
        dh = fmax(dh, fabs((double)yh[i] - yb[i]));
    }
    ck_assert_msg(dl > 1e-3 && dh > 1e-4, "the deltas are too small to test (%g, %g)", dl, dh);
    ck_assert_msg(worst < 1e-6, "mixed - base != (lora - base) + (loha - base): %g", worst);
    free(yb), free(ym), free(yl), free(yh);
    peft_model_free(m);
}
END_TEST

/* IA3 shares a layer with LoRA, nested in the order added as PEFT's mixed model nests them:
 * on a feed-forward layer IA3 scales the input of the base and of the adapters added BEFORE it.
 *   lora then ia3:  y = W (x l) + lora(x l)
 *   ia3 then lora:  y = W (x l) + lora(x)
 * and in both orders merging (in the order added) gives the unmerged outputs. */
#define DOWN "model.layers.0.mlp.down_proj"
static const char *NEST_LORA = "{\"peft_type\":\"LORA\",\"r\":2,\"init_lora_weights\":false,"
                               "\"target_modules\":[\"down_proj\"]}";
static const char *NEST_IA3 = "{\"peft_type\":\"IA3\",\"init_ia3_weights\":false,"
                              "\"target_modules\":[\"down_proj\"],\"feedforward_modules\":[\"down_proj\"]}";

/* the site's output for rows x (N, in) with the given adapters active (NULL: disabled) */
static float *nest_out(peft_model *m, const float *x, int64_t N, const char *const *names, int n, int64_t *len)
{
    peft_site *s = site_named(m, DOWN);
    if (names) ck_assert_msg(peft_set_adapters(m, names, n) == 0, "%s", peft_errmsg(ctx));
    else ck_assert(peft_disable_adapter(m) == 0);
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    const int64_t shape[2] = {N, s->info.in_features};
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, 2, shape);
    memcpy(t->data, x, sizeof(float) * (size_t)t->numel);
    peft_tensor *y = peft_site_forward(g, s, t);
    ck_assert_ptr_nonnull(y);
    *len = y->numel;
    float *out = malloc((size_t)y->numel * sizeof *out);
    memcpy(out, y->data, (size_t)y->numel * sizeof *out);
    peft_graph_free(g);
    peft_tensor_free(t);
    ck_assert(peft_enable_adapter(m) == 0);
    return out;
}

START_TEST(site_ia3_nests_with_lora)
{
    for (int order = 0; order < 2; order++) {
        const char *first = order ? "ia3" : "lora", *second = order ? "lora" : "ia3";
        peft_model *m;
        ck_assert_msg(peft_get_peft_model(ctx, load_base(), order ? NEST_IA3 : NEST_LORA, first, 1, &m) == 0,
                      "%s", peft_errmsg(ctx));
        ck_assert_msg(peft_add_adapter(m, second, order ? NEST_LORA : NEST_IA3) == 0, "%s", peft_errmsg(ctx));
        /* the IA3 vector l (1, in) of the layer */
        peft_state_dict *sd;
        ck_assert(peft_get_peft_model_state_dict(m, "ia3", &sd) == 0);
        const float *l = NULL;
        for (size_t i = 0; i < sd->n; i++)
            if (strstr(sd->names[i], "layers.0.mlp.down_proj.ia3_l")) l = peft_f32(sd->tensors[i]);
        ck_assert_ptr_nonnull(l);
        int64_t n_in = site_named(m, DOWN)->info.in_features, N = 3, n;
        float *x = malloc(sizeof(float) * (size_t)(N * n_in)), *xl = malloc(sizeof(float) * (size_t)(N * n_in));
        peft_rng r;
        peft_rng_seed(&r, 5);
        for (int64_t i = 0; i < N * n_in; i++) {
            x[i] = (float)peft_rng_normal(&r);
            xl[i] = x[i] * l[i % n_in];
        }
        const char *both[2] = {first, second}, *lora[1] = {"lora"}, *ia3[1] = {"ia3"};
        float *ym = nest_out(m, x, N, both, 2, &n), *yb = nest_out(m, x, N, NULL, 0, &n);
        float *yl = nest_out(m, x, N, lora, 1, &n), *yl_xl = nest_out(m, xl, N, lora, 1, &n);
        float *yi = nest_out(m, x, N, ia3, 1, &n);
        double worst = 0, spread = 0;
        for (int64_t i = 0; i < n; i++) {
            double want = order ? (double)yi[i] + ((double)yl[i] - yb[i]) : (double)yl_xl[i];
            worst = fmax(worst, fabs(ym[i] - want));
            spread = fmax(spread, fabs((double)yl_xl[i] - (yi[i] + ((double)yl[i] - yb[i]))));
        }
        ck_assert_msg(spread > 1e-4, "the two nestings should differ here (%g)", spread);
        ck_assert_msg(worst < 1e-5, "order %s, %s: nested output off by %g", first, second, worst);
        /* merging in the order added == unmerged; unmerging restores it bit-exactly */
        ck_assert(peft_set_adapters(m, both, 2) == 0);
        ck_assert_msg(peft_merge_adapter(m, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
        peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
        const int64_t shape[2] = {N, n_in};
        peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, 2, shape);
        memcpy(t->data, x, sizeof(float) * (size_t)(N * n_in));
        peft_tensor *y = peft_site_forward(g, site_named(m, DOWN), t);
        ck_assert_msg(tu_max_abs_diff(peft_f32(y), ym, n) < 1e-5, "merged differs by %g",
                      tu_max_abs_diff(peft_f32(y), ym, n));
        peft_graph_free(g);
        peft_tensor_free(t);
        ck_assert(peft_unmerge_adapter(m) == 0);
        float *again = nest_out(m, x, N, both, 2, &n);
        ck_assert(memcmp(again, ym, sizeof(float) * (size_t)n) == 0);
        free(again), free(ym), free(yb), free(yl), free(yl_xl), free(yi), free(x), free(xl);
        peft_state_dict_free(sd);
        peft_model_free(m);
    }
}
END_TEST

/* ---- 3. merging ------------------------------------------------------------------------------ */

typedef struct seen {
    int64_t calls, last_done, total;
    char first[256], last[256], task[64];
} seen;

static void on_progress(void *ud, const char *task, int64_t done, int64_t total, const char *item)
{
    seen *s = ud;
    ck_assert_int_eq(done, s->last_done + 1);
    if (!s->calls) snprintf(s->first, sizeof s->first, "%s", item);
    snprintf(s->last, sizeof s->last, "%s", item);
    snprintf(s->task, sizeof s->task, "%s", task);
    s->calls++;
    s->last_done = done;
    s->total = total;
}

/* adapted layers of the model (sites with a chain) */
static int64_t adapted_layers(peft_model *m)
{
    peft_base_model *b = peft_get_base_model(m);
    int64_t k = 0;
    for (size_t i = 0; i < b->n_sites; i++) k += b->sites[i]->n_chain > 0;
    return k;
}

START_TEST(merge_order)
{
    const combo *c = &COMBOS[_i];
    peft_model *m = combo_model(c);
    int64_t n;
    float *un = run(m, NULL, &n);
    ck_assert_msg(peft_merge_adapter(m, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
    float *me = run(m, NULL, &n);
    double d = tu_max_abs_diff(un, me, n);
    ck_assert_msg(d < 1e-5, "%s: merged differs from unmerged by %g", c->label, d);
    char *st;
    ck_assert(peft_get_model_status(m, &st) == 0);
    json_t *j = json_loads(st, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(j, "merged_adapters")), c->n - has_prompt(c));
    json_decref(j);
    free(st);
    ck_assert(peft_unmerge_adapter(m) == 0);
    float *back = run(m, NULL, &n);
    ck_assert_msg(memcmp(back, un, (size_t)n * 4) == 0, "%s: unmerging is not bit-exact", c->label);
    free(me), free(back);

    /* merge_and_unload in the order added, whatever order the names come in, one progress
     * report per adapted layer */
    const char *rev[4];
    int nr = 0;
    for (int k = c->n - 1; k >= 0; k--)
        if (c->parts[k] != &PROMPT) rev[nr++] = c->parts[k]->name;
    if (has_prompt(c)) { /* the active prompt adapter cannot be folded in */
        ck_assert_int_eq(peft_merge_and_unload(m, 1, NULL, 0, NULL), PEFT_EINVAL);
        ck_assert_msg(strstr(peft_errmsg(ctx), "'prompt' is active and PROMPT_TUNING"), "%s", peft_errmsg(ctx));
        ck_assert_int_eq(peft_merge_adapter(m, (const char *[]){"prompt"}, 1, 1), PEFT_EINVAL);
        ck_assert_msg(strstr(peft_errmsg(ctx), "no weights to merge"), "%s", peft_errmsg(ctx));
        ck_assert(peft_set_adapters(m, rev, nr) == 0); /* without the prompt: comparable logits */
        free(un);
        un = run(m, NULL, &n);
    }
    seen s = {0};
    peft_set_progress_handler(ctx, on_progress, &s);
    int64_t layers = adapted_layers(m);
    peft_base_model *b;
    ck_assert_msg(peft_merge_and_unload(m, 1, rev, nr, &b) == 0, "%s", peft_errmsg(ctx));
    peft_set_progress_handler(ctx, NULL, NULL);
    ck_assert_int_eq(s.calls, layers);
    ck_assert_int_eq(s.total, layers);
    ck_assert_str_eq(s.task, "merge_and_unload");
    ck_assert_msg(strstr(s.first, "model.layers.0."), "%s", s.first);
    ck_assert_msg(strstr(s.last, "model.layers.1."), "%s", s.last);
    ck_assert_ptr_null(b->prompt);
    float *mu = run(NULL, b, &n);
    d = tu_max_abs_diff(un, mu, n);
    ck_assert_msg(d < 1e-5, "%s: merge_and_unload differs by %g", c->label, d);
    free(un), free(mu);
    peft_base_model_free(b);
}
END_TEST

/* ---- 4. unload ------------------------------------------------------------------------------- */

START_TEST(unload_restores)
{
    const combo *c = &COMBOS[_i];
    peft_base_model *fresh = load_base();
    int64_t n, n2;
    float *want = run(NULL, fresh, &n);
    peft_model *m = combo_model(c);
    ck_assert(peft_merge_adapter(m, (const char *[]){c->parts[0]->name}, 1, 0) == 0); /* half merged */
    peft_base_model *b;
    ck_assert(peft_unload(m, &b) == 0);
    ck_assert_ptr_null(b->prompt);
    float *got = run(NULL, b, &n2);
    ck_assert_int_eq(n, n2);
    ck_assert_msg(memcmp(want, got, (size_t)n * 4) == 0, "%s: unload is not the base bit-exactly", c->label);
    ck_assert_int_eq(b->n_params, fresh->n_params);
    for (size_t i = 0; i < b->n_params; i++) {
        const peft_tensor *x = b->params[i].t, *y = fresh->params[i].t;
        ck_assert_int_eq(x->dtype, y->dtype);
        ck_assert_msg(memcmp(x->data, y->data, (size_t)x->numel * 4) == 0, "%s differs", b->params[i].name);
        ck_assert(!x->requires_grad);
    }
    free(want), free(got);
    peft_base_model_free(b);
    peft_base_model_free(fresh);
}
END_TEST

/* ---- 5. status ------------------------------------------------------------------------------- */

/* tests/fixtures/mixed/<rel>: from the repo root (make check), or from the binary's place */
static const char *mfix(const char *rel)
{
    static char b[PATH_MAX];
    struct stat st;
    snprintf(b, sizeof b, "tests/fixtures/mixed/%s", rel);
    if (!stat(b, &st)) return b;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        snprintf(b, sizeof b, "%s/../../tests/fixtures/mixed/%s", dirname(exe), rel);
    }
    return b;
}

static void status_is(peft_model *m, const char *stem)
{
    for (int k = 0; k < 2; k++) {
        char *st, rel[256];
        ck_assert_msg((k ? peft_get_layer_status : peft_get_model_status)(m, &st) == 0, "%s", peft_errmsg(ctx));
        snprintf(rel, sizeof rel, "%s_%s_status.json", stem, k ? "layer" : "model");
        json_error_t jerr;
        json_t *want = json_load_file(mfix(rel), 0, &jerr);
        ck_assert_msg(want, "%s: %s", mfix(rel), jerr.text);
        json_t *got = json_loads(st, 0, NULL);
        ck_assert_msg(json_equal(want, got), "%s differs; we say:\n%s", rel, st);
        json_decref(want);
        json_decref(got);
        free(st);
    }
}

START_TEST(status_files)
{
    /* LoRA and LoHa on the same layers, both active and trainable */
    const part *ll[2] = {&LORA, &LOHA};
    peft_model *m = mixed_of(ll, 2);
    status_is(m, "lora_loha");
    peft_model_free(m);

    /* LoRA (q, v) and IA3 (k, down): only LoRA active, then merged; ia3-only layers still
     * list the active set, as PEFT's set_adapter leaves it on every layer */
    const part *li[2] = {&LORA, &IA3};
    m = mixed_of(li, 2);
    ck_assert(peft_set_adapter(m, "lora") == 0);
    ck_assert(peft_merge_adapter(m, NULL, 0, 1) == 0);
    status_is(m, "lora_ia3_merged");
    peft_model_free(m);

    /* the triple plus prompt tuning, adapters disabled */
    const part *all[4] = {&LORA, &LOHA, &IA3, &PROMPT};
    m = mixed_of(all, 4);
    ck_assert(peft_disable_adapter(m) == 0);
    status_is(m, "lora_loha_ia3_prompt_disabled");
    peft_model_free(m);
}
END_TEST

/* ---- 6. saving and loading ------------------------------------------------------------------- */

static int exists(const char *dir, const char *rel)
{
    char p[4096];
    struct stat st;
    return peft_path_join(p, sizeof p, dir, rel) == 0 && stat(p, &st) == 0;
}

START_TEST(save_load_round_trip)
{
    const combo *c = &COMBOS[_i];
    peft_model *m = combo_model(c);
    /* a non-trivial state: all but the first active, a runtime scale on the second */
    const char *act[4];
    for (int k = 1; k < c->n; k++) act[k - 1] = c->parts[k]->name;
    ck_assert(peft_set_adapters(m, act, c->n - 1) == 0);
    ck_assert_msg(peft_set_adapter_scale(m, c->parts[1]->name, 0.5) == 0 || c->parts[1] == &IA3,
                  "%s", peft_errmsg(ctx));
    int64_t n, n2;
    float *want = run(m, NULL, &n);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", tmp, c->label);
    ck_assert_msg(peft_save_pretrained(m, dir, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
    ck_assert(peft_is_mixed_dir(dir));
    ck_assert(!exists(dir, "adapter_config.json")); /* no adapter is named "default" */
    for (int k = 0; k < c->n; k++) {
        char rel[256];
        snprintf(rel, sizeof rel, "%s/adapter_model.safetensors", c->parts[k]->name);
        ck_assert_msg(exists(dir, rel), "%s missing", rel);
    }
    /* the manifest: order, types, folders, the active set */
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/peft_mixed.json", dir);
    json_t *man = json_load_file(mpath, 0, NULL);
    ck_assert_ptr_nonnull(man);
    ck_assert_int_eq(json_integer_value(json_object_get(man, "format_version")), 1);
    json_t *list = json_object_get(man, "adapters");
    ck_assert_int_eq(json_array_size(list), c->n);
    for (int k = 0; k < c->n; k++) {
        json_t *e = json_array_get(list, k);
        ck_assert_str_eq(json_string_value(json_object_get(e, "name")), c->parts[k]->name);
        ck_assert_str_eq(json_string_value(json_object_get(e, "peft_type")), c->parts[k]->type);
        ck_assert_str_eq(json_string_value(json_object_get(e, "folder")), c->parts[k]->name);
    }
    ck_assert_int_eq(json_array_size(json_object_get(man, "active_adapters")), c->n - 1);
    json_decref(man);

    peft_model *r;
    ck_assert_msg(peft_mixed_from_pretrained(ctx, load_base(), dir, NULL, 0, &r) == 0, "%s", peft_errmsg(ctx));
    ck_assert_int_eq(peft_adapter_count(r), c->n);
    for (int k = 0; k < c->n; k++) {
        ck_assert_str_eq(peft_adapter_name(r, k), c->parts[k]->name);
        ck_assert_int_eq(peft_adapter_active(r, k), k > 0);
    }
    float *got = run(r, NULL, &n2);
    ck_assert_int_eq(n, n2);
    ck_assert_msg(memcmp(want, got, (size_t)n * 4) == 0, "%s: reloaded logits differ by %g", c->label,
                  tu_max_abs_diff(want, got, n));
    int64_t t, a;
    peft_get_nb_trainable_parameters(r, &t, &a);
    ck_assert_int_eq(t, 0); /* loaded for inference */
    peft_model_free(r);

    /* a manifest names its adapters: an adapter_name is refused, the base stays the caller's */
    peft_base_model *b = load_base();
    ck_assert_int_eq(peft_mixed_from_pretrained(ctx, b, dir, "x", 0, &r), PEFT_EINVAL);
    ck_assert_msg(strstr(peft_errmsg(ctx), "peft_mixed.json"), "%s", peft_errmsg(ctx));
    peft_base_model_free(b);

    /* each folder is an ordinary PEFT adapter: alone it gives what the adapter it came from
     * gives alone (and so its fixture's logits) */
    for (int k = 0; k < c->n; k++) {
        char sub[4200];
        snprintf(sub, sizeof sub, "%s/%s", dir, c->parts[k]->name);
        ck_assert_msg(peft_from_pretrained(ctx, load_base(), sub, NULL, 0, &r) == 0, "%s", peft_errmsg(ctx));
        float *one = run(r, NULL, &n2);
        peft_model_free(r);
        ck_assert(peft_from_pretrained(ctx, load_base(), adapter_dir(c->parts[k]), NULL, 0, &r) == 0);
        float *orig = run(r, NULL, &n2);
        peft_model_free(r);
        ck_assert_msg(memcmp(one, orig, (size_t)n2 * 4) == 0, "%s: saved folder %s differs by %g", c->label, sub,
                      tu_max_abs_diff(one, orig, n2));
        free(one), free(orig);
    }
    free(want), free(got);
    peft_model_free(m);
}
END_TEST

/* "default" is saved in the directory itself (folder "."), the others in <dir>/<name>; a
 * disabled model comes back disabled */
START_TEST(save_default_and_disabled)
{
    peft_model *m;
    ck_assert(peft_mixed_from_pretrained(ctx, load_base(), adapter_dir(&LOHA), NULL, 1, &m) == 0);
    ck_assert_str_eq(peft_adapter_name(m, 0), "default");
    ck_assert(peft_load_adapter(m, adapter_dir(&LORA), "l", 1) == 0);
    ck_assert(peft_set_adapters(m, (const char *[]){"default", "l"}, 2) == 0);
    int64_t n, n2;
    float *on = run(m, NULL, &n);
    ck_assert(peft_disable_adapter(m) == 0);
    ck_assert(peft_save_pretrained(m, tmp, NULL, 0, 1) == 0);
    ck_assert(exists(tmp, "adapter_config.json") && exists(tmp, "l/adapter_config.json"));
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/peft_mixed.json", tmp);
    json_t *man = json_load_file(mpath, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(man, "adapters"), 0), "folder")), ".");
    ck_assert(json_is_false(json_object_get(man, "enabled")));
    json_decref(man);
    peft_model *r;
    ck_assert_msg(peft_mixed_from_pretrained(ctx, load_base(), tmp, NULL, 0, &r) == 0, "%s", peft_errmsg(ctx));
    peft_base_model *fresh = load_base();
    float *base = run(NULL, fresh, &n2), *off = run(r, NULL, &n2);
    ck_assert(memcmp(base, off, (size_t)n2 * 4) == 0);
    ck_assert(peft_enable_adapter(r) == 0);
    float *back = run(r, NULL, &n2);
    ck_assert(memcmp(on, back, (size_t)n * 4) == 0);
    free(on), free(base), free(off), free(back);
    peft_base_model_free(fresh);
    peft_model_free(r);
    peft_model_free(m);
}
END_TEST

static void rewrite_manifest(const char *dir, const char *from, const char *to)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/peft_mixed.json", dir);
    size_t len;
    char *text = tu_read_file(p, &len);
    ck_assert_ptr_nonnull(text);
    char *at = strstr(text, from);
    ck_assert_msg(at, "'%s' not in the manifest", from);
    char out[16384];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    ck_assert(tu_write_file(p, out, strlen(out)) == 0);
    free(text);
}

/* a refused load leaves the caller's base without adapters */
static void load_fails(const char *dir, int code, const char *want1, const char *want2)
{
    peft_base_model *b = load_base();
    peft_model *r = NULL;
    ck_assert_int_eq(peft_mixed_from_pretrained(ctx, b, dir, NULL, 0, &r), code);
    ck_assert_msg(strstr(peft_errmsg(ctx), want1) && strstr(peft_errmsg(ctx), want2), "%s", peft_errmsg(ctx));
    for (size_t i = 0; i < b->n_sites; i++) ck_assert_int_eq(b->sites[i]->n_chain, 0);
    ck_assert_ptr_null(b->prompt);
    peft_base_model_free(b);
}

START_TEST(manifest_errors)
{
    const part *parts[3] = {&LORA, &LOHA, &PROMPT};
    peft_model *m = mixed_of(parts, 3);
    ck_assert(peft_set_adapters(m, (const char *[]){"lora", "loha"}, 2) == 0);
    char dir[4096], sub[4200];
    snprintf(dir, sizeof dir, "%s/mixed", tmp);
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0);
    peft_model_free(m);

    rewrite_manifest(dir, "\"LOHA\"", "\"LORA\"");
    load_fails(dir, PEFT_EFORMAT, "peft_mixed.json: adapters[1] ('loha')",
               "the manifest says peft_type LORA but");
    rewrite_manifest(dir, "\"peft_type\": \"LORA\",\n      \"folder\": \"loha\"",
                     "\"peft_type\": \"LOHA\",\n      \"folder\": \"../loha\"");
    load_fails(dir, PEFT_EFORMAT, "adapters[1] ('loha'): folder '../loha'", "relative path");
    rewrite_manifest(dir, "\"../loha\"", "\"loha\"");
    rewrite_manifest(dir, "\"format_version\": 1", "\"format_version\": 7");
    load_fails(dir, PEFT_EFORMAT, "peft_mixed.json: format_version 7", "newer");
    rewrite_manifest(dir, "\"format_version\": 7", "\"format_version\": 1");
    rewrite_manifest(dir, "\"active_adapters\": [\n    \"lora\"", "\"active_adapters\": [\n    \"nope\"");
    load_fails(dir, PEFT_EFORMAT, "active_adapters[0]", "not one of the adapters");
    rewrite_manifest(dir, "\"nope\"", "\"lora\"");
    snprintf(sub, sizeof sub, "%s/loha", dir);
    tu_rmtree(sub);
    load_fails(dir, PEFT_EIO, "peft_mixed.json: adapters[1] ('loha'): folder", "is missing");
    snprintf(sub, sizeof sub, "%s/peft_mixed.json", dir);
    ck_assert(tu_write_file(sub, "{\"format\": \"libpeft-mixed\"", 26) == 0);
    load_fails(dir, PEFT_EFORMAT, "peft_mixed.json: invalid JSON", "");
}
END_TEST

/* ---- 7. a prompt method beside layer adapters ------------------------------------------------ */

static int64_t fixture_trainable(const part *p)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/nb_trainable_parameters.json", tu_fixture(p->fixture));
    json_t *j = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(j);
    int64_t v = json_integer_value(json_object_get(j, "trainable_params"));
    json_decref(j);
    return v;
}

START_TEST(prompt_in_mixed)
{
    const part *parts[3] = {&LORA, &LOHA, &PROMPT};
    peft_model *m = mixed_of(parts, 3);
    peft_base_model *b = peft_get_base_model(m);
    ck_assert_ptr_nonnull(b->prompt);
    int64_t n;
    float *all = run(m, NULL, &n);
    ck_assert_int_eq(n, 2 * (8 + 5) * 128); /* five virtual tokens */
    /* counts: every part's parameters, all trainable (all active, loaded trainable) */
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    ck_assert_int_eq(t, fixture_trainable(&LORA) + fixture_trainable(&LOHA) + fixture_trainable(&PROMPT));
    ck_assert_int_eq(a, 26784 + t);
    /* state dicts: the prompt adapter's saved keys are PEFT's, in memory under prompt_encoder */
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, "prompt", &sd) == 0);
    ck_assert_int_eq(sd->n, 1);
    ck_assert_str_eq(sd->names[0], "prompt_embeddings");
    peft_state_dict_free(sd);
    ck_assert(peft_trainable_parameters(m, &sd) == 0);
    ck_assert_str_eq(sd->names[sd->n - 1], "prompt_encoder.prompt.embedding.weight");
    ck_assert_msg(strstr(sd->names[0], "base_model.model.model.layers.0."), "%s", sd->names[0]);
    peft_state_dict_free(sd);
    /* only one prompt-learning adapter active at a time, beside any layer adapters */
    ck_assert(peft_load_adapter(m, adapter_dir(&PROMPT), "prompt2", 0) == 0);
    ck_assert_int_eq(peft_set_adapters(m, (const char *[]){"lora", "prompt", "prompt2"}, 3), PEFT_EINVAL);
    ck_assert_msg(strstr(peft_errmsg(ctx), "only one prompt-learning adapter"), "%s", peft_errmsg(ctx));
    ck_assert(peft_delete_adapter(m, "prompt2") == 0);
    ck_assert(peft_set_adapters(m, (const char *[]){"lora", "loha", "prompt"}, 3) == 0);
    float *again = run(m, NULL, &n);
    ck_assert(memcmp(all, again, (size_t)n * 4) == 0);
    /* status: the layers, and the prompt adapter in its own field */
    char *st;
    ck_assert(peft_get_model_status(m, &st) == 0);
    json_t *j = json_loads(st, 0, NULL);
    json_t *p = json_object_get(json_object_get(j, "prompt_learning_adapters"), "prompt");
    ck_assert_msg(p && json_is_true(json_object_get(p, "active")), "%s", st);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "peft_types"), "prompt")), "PROMPT_TUNING");
    ck_assert_int_eq(json_array_size(json_object_get(j, "available_adapters")), 2);
    json_decref(j);
    free(st);
    /* save and load */
    ck_assert(peft_save_pretrained(m, tmp, NULL, 0, 1) == 0);
    peft_model *r;
    ck_assert_msg(peft_mixed_from_pretrained(ctx, load_base(), tmp, NULL, 0, &r) == 0, "%s", peft_errmsg(ctx));
    float *re = run(r, NULL, &n);
    ck_assert_msg(memcmp(all, re, (size_t)n * 4) == 0, "reloaded logits differ by %g", tu_max_abs_diff(all, re, n));
    peft_model_free(r);
    /* disabling drops the hooks and the layers: the base model */
    ck_assert(peft_disable_adapter(m) == 0);
    ck_assert_ptr_null(b->prompt);
    peft_base_model *fresh = load_base();
    float *off = run(m, NULL, &n), *base = run(NULL, fresh, &n);
    ck_assert(memcmp(off, base, (size_t)n * 4) == 0);
    peft_base_model_free(fresh);
    free(all), free(again), free(re), free(off), free(base);
    peft_model_free(m);
}
END_TEST

/* a prompt method added after the layer adapters, with get_peft_model, and the refusals that
 * stay for models that are not mixed */
START_TEST(prompt_refusals_stay)
{
    char *lcfg = NULL, *pcfg = NULL;
    size_t len;
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", adapter_dir(&LORA));
    ck_assert_ptr_nonnull(lcfg = tu_read_file(path, &len));
    snprintf(path, sizeof path, "%s/adapter_config.json", adapter_dir(&PROMPT));
    ck_assert_ptr_nonnull(pcfg = tu_read_file(path, &len));
    peft_model *m;
    ck_assert(peft_get_peft_model(ctx, load_base(), lcfg, "l", 0, &m) == 0);
    ck_assert_int_ne(peft_add_adapter(m, "p", pcfg), 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "need a mixed model"), "%s", peft_errmsg(ctx));
    peft_model_free(m);
    ck_assert(peft_get_peft_model(ctx, load_base(), pcfg, "p", 0, &m) == 0);
    ck_assert_int_ne(peft_add_adapter(m, "l", lcfg), 0);
    char *st;
    ck_assert_int_eq(peft_get_model_status(m, &st), PEFT_EINVAL); /* as PEFT */
    peft_model_free(m);
    /* mixed: the prompt adapter first, then a layer adapter; both work */
    ck_assert_msg(peft_get_peft_model(ctx, load_base(), pcfg, "p", 1, &m) == 0, "%s", peft_errmsg(ctx));
    ck_assert_msg(peft_add_adapter(m, "l", lcfg) == 0, "%s", peft_errmsg(ctx));
    ck_assert(peft_set_adapters(m, (const char *[]){"p", "l"}, 2) == 0);
    ck_assert(peft_get_layer_status(m, &st) == 0);
    ck_assert_msg(strstr(st, "\"lora.Linear\""), "%s", st);
    free(st);
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, "l", &sd) == 0);
    ck_assert_msg(!strncmp(sd->names[0], "base_model.model.model.layers.0.", 32), "%s", sd->names[0]);
    peft_state_dict_free(sd);
    peft_model_free(m);
    free(lcfg);
    free(pcfg);
}
END_TEST

/* ---- 8. the command line --------------------------------------------------------------------- */

static float *file_logits(const char *path, int64_t *n)
{
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), path, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *e = peft_st_find(f, "logits");
    ck_assert_ptr_nonnull(e);
    *n = (int64_t)(e->nbytes / 4);
    float *l = malloc(e->nbytes);
    memcpy(l, e->data, e->nbytes);
    peft_st_close(f);
    return l;
}

START_TEST(cli_mixed)
{
    const part *parts[3] = {&LORA, &LOHA, &IA3};
    peft_model *m = mixed_of(parts, 3);
    int64_t n, n2;
    float *want = run(m, NULL, &n);
    char *out, o[4200], dir[4200];
    snprintf(o, sizeof o, "%s/o.safetensors", tmp);
    snprintf(dir, sizeof dir, "%s/saved", tmp);
    int rc = tu_run_peft(&out, "forward --model %s --adapter %s:lora --adapter %s:loha --adapter %s:ia3 --mixed "
                         "--input %s --output %s", tu_fixture(MODEL), adapter_dir(&LORA), adapter_dir(&LOHA),
                         adapter_dir(&IA3), tu_fixture(MODEL "/inputs.json"), o);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    float *got = file_logits(o, &n2);
    ck_assert_int_eq(n, n2);
    ck_assert_msg(tu_max_abs_diff(want, got, n) < 1e-6, "peft forward --mixed differs by %g", tu_max_abs_diff(want, got, n));
    free(got);
    /* without --mixed: refused with the hint */
    rc = tu_run_peft(&out, "forward --model %s --adapter %s:lora --adapter %s:loha --input %s --output %s",
                     tu_fixture(MODEL), adapter_dir(&LORA), adapter_dir(&LOHA), tu_fixture(MODEL "/inputs.json"), o);
    ck_assert_msg(rc != 0 && strstr(out, "(pass --mixed)"), "%s", out);
    free(out);
    /* a saved mixed directory loads as that model (its active set: ia3 off) */
    ck_assert(peft_set_adapters(m, (const char *[]){"lora", "loha"}, 2) == 0);
    free(want);
    want = run(m, NULL, &n);
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0);
    rc = tu_run_peft(&out, "forward --model %s --adapter %s --input %s --output %s", tu_fixture(MODEL), dir,
                     tu_fixture(MODEL "/inputs.json"), o);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    got = file_logits(o, &n2);
    ck_assert_msg(tu_max_abs_diff(want, got, n) < 1e-6, "forward of the saved directory differs by %g",
                  tu_max_abs_diff(want, got, n));
    free(got);
    rc = tu_run_peft(&out, "forward --model %s --adapter %s:x --input %s --output %s", tu_fixture(MODEL), dir,
                     tu_fixture(MODEL "/inputs.json"), o);
    ck_assert_msg(rc != 0 && strstr(out, "names come from the manifest"), "%s", out);
    free(out);
    /* peft merge of the saved directory: progress lines on a non-terminal, then the report */
    rc = tu_run_peft(&out, "merge --model %s --adapter %s --output %s/merged", tu_fixture(MODEL), dir, tmp);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, "merge_and_unload: 4/4 layers (100%)"), "%s", out);
    ck_assert_msg(strstr(out, "merged 2 adapters"), "%s", out);
    free(out);
    free(want);
    peft_model_free(m);
}
END_TEST

/* ---- 9. the site x adapter traversal ---- */

/* "site.entry:adapter" per visited entry, joined by spaces; with detach, each visited entry of
 * adapter `drop` is taken out of its chain (as peft_site_detach does, without a plugin) */
static void walk(peft_base_model *b, const peft_adapter *only, int reverse, const peft_adapter *drop,
                 char *out, size_t len)
{
    *out = 0;
    for (peft_site_iter it = peft_site_iter_first(b, only, reverse); it.sa; peft_site_iter_next(&it)) {
        ck_assert_ptr_eq(it.sa, &it.site->chain[it.j]);
        snprintf(out + strlen(out), len - strlen(out), "%s%s.%d:%s", *out ? " " : "",
                 it.site->info.name, it.j, it.sa->adapter->name);
        if (it.sa->adapter == drop) {
            memmove(&it.site->chain[it.j], &it.site->chain[it.j + 1],
                    (size_t)(it.site->n_chain - it.j - 1) * sizeof *it.sa);
            it.site->n_chain--;
        }
    }
}

START_TEST(traversal_orders)
{
    peft_adapter a = {.name = "a"}, bb = {.name = "b"}, c = {.name = "c"};
    peft_site_adapter c0[] = {{.adapter = &a}, {.adapter = &bb}, {.adapter = &c}};
    peft_site_adapter c2[] = {{.adapter = &bb}, {.adapter = &a}};
    peft_site s0 = {.info = {.name = "s0"}, .chain = c0, .n_chain = 3};
    peft_site s1 = {.info = {.name = "s1"}}; /* no adapter */
    peft_site s2 = {.info = {.name = "s2"}, .chain = c2, .n_chain = 2};
    peft_site *sites[] = {&s0, &s1, &s2};
    peft_base_model b = {.sites = sites, .n_sites = 3};
    char got[256];
    walk(&b, NULL, 0, NULL, got, sizeof got);
    ck_assert_str_eq(got, "s0.0:a s0.1:b s0.2:c s2.0:b s2.1:a");
    walk(&b, NULL, 1, NULL, got, sizeof got);
    ck_assert_str_eq(got, "s2.1:a s2.0:b s0.2:c s0.1:b s0.0:a");
    walk(&b, &a, 0, NULL, got, sizeof got);
    ck_assert_str_eq(got, "s0.0:a s2.1:a");
    walk(&b, &c, 1, NULL, got, sizeof got);
    ck_assert_str_eq(got, "s0.2:c");
    /* the macro form visits the same entries */
    int n = 0;
    PEFT_EACH_SITE_ADAPTER(it, &b, &bb) n += it.sa->adapter == &bb;
    ck_assert_int_eq(n, 2);
    /* the body detaches: forward goes on with the entry that moved into the place */
    walk(&b, NULL, 0, &bb, got, sizeof got);
    ck_assert_str_eq(got, "s0.0:a s0.1:b s0.1:c s2.0:b s2.0:a");
    ck_assert_int_eq(s0.n_chain, 2);
    ck_assert_int_eq(s2.n_chain, 1);
    walk(&b, NULL, 1, &a, got, sizeof got);
    ck_assert_str_eq(got, "s2.0:a s0.1:c s0.0:a");
    ck_assert_int_eq(s0.n_chain + s2.n_chain, 1);
    /* nothing to visit */
    peft_base_model empty = {0};
    walk(&empty, NULL, 0, NULL, got, sizeof got);
    ck_assert_str_eq(got, "");
    walk(&empty, NULL, 1, NULL, got, sizeof got);
    ck_assert_str_eq(got, "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mixed");
    TCase *tc = tcase_create("combos");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, parts_match_fixtures, 0, N_COMBOS);
    tcase_add_loop_test(tc, merge_order, 0, N_COMBOS);
    tcase_add_loop_test(tc, unload_restores, 0, N_COMBOS);
    tcase_add_loop_test(tc, save_load_round_trip, 0, N_COMBOS);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("layer");
    tcase_add_checked_fixture(tl, setup, teardown);
    tcase_add_test(tl, site_lora_plus_loha_adds);
    tcase_add_test(tl, site_ia3_nests_with_lora);
    suite_add_tcase(s, tl);
    TCase *ta = tcase_create("api");
    tcase_add_checked_fixture(ta, setup, teardown);
    tcase_set_timeout(ta, 120);
    tcase_add_test(ta, status_files);
    tcase_add_test(ta, save_default_and_disabled);
    tcase_add_test(ta, manifest_errors);
    tcase_add_test(ta, prompt_in_mixed);
    tcase_add_test(ta, prompt_refusals_stay);
    tcase_add_test(ta, cli_mixed);
    suite_add_tcase(s, ta);
    TCase *tt = tcase_create("traversal");
    tcase_add_test(tt, traversal_orders);
    suite_add_tcase(s, tt);
    int failed = tu_run_suite(s);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
