/* test_ia3.c — the (IA)^3 plugin (plugins/ia3/): every IA3 fixture case of Python PEFT 0.13.2
 * on an architecture libpeft has, through the contract table; finite-difference gradients of
 * its kernels (output and input scaling) called through the vtable on a synthetic site; merge
 * == forward for nn.Linear and Conv1D layouts; the feed-forward rule (a regex through the
 * host's ABI 1.2 regex_fullmatch, refused clearly by an older host); PEFT's default
 * target/feed-forward modules; config errors; and unmerge refusing a scale it cannot divide
 * out. */
#include <check.h>
#include <dlfcn.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/io/cfg.h"
#include "contract.h"
#include "peft/graph.h"
#include "peft/inputs.h"
#include "core/ops/ops.h"
#include "plugin_entry.h"
#include "peft/peft.h"
#include "core/tuner/registry.h"
#include "testutil.h"
#include "peft/warn.h"

/* the IA3 fixture cases run here: those whose architecture libpeft has */
static const char *const fixture_cases[] = {
    "gpt2__ia3", "llama__ia3", "bert_seqcls__ia3", "bert_tokcls__ia3", "bert_qa__ia3", "t5__ia3",
};
#define N_FIXTURE_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

/* ---- the plugin on a synthetic site --------------------------------------------------------- */

static peft_rng trng;

typedef struct harness {
    const peft_tuner_vtable *vt;
    peft_site_info site;
    json_t *cfg_json;
    peft_cfg cfg;
    void *parsed;
    void *state;
    peft_tensor *l;     /* the adapter's ia3_l (borrowed from state) */
    peft_tensor *x;     /* (N, in) input, requires grad */
    peft_tensor *w, *b; /* base weight in the site's layout, bias (out) */
} harness;

enum { HN = 3, HIN = 5, HOUT = 4 };

static peft_tensor *rand_tensor(int ndim, const int64_t *shape, float mean, float scale)
{
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, ndim, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->numel; i++) peft_f32(t)[i] = mean + scale * (float)peft_rng_normal(&trng);
    return t;
}

/* an IA3 adapter on a synthetic (in=5, out=4) site named <name>, ff per config */
static void harness_open(harness *h, int kind, const char *name, const char *config)
{
    char err[512] = "";
    memset(h, 0, sizeof *h);
    h->vt = peft_registry_get("ia3", err, sizeof err);
    ck_assert_msg(h->vt, "%s", err);
    h->cfg_json = json_loads(config, 0, NULL);
    ck_assert_ptr_nonnull(h->cfg_json);
    h->cfg.obj = h->cfg_json;
    ck_assert_msg(h->vt->config_parse(&h->cfg, &h->parsed, err, sizeof err) == 0, "%s", err);
    const int64_t ws[2] = {kind == PEFT_SITE_CONV1D ? HIN : HOUT, kind == PEFT_SITE_CONV1D ? HOUT : HIN};
    const int64_t bs[1] = {HOUT}, xs[2] = {HN, HIN};
    h->w = rand_tensor(2, ws, 0.0f, 0.5f);
    h->b = rand_tensor(1, bs, 0.0f, 0.5f);
    h->x = rand_tensor(2, xs, 0.0f, 1.0f);
    h->x->requires_grad = 1;
    h->site = (peft_site_info){.struct_size = sizeof(peft_site_info), .kind = kind, .name = name,
                               .model_type = "gpt2", .in_features = HIN, .out_features = HOUT,
                               .fan_in_fan_out = kind == PEFT_SITE_CONV1D, .layer_index = 0,
                               .weight = h->w, .bias = h->b};
    h->state = h->vt->inject(h->parsed, &h->cfg, &h->site, "default", &trng, err, sizeof err);
    ck_assert_msg(h->state, "%s", err);
    peft_param_ref ref[2];
    ck_assert_int_eq(h->vt->state_dict(h->state, ref, 2), 1);
    h->l = ref[0].tensor;
    /* a perturbed vector, as the fixtures use: 1 + 0.3 N(0, 1) */
    for (int64_t i = 0; i < h->l->numel; i++) peft_f32(h->l)[i] = 1.0f + 0.3f * (float)peft_rng_normal(&trng);
}

static void harness_close(harness *h)
{
    h->vt->destroy(h->state);
    h->vt->config_free(h->parsed);
    json_decref(h->cfg_json);
    peft_tensor_free(h->w);
    peft_tensor_free(h->b);
    peft_tensor_free(h->x);
}

/* the site's forward as core/site.c runs it: pre_forward, base layer, forward */
static peft_tensor *site_forward(harness *h, peft_graph *g)
{
    peft_tensor *x = h->vt->pre_forward(h->state, g, &h->site, h->x);
    ck_assert_ptr_nonnull(x);
    peft_tensor *y = op_linear(g, x, h->w, h->b, h->site.fan_in_fan_out);
    ck_assert_ptr_nonnull(y);
    peft_tensor *out = h->vt->forward(h->state, g, &h->site, x, y);
    ck_assert_ptr_nonnull(out);
    return out;
}

/* L = sum(out * R) in double, forward only */
static double eval_loss(harness *h, const float *R)
{
    peft_rng r;
    peft_rng_seed(&r, 5);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *out = site_forward(h, g);
    double L = 0;
    for (int64_t i = 0; i < out->numel; i++) L += (double)peft_f32(out)[i] * R[i];
    peft_graph_free(g);
    return L;
}

/* the tape's gradients of x and l against central differences of L = sum(out * R) */
static void check_grads(harness *h, const char *what)
{
    if (h->x->grad) peft_tensor_zero_grad(h->x); /* persistent: it accumulates */
    if (h->l->grad) peft_tensor_zero_grad(h->l);
    peft_rng r;
    peft_rng_seed(&r, 5);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_recording(g, 1);
    peft_tensor *out = site_forward(h, g);
    ck_assert_int_eq(out->requires_grad, 1);
    float *R = malloc((size_t)out->numel * sizeof *R);
    for (int64_t i = 0; i < out->numel; i++) R[i] = (float)peft_rng_normal(&trng);
    float *go = peft_grad_of(g, out);
    memcpy(go, R, (size_t)out->numel * sizeof *R);
    for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
    /* x is a persistent tensor: its gradient outlives the graph (copied for clarity) */
    float *gx = malloc((size_t)h->x->numel * sizeof *gx);
    memcpy(gx, peft_grad_of(g, h->x), (size_t)h->x->numel * sizeof *gx);
    peft_graph_free(g);
    ck_assert_ptr_nonnull(h->l->grad);

    peft_tensor *ts[2] = {h->x, h->l};
    const float *ana[2] = {gx, h->l->grad};
    const double eps = 1e-2;
    for (int k = 0; k < 2; k++) {
        float *p = peft_f32(ts[k]);
        for (int64_t j = 0; j < ts[k]->numel; j++) {
            const float orig = p[j];
            p[j] = (float)(orig + eps);
            const double hp = (double)p[j] - orig, lp = eval_loss(h, R);
            p[j] = (float)(orig - eps);
            const double hm = orig - (double)p[j], lm = eval_loss(h, R);
            p[j] = orig;
            const double num = (lp - lm) / (hp + hm), a = ana[k][j];
            ck_assert_msg(fabs(num - a) <= 1e-3 + 1e-2 * fmax(fabs(num), fabs(a)),
                          "%s: d/d%s[%ld] analytic %.6g numeric %.6g", what, k ? "l" : "x",
                          (long)j, a, num);
        }
    }
    free(gx);
    free(R);
}

#define CFG_OUT "{\"peft_type\":\"IA3\",\"target_modules\":[\"c_attn\",\"c_proj\"]," \
                "\"feedforward_modules\":[\"c_proj\"]}"

START_TEST(grad_output_scaling)
{
    harness h;
    harness_open(&h, PEFT_SITE_LINEAR, "h.0.attn.c_attn", CFG_OUT);
    ck_assert_int_eq(h.l->ndim, 2);
    ck_assert_int_eq(h.l->shape[0], HOUT);
    ck_assert_int_eq(h.l->shape[1], 1);
    check_grads(&h, "output scaling");
    harness_close(&h);
}
END_TEST

START_TEST(grad_input_scaling)
{
    harness h;
    harness_open(&h, PEFT_SITE_LINEAR, "h.0.mlp.c_proj", CFG_OUT);
    ck_assert_int_eq(h.l->shape[0], 1);
    ck_assert_int_eq(h.l->shape[1], HIN);
    check_grads(&h, "input scaling");
    harness_close(&h);
}
END_TEST

/* merged weight (and bias) give the unmerged forward; unmerge gives the weight back */
static void check_merge(int kind, const char *name)
{
    harness h;
    harness_open(&h, kind, name, CFG_OUT);
    peft_rng r;
    peft_rng_seed(&r, 5);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *out = site_forward(&h, g);
    float *want = malloc((size_t)out->numel * sizeof *want);
    memcpy(want, out->data, (size_t)out->numel * sizeof *want);
    float *w0 = malloc((size_t)h.w->numel * 4), *b0 = malloc((size_t)h.b->numel * 4);
    memcpy(w0, h.w->data, (size_t)h.w->numel * 4);
    memcpy(b0, h.b->data, (size_t)h.b->numel * 4);
    char err[512];
    ck_assert_msg(h.vt->merge(h.state, &h.site, peft_f32(h.w), peft_f32(h.b), 1, err, sizeof err) == 0, "%s", err);
    peft_graph_reset(g);
    peft_tensor *merged = op_linear(g, h.x, h.w, h.b, h.site.fan_in_fan_out);
    double d = tu_max_abs_diff(want, peft_f32(merged), merged->numel);
    ck_assert_msg(d < 1e-5, "%s (kind %d): merged differs from unmerged by %g", name, kind, d);
    ck_assert_msg(h.vt->merge(h.state, &h.site, peft_f32(h.w), peft_f32(h.b), -1, err, sizeof err) == 0, "%s", err);
    ck_assert(tu_max_abs_diff(w0, peft_f32(h.w), h.w->numel) < 1e-6);
    ck_assert(tu_max_abs_diff(b0, peft_f32(h.b), h.b->numel) < 1e-6);
    free(want);
    free(w0);
    free(b0);
    peft_graph_free(g);
    harness_close(&h);
}

START_TEST(merge_layouts)
{
    peft_set_warning_handler(tu_quiet, NULL);
    check_merge(PEFT_SITE_LINEAR, "h.0.attn.c_attn");
    check_merge(PEFT_SITE_LINEAR, "h.0.mlp.c_proj");
    check_merge(PEFT_SITE_CONV1D, "h.0.attn.c_attn");
    check_merge(PEFT_SITE_CONV1D, "h.0.mlp.c_proj");
}
END_TEST

/* a feed-forward regex (re.fullmatch) and PEFT's plain endswith on a list */
START_TEST(feedforward_rules)
{
    harness h;
    harness_open(&h, PEFT_SITE_LINEAR, "transformer.h.1.mlp.c_proj",
                 "{\"peft_type\":\"IA3\",\"target_modules\":\".*c_proj\","
                 "\"feedforward_modules\":\".*\\\\.h\\\\.\\\\d+\\\\.mlp\\\\.c_proj\"}");
    ck_assert_int_eq(h.l->shape[1], HIN); /* feed-forward: (1, in) */
    harness_close(&h);
    harness_open(&h, PEFT_SITE_LINEAR, "transformer.h.1.attn.c_proj",
                 "{\"peft_type\":\"IA3\",\"target_modules\":\".*c_proj\","
                 "\"feedforward_modules\":\".*\\\\.h\\\\.\\\\d+\\\\.mlp\\\\.c_proj\"}");
    ck_assert_int_eq(h.l->shape[0], HOUT); /* not feed-forward: (out, 1) */
    harness_close(&h);
    /* endswith without a '.' boundary: "proj" marks every *proj module */
    harness_open(&h, PEFT_SITE_LINEAR, "transformer.h.1.attn.c_proj",
                 "{\"peft_type\":\"IA3\",\"target_modules\":[\"c_proj\",\"proj\"],"
                 "\"feedforward_modules\":[\"proj\"]}");
    ck_assert_int_eq(h.l->shape[1], HIN);
    harness_close(&h);
}
END_TEST

/* the regex goes through the host's regex_fullmatch (ABI 1.2), the same Python translation as
 * target_modules: named groups and classes inside brackets included */
START_TEST(feedforward_regex_host)
{
    harness h;
    const char *cfg = "{\"peft_type\":\"IA3\",\"target_modules\":\".*c_proj\","
                      "\"feedforward_modules\":\".*\\\\.h\\\\.(?P<layer>[\\\\d]+)\\\\.mlp\\\\.c_proj\"}";
    harness_open(&h, PEFT_SITE_LINEAR, "transformer.h.12.mlp.c_proj", cfg);
    ck_assert_int_eq(h.l->shape[1], HIN); /* feed-forward: (1, in) */
    harness_close(&h);
    harness_open(&h, PEFT_SITE_LINEAR, "transformer.h.x.mlp.c_proj", cfg);
    ck_assert_int_eq(h.l->shape[0], HOUT); /* not feed-forward: (out, 1) */
    harness_close(&h);
}
END_TEST

/* inject on a synthetic site through vt; the state or NULL with err */
static void *inject_with(const peft_tuner_vtable *vt, const char *config, char *err, size_t errlen)
{
    json_t *j = json_loads(config, 0, NULL);
    ck_assert_ptr_nonnull(j);
    peft_cfg cfg = {.obj = j};
    void *parsed = NULL;
    ck_assert_msg(vt->config_parse(&cfg, &parsed, err, errlen) == 0, "%s", err);
    const int64_t ws[2] = {HOUT, HIN};
    peft_tensor *w = rand_tensor(2, ws, 0.0f, 0.5f);
    peft_site_info site = {.struct_size = sizeof(peft_site_info), .kind = PEFT_SITE_LINEAR,
                           .name = "transformer.h.1.mlp.c_proj", .model_type = "gpt2",
                           .in_features = HIN, .out_features = HOUT, .weight = w};
    void *state = vt->inject(parsed, &cfg, &site, "default", &trng, err, errlen);
    vt->config_free(parsed);
    json_decref(j);
    peft_tensor_free(w);
    return state;
}

/* a host older than ABI 1.2 has no regex_fullmatch: the plugin still loads, a list of names
 * still works, and a regex is refused with a message that says why and what to do */
START_TEST(feedforward_regex_older_host)
{
    char err[512] = "";
    const peft_tuner_vtable *vt;
    void *so;
    peft_plugin_init_fn init = tu_plugin_entry("ia3", &vt, &so);
    peft_host_api old = *peft_host_api_get();
    old.abi_minor = 1;
    old.struct_size = (uint32_t)offsetof(peft_host_api, regex_fullmatch);
    ck_assert_msg(init(&old, err, sizeof err) == vt, "%s", err);

    void *st = inject_with(vt, "{\"peft_type\":\"IA3\",\"target_modules\":\".*c_proj\","
                               "\"feedforward_modules\":\".*mlp\\\\.c_proj\"}", err, sizeof err);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(err, "feedforward_modules") && strstr(err, ".*mlp\\.c_proj") &&
                      strstr(err, "ABI 1.2") && strstr(err, "speaks 1.1") &&
                      strstr(err, "list of module names"), "%s", err);
    st = inject_with(vt, "{\"peft_type\":\"IA3\",\"target_modules\":[\"mlp.c_proj\"],"
                         "\"feedforward_modules\":[\"mlp.c_proj\"]}", err, sizeof err);
    ck_assert_msg(st, "%s", err);
    vt->destroy(st);

    ck_assert(init(peft_host_api_get(), err, sizeof err) == vt); /* the real host again */
    dlclose(so);
}
END_TEST

/* ---- through the PeftModel API on the GPT-2 fixture model ----------------------------------- */

static peft_ctx *ctx;

static peft_model *make(const char *cfg, int *rc)
{
    peft_base_model *b;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &b) == 0, "%s", peft_errmsg(ctx));
    peft_model *m = NULL;
    *rc = peft_get_peft_model(ctx, b, cfg, NULL, 0, &m);
    if (*rc) peft_base_model_free(b);
    return m;
}

/* logits of an inference forward (caller frees) */
static float *logits(peft_model *m, peft_inputs *in, int64_t *n)
{
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi;
    peft_inputs_view(in, &mi);
    peft_model_outputs out;
    ck_assert_msg(peft_model_forward(m, g, &mi, &out) == 0, "%s", peft_errmsg(ctx));
    *n = out.logits->numel;
    float *c = malloc((size_t)*n * sizeof *c);
    memcpy(c, out.logits->data, (size_t)*n * sizeof *c);
    peft_graph_free(g);
    return c;
}

static void setup(void)
{
    peft_set_warning_handler(tu_quiet, NULL);
    ctx = peft_ctx_new(3);
}

static void teardown(void) { peft_ctx_free(ctx); }

static void expect_error(const char *cfg, const char *const *needles)
{
    int rc;
    peft_model *m = make(cfg, &rc);
    ck_assert_msg(rc != 0 && !m, "config accepted: %s", cfg);
    for (; *needles; needles++)
        ck_assert_msg(strstr(peft_errmsg(ctx), *needles), "message '%s' lacks '%s'", peft_errmsg(ctx), *needles);
}

START_TEST(config_errors)
{
    expect_error("{\"peft_type\":\"IA3\",\"target_modules\":[\"c_attn\"],\"feedforward_modules\":[\"c_fc\"]}",
                 (const char *const[]){"feedforward_modules", "subset", "\"c_fc\"", "\"c_attn\"", NULL});
    expect_error("{\"peft_type\":\"IA3\",\"init_ia3_weight\":true}",
                 (const char *const[]){"unknown field 'init_ia3_weight'", "did you mean 'init_ia3_weights'", NULL});
    expect_error("{\"peft_type\":\"IA3\",\"init_ia3_weights\":\"yes\"}",
                 (const char *const[]){"init_ia3_weights", "boolean", NULL});
    expect_error("{\"peft_type\":\"IA3\",\"target_modules\":\".*c_attn\",\"feedforward_modules\":\"(c_attn\"}",
                 (const char *const[]){"feedforward_modules", "(c_attn", NULL});
    expect_error("{\"peft_type\":\"IA3\",\"feedforward_modules\":[\"mlp.c_proj\", 3]}",
                 (const char *const[]){"feedforward_modules", "element 1", NULL});
    /* LoRA's fields are not IA3's */
    expect_error("{\"peft_type\":\"IA3\",\"r\":8}", (const char *const[]){"unknown field 'r'", NULL});
}
END_TEST

/* no target/feed-forward modules given: PEFT's gpt2 defaults, fan_in_fan_out rewritten */
START_TEST(defaults_written)
{
    int rc;
    peft_model *m = make("{\"peft_type\":\"IA3\",\"task_type\":\"CAUSAL_LM\"}", &rc);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    char *dir = tu_tmpdir(), path[4096];
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_t *want = json_loads("{\"auto_mapping\":null,\"fan_in_fan_out\":true,\"feedforward_modules\":"
                              "[\"mlp.c_proj\"],\"inference_mode\":true,\"init_ia3_weights\":true,"
                              "\"modules_to_save\":null,\"peft_type\":\"IA3\",\"revision\":null,"
                              "\"task_type\":\"CAUSAL_LM\"}", 0, NULL);
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v) {
        char *got = json_dumps(json_object_get(cfg, k), JSON_ENCODE_ANY);
        ck_assert_msg(json_equal(json_object_get(cfg, k), v), "%s = %s", k, got);
        free(got);
    }
    ck_assert_int_eq(json_array_size(json_object_get(cfg, "target_modules")), 2);
    ck_assert_int_eq(json_object_size(cfg), 11); /* IA3Config 0.13.2's field set */
    json_decref(cfg);
    json_decref(want);
    tu_rmtree(dir);
    free(dir);
    /* 2 x c_attn (96, 1) + 2 x mlp.c_proj (1, 128) */
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    ck_assert_int_eq(t, 448);
    peft_model_free(m);
}
END_TEST

START_TEST(init_random)
{
    int rc;
    peft_model *m = make("{\"peft_type\":\"IA3\",\"init_ia3_weights\":false}", &rc);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    ck_assert_int_eq(sd->n, 4);
    int ones = 0, total = 0;
    double sum2 = 0;
    for (size_t i = 0; i < sd->n; i++)
        for (int64_t j = 0; j < sd->tensors[i]->numel; j++) {
            float v = peft_f32(sd->tensors[i])[j];
            ones += v == 1.0f;
            sum2 += (double)v * v;
            total++;
        }
    ck_assert_int_lt(ones, 2);
    ck_assert_msg(fabs(sum2 / total - 1.0) < 0.25, "randn init: mean square %g", sum2 / total);
    peft_state_dict_free(sd);
    peft_model_free(m);
}
END_TEST

/* two IA3 adapters merged on the same sites: unmerging the second one must divide its vector
 * out, which it cannot do for a zero entry — an error naming the module, nothing corrupted */
START_TEST(unmerge_refuses_zero)
{
    int rc;
    peft_model *m = make("{\"peft_type\":\"IA3\"}", &rc);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    ck_assert_msg(peft_add_adapter(m, "second", "{\"peft_type\":\"IA3\"}") == 0, "%s", peft_errmsg(ctx));
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, "second", &sd) == 0);
    const char *zeroed = NULL;
    for (size_t i = 0; i < sd->n; i++)
        if (strstr(sd->names[i], "h.1.attn.c_attn")) {
            peft_f32(sd->tensors[i])[7] = 0.0f;
            zeroed = sd->names[i];
        }
    ck_assert_ptr_nonnull(zeroed);
    const char *both[2] = {"default", "second"};
    ck_assert(peft_set_adapters(m, both, 2) == 0);
    peft_inputs in;
    ck_assert(peft_inputs_load_json(tu_ctx(), tu_fixture("hf-peft/_models/gpt2/inputs.json"), &in) == 0);
    int64_t n;
    float *unmerged = logits(m, &in, &n);
    ck_assert_msg(peft_merge_adapter(m, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
    ck_assert(peft_unmerge_adapter(m) != 0);
    const char *msg = peft_errmsg(ctx);
    ck_assert_msg(strstr(msg, "transformer.h.1.attn.c_attn") && strstr(msg, "ia3_l[7]") &&
                      strstr(msg, "stays merged"), "message: %s", msg);
    /* nothing corrupted: the layers unmerged so far run their adapters again, the refused one
     * stays merged, and the model still computes what it did */
    float *after = logits(m, &in, &n);
    double d = tu_max_abs_diff(unmerged, after, n);
    ck_assert_msg(d < 1e-5, "outputs after the refused unmerge differ by %g", d);
    free(unmerged);
    free(after);
    peft_inputs_free(&in);
    peft_state_dict_free(sd);
    peft_model_free(m);
}
END_TEST

int main(void)
{
    peft_rng_seed(&trng, 11);
    Suite *s = suite_create("ia3");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_add_test(tk, grad_output_scaling);
    tcase_add_test(tk, grad_input_scaling);
    tcase_add_test(tk, merge_layouts);
    tcase_add_test(tk, feedforward_rules);
    tcase_add_test(tk, feedforward_regex_host);
    tcase_add_test(tk, feedforward_regex_older_host);
    suite_add_tcase(s, tk);
    TCase *ta = tcase_create("api");
    tcase_add_checked_fixture(ta, setup, teardown);
    tcase_set_timeout(ta, 60);
    tcase_add_test(ta, config_errors);
    tcase_add_test(ta, defaults_written);
    tcase_add_test(ta, init_random);
    tcase_add_test(ta, unmerge_refuses_zero);
    suite_add_tcase(s, ta);
    int failed = tu_run_suite(s);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
