/* test_loha.c — the LoHa plugin (plugins/loha/): every LoHa fixture case of Python PEFT 0.13.2
 * on an architecture libpeft has, through the contract table; finite-difference gradients of
 * its kernel (eval, and training with rank and module dropout) called through the vtable on a
 * synthetic nn.Linear site; merge == forward; GPT-2's Conv1D refused as PEFT refuses it; config
 * errors and defaults; PEFT's init; rank/alpha patterns (LyCORIS's key rule, through the host's
 * ABI 1.2 entry; an older host refused); set_scale. */
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

/* the LoHa fixture cases run here (there is no gpt2__loha: PEFT refuses Conv1D) */
static const char *const fixture_cases[] = {
    "llama__loha", "bert_seqcls__loha", "bert_tokcls__loha", "bert_qa__loha", "t5__loha",
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

enum { HN = 3, HIN = 5, HOUT = 4, HR = 2 };

typedef struct harness {
    const peft_tuner_vtable *vt;
    peft_site_info site;
    json_t *cfg_json;
    peft_cfg cfg;
    void *parsed;
    void *state;
    peft_tensor *p[4];  /* hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b (borrowed) */
    peft_tensor *x;     /* (N, in), requires grad */
    peft_tensor *w, *b; /* base weight (out, in), bias (out) */
    int training;
    uint64_t seed; /* the graph RNG's seed in every evaluation (the same dropout draws) */
    int skipped;   /* the last forward skipped the adapter (module dropout) */
} harness;

static peft_tensor *rand_tensor(int ndim, const int64_t *shape, float scale)
{
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, ndim, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->numel; i++) peft_f32(t)[i] = scale * (float)peft_rng_normal(&trng);
    return t;
}

static void harness_open(harness *h, const char *config)
{
    char err[512] = "";
    memset(h, 0, sizeof *h);
    h->vt = peft_registry_get("loha", err, sizeof err);
    ck_assert_msg(h->vt, "%s", err);
    h->cfg_json = json_loads(config, 0, NULL);
    ck_assert_ptr_nonnull(h->cfg_json);
    h->cfg.obj = h->cfg_json;
    ck_assert_msg(h->vt->config_parse(&h->cfg, &h->parsed, err, sizeof err) == 0, "%s", err);
    const int64_t ws[2] = {HOUT, HIN}, bs[1] = {HOUT}, xs[2] = {HN, HIN};
    h->w = rand_tensor(2, ws, 0.5f);
    h->b = rand_tensor(1, bs, 0.5f);
    h->x = rand_tensor(2, xs, 1.0f);
    h->x->requires_grad = 1;
    h->seed = 5;
    h->site = (peft_site_info){.struct_size = sizeof(peft_site_info), .kind = PEFT_SITE_LINEAR,
                               .name = "model.layers.0.self_attn.q_proj", .model_type = "llama",
                               .in_features = HIN, .out_features = HOUT, .layer_index = 0,
                               .weight = h->w, .bias = h->b};
    h->state = h->vt->inject(h->parsed, &h->cfg, &h->site, "default", &trng, err, sizeof err);
    ck_assert_msg(h->state, "%s", err);
    peft_param_ref ref[4];
    ck_assert_int_eq(h->vt->state_dict(h->state, ref, 4), 4);
    for (int i = 0; i < 4; i++) {
        h->p[i] = ref[i].tensor;
        /* perturbed as the fixtures are: 0.1 N(0, 1) ... a little larger for FD signal */
        for (int64_t j = 0; j < h->p[i]->numel; j++) peft_f32(h->p[i])[j] = 0.5f * (float)peft_rng_normal(&trng);
    }
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

static peft_tensor *site_forward(harness *h, peft_graph *g)
{
    peft_tensor *y = op_linear(g, h->x, h->w, h->b, 0);
    ck_assert_ptr_nonnull(y);
    peft_tensor *out = h->vt->forward(h->state, g, &h->site, h->x, y);
    ck_assert_ptr_nonnull(out);
    h->skipped = out == y;
    return out;
}

static double eval_loss(harness *h, const float *R)
{
    peft_rng r;
    peft_rng_seed(&r, h->seed);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_training(g, h->training);
    peft_tensor *out = site_forward(h, g);
    double L = 0;
    for (int64_t i = 0; i < out->numel; i++) L += (double)peft_f32(out)[i] * R[i];
    peft_graph_free(g);
    return L;
}

/* the tape's gradients of x and the four factors against central differences of
 * L = sum(out * R); the same dropout masks in every evaluation (the graph RNG is reseeded) */
static void check_grads(harness *h, const char *what)
{
    if (h->x->grad) peft_tensor_zero_grad(h->x); /* persistent: it accumulates */
    for (int i = 0; i < 4; i++)
        if (h->p[i]->grad) peft_tensor_zero_grad(h->p[i]);
    peft_rng r;
    peft_rng_seed(&r, h->seed);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_recording(g, 1);
    peft_graph_set_training(g, h->training);
    peft_tensor *out = site_forward(h, g);
    const int skipped = h->skipped;
    ck_assert_int_eq(out->requires_grad, 1);
    float *R = malloc((size_t)out->numel * sizeof *R);
    for (int64_t i = 0; i < out->numel; i++) R[i] = (float)peft_rng_normal(&trng);
    memcpy(peft_grad_of(g, out), R, (size_t)out->numel * sizeof *R);
    for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
    float *gx = malloc((size_t)h->x->numel * sizeof *gx);
    memcpy(gx, peft_grad_of(g, h->x), (size_t)h->x->numel * sizeof *gx);
    peft_graph_free(g);

    peft_tensor *ts[5] = {h->x, h->p[0], h->p[1], h->p[2], h->p[3]};
    static const char *const names[5] = {"x", "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"};
    const double eps = 1e-2;
    for (int k = 0; k < 5; k++) {
        const float *ana = k ? ts[k]->grad : gx;
        if (k && skipped) { /* module dropout skipped the adapter: no gradient at all */
            for (int64_t j = 0; ana && j < ts[k]->numel; j++)
                ck_assert_msg(ana[j] == 0, "%s: a skipped adapter got a gradient for %s", what, names[k]);
            continue;
        }
        ck_assert_msg(ana, "%s: no gradient for %s", what, names[k]);
        float *p = peft_f32(ts[k]);
        for (int64_t j = 0; j < ts[k]->numel; j++) {
            const float orig = p[j];
            p[j] = (float)(orig + eps);
            const double hp = (double)p[j] - orig, lp = eval_loss(h, R);
            p[j] = (float)(orig - eps);
            const double hm = orig - (double)p[j], lm = eval_loss(h, R);
            p[j] = orig;
            const double num = (lp - lm) / (hp + hm), a = ana[j];
            ck_assert_msg(fabs(num - a) <= 2e-3 + 1e-2 * fmax(fabs(num), fabs(a)),
                          "%s: d/d%s[%ld] analytic %.6g numeric %.6g", what, names[k], (long)j, a, num);
        }
        if (k) peft_tensor_zero_grad(ts[k]);
    }
    free(gx);
    free(R);
}

START_TEST(grad_eval)
{
    harness h;
    harness_open(&h, "{\"peft_type\":\"LOHA\",\"r\":2,\"alpha\":3,\"target_modules\":[\"q_proj\"]}");
    ck_assert_int_eq(h.p[0]->shape[0], HOUT);
    ck_assert_int_eq(h.p[0]->shape[1], HR);
    ck_assert_int_eq(h.p[1]->shape[0], HR);
    ck_assert_int_eq(h.p[1]->shape[1], HIN);
    check_grads(&h, "eval");
    harness_close(&h);
}
END_TEST

START_TEST(grad_rank_dropout)
{
    harness h;
    harness_open(&h, "{\"peft_type\":\"LOHA\",\"r\":2,\"alpha\":3,\"rank_dropout\":0.5,"
                     "\"target_modules\":[\"q_proj\"]}");
    h.training = 1;
    float R[HN * HOUT];
    for (int i = 0; i < HN * HOUT; i++) R[i] = (float)peft_rng_normal(&trng);
    h.training = 0;
    double eval = eval_loss(&h, R);
    h.training = 1;
    ck_assert_msg(fabs(eval_loss(&h, R) - eval) > 1e-6, "rank dropout changed nothing");
    check_grads(&h, "rank dropout");
    harness_close(&h);
}
END_TEST

/* module_dropout: the adapter is skipped for a draw <= p, applied otherwise */
START_TEST(module_dropout)
{
    harness h;
    harness_open(&h, "{\"peft_type\":\"LOHA\",\"r\":2,\"module_dropout\":0.5,\"target_modules\":[\"q_proj\"]}");
    peft_rng r;
    peft_rng_seed(&r, 9);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_training(g, 1);
    int skipped = 0, applied = 0;
    for (int i = 0; i < 200; i++) {
        peft_graph_reset(g);
        peft_tensor *y = op_linear(g, h.x, h.w, h.b, 0);
        peft_tensor *out = h.vt->forward(h.state, g, &h.site, h.x, y);
        if (out == y) skipped++;
        else applied++;
    }
    ck_assert_msg(skipped > 60 && applied > 60, "skipped %d applied %d of 200", skipped, applied);
    /* gradients on both sides of the draw */
    h.training = 1;
    int seen[2] = {0, 0};
    for (uint64_t seed = 1; seed <= 8; seed++) {
        h.seed = seed;
        check_grads(&h, "module dropout");
        seen[h.skipped] = 1;
    }
    ck_assert(seen[0] && seen[1]);
    peft_graph_free(g);
    harness_close(&h);
}
END_TEST

START_TEST(merge_equals_forward)
{
    harness h;
    harness_open(&h, "{\"peft_type\":\"LOHA\",\"r\":2,\"alpha\":3,\"target_modules\":[\"q_proj\"]}");
    peft_rng r;
    peft_rng_seed(&r, 5);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *out = site_forward(&h, g);
    float want[HN * HOUT], w0[HOUT * HIN];
    memcpy(want, out->data, sizeof want);
    memcpy(w0, h.w->data, sizeof w0);
    char err[512];
    ck_assert_msg(h.vt->merge(h.state, &h.site, peft_f32(h.w), peft_f32(h.b), 1, err, sizeof err) == 0, "%s", err);
    peft_graph_reset(g);
    peft_tensor *merged = op_linear(g, h.x, h.w, h.b, 0);
    double d = tu_max_abs_diff(want, peft_f32(merged), merged->numel);
    ck_assert_msg(d < 1e-5, "merged differs from unmerged by %g", d);
    ck_assert(h.vt->set_scale(h.state, 3.0) == 0); /* unmerge takes out what merge put in */
    ck_assert_msg(h.vt->merge(h.state, &h.site, peft_f32(h.w), peft_f32(h.b), -1, err, sizeof err) == 0, "%s", err);
    ck_assert(tu_max_abs_diff(w0, peft_f32(h.w), HOUT * HIN) < 1e-6);
    peft_graph_free(g);
    harness_close(&h);
}
END_TEST

/* ---- through the PeftModel API on the fixture models ---------------------------------------- */

static peft_ctx *ctx;

static void setup(void)
{
    peft_set_warning_handler(tu_quiet, NULL);
    ctx = peft_ctx_new(3);
}

static void teardown(void) { peft_ctx_free(ctx); }

static peft_model *make(const char *model, const char *cfg, int *rc)
{
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft/_models/%s", model);
    peft_base_model *b;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture(rel), &b) == 0, "%s", peft_errmsg(ctx));
    peft_model *m = NULL;
    *rc = peft_get_peft_model(ctx, b, cfg, NULL, 0, &m);
    if (*rc) peft_base_model_free(b);
    return m;
}

static void expect_error(const char *model, const char *cfg, const char *const *needles)
{
    int rc;
    peft_model *m = make(model, cfg, &rc);
    ck_assert_msg(rc != 0 && !m, "config accepted: %s", cfg);
    for (; *needles; needles++)
        ck_assert_msg(strstr(peft_errmsg(ctx), *needles), "message '%s' lacks '%s'", peft_errmsg(ctx), *needles);
}

/* PEFT: "Target module of type <class 'transformers.pytorch_utils.Conv1D'> not supported" */
START_TEST(gpt2_conv1d_refused)
{
    expect_error("gpt2", "{\"peft_type\":\"LOHA\",\"target_modules\":[\"c_attn\"]}",
                 (const char *const[]){"transformer.h.0.attn.c_attn", "Conv1D", "not supported", "Linear", NULL});
    /* and no default targets: PEFT's LycorisTuner asks for target_modules */
    expect_error("gpt2", "{\"peft_type\":\"LOHA\"}", (const char *const[]){"target_modules", NULL});
}
END_TEST

START_TEST(config_errors)
{
    const char *llama = "llama";
    expect_error(llama, "{\"peft_type\":\"LOHA\",\"r\":0,\"target_modules\":[\"q_proj\"]}",
                 (const char *const[]){"'r'", "positive", NULL});
    expect_error(llama, "{\"peft_type\":\"LOHA\",\"alpah\":4,\"target_modules\":[\"q_proj\"]}",
                 (const char *const[]){"unknown field 'alpah'", "did you mean 'alpha'", NULL});
    expect_error(llama, "{\"peft_type\":\"LOHA\",\"rank_dropout\":1.5,\"target_modules\":[\"q_proj\"]}",
                 (const char *const[]){"rank_dropout", "[0, 1)", NULL});
    expect_error(llama, "{\"peft_type\":\"LOHA\",\"module_dropout\":\"x\",\"target_modules\":[\"q_proj\"]}",
                 (const char *const[]){"module_dropout", "number", NULL});
    expect_error(llama, "{\"peft_type\":\"LOHA\",\"use_effective_conv2d\":true,\"target_modules\":[\"q_proj\"]}",
                 (const char *const[]){"use_effective_conv2d", "allowed value: false", NULL});
    expect_error(llama, "{\"peft_type\":\"LOHA\",\"lora_alpha\":4,\"target_modules\":[\"q_proj\"]}",
                 (const char *const[]){"unknown field 'lora_alpha'", NULL});
    expect_error(llama, "{\"peft_type\":\"LOHA\",\"rank_pattern\":{\"q_proj\":0},\"target_modules\":[\"q_proj\"]}",
                 (const char *const[]){"rank_pattern", "q_proj", "positive", NULL});
}
END_TEST

/* defaults written back with PEFT's field set; PEFT's init: delta 0 (w2_b zeros), the other
 * three kaiming-uniform with bound 1/sqrt(fan_in) */
START_TEST(defaults_and_init)
{
    int rc;
    peft_model *m = make("llama", "{\"peft_type\":\"LOHA\",\"target_modules\":[\"q_proj\"]}", &rc);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    char *dir = tu_tmpdir(), path[4096];
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_t *want = json_loads("{\"alpha\":8,\"alpha_pattern\":{},\"auto_mapping\":null,"
                              "\"inference_mode\":true,\"init_weights\":true,\"layers_pattern\":null,"
                              "\"layers_to_transform\":null,\"module_dropout\":0.0,\"modules_to_save\":null,"
                              "\"peft_type\":\"LOHA\",\"r\":8,\"rank_dropout\":0.0,\"rank_pattern\":{},"
                              "\"revision\":null,\"target_modules\":[\"q_proj\"],\"task_type\":null,"
                              "\"use_effective_conv2d\":false}", 0, NULL);
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v) {
        char *got = json_dumps(json_object_get(cfg, k), JSON_ENCODE_ANY);
        ck_assert_msg(json_equal(json_object_get(cfg, k), v), "%s = %s", k, got);
        free(got);
    }
    ck_assert_int_eq(json_object_size(cfg), 18); /* LoHaConfig 0.13.2's field set */
    json_decref(cfg);
    json_decref(want);
    tu_rmtree(dir);
    free(dir);

    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    ck_assert_int_eq(sd->n, 8); /* 2 layers x 4 factors */
    for (size_t i = 0; i < sd->n; i++) {
        peft_tensor *t = sd->tensors[i];
        ck_assert_msg(strstr(sd->names[i], "base_model.model.model.layers.") == sd->names[i], "%s", sd->names[i]);
        ck_assert_int_eq(t->ndim, 2);
        int is_w2b = strstr(sd->names[i], ".hada_w2_b") != NULL;
        double bound = 1.0 / sqrt((double)t->shape[1]), mx = 0;
        for (int64_t j = 0; j < t->numel; j++) mx = fmax(mx, fabs(peft_f32(t)[j]));
        if (is_w2b) ck_assert_msg(mx == 0, "%s not zero", sd->names[i]);
        else ck_assert_msg(mx > 0.5 * bound && mx <= bound, "%s: max %g, bound %g", sd->names[i], mx, bound);
    }
    peft_state_dict_free(sd);
    peft_model_free(m);
}
END_TEST

START_TEST(patterns)
{
    int rc;
    peft_model *m = make("llama", "{\"peft_type\":\"LOHA\",\"r\":4,\"target_modules\":[\"q_proj\",\"v_proj\"],"
                                  "\"rank_pattern\":{\"layers.1.self_attn.q_proj\":2}}", &rc);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    int seen = 0;
    for (size_t i = 0; i < sd->n; i++) {
        if (!strstr(sd->names[i], "hada_w1_a")) continue;
        int want = strstr(sd->names[i], "layers.1.self_attn.q_proj") ? 2 : 4;
        ck_assert_msg(sd->tensors[i]->shape[1] == want, "%s: rank %lld", sd->names[i],
                      (long long)sd->tensors[i]->shape[1]);
        seen++;
    }
    ck_assert_int_eq(seen, 4);
    peft_state_dict_free(sd);
    peft_model_free(m);
}
END_TEST

/* the model config makes on llama gives layer 0's and layer 1's q_proj the ranks r0 and r1
 * (read from the state dict: hada_w1_a is (out, r), lora_A (r, in)) */
static void expect_q_ranks(const char *config, const char *tensor, int64_t r0, int64_t r1)
{
    int rc;
    peft_model *m = make("llama", config, &rc);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    int64_t rank[2] = {-1, -1};
    for (size_t i = 0; i < sd->n; i++) {
        if (!strstr(sd->names[i], "self_attn.q_proj") || !strstr(sd->names[i], tensor)) continue;
        const peft_tensor *t = sd->tensors[i];
        rank[strstr(sd->names[i], "layers.1.") ? 1 : 0] =
            strstr(tensor, "lora_A") ? t->shape[0] : t->shape[1];
    }
    ck_assert_msg(rank[0] == r0 && rank[1] == r1, "%s: q_proj ranks %lld, %lld; expected %lld, "
                  "%lld", config, (long long)rank[0], (long long)rank[1], (long long)r0,
                  (long long)r1);
    peft_state_dict_free(sd);
    peft_model_free(m);
}

/* PEFT's LyCORIS key rule re.match(rf"(.*\.)?{key}$", name): a key equal to the full module
 * name, and a regex anchored at the name's start (which LoRA's ".*\.key$" never matches). */
START_TEST(patterns_lycoris_rule)
{
    expect_q_ranks("{\"peft_type\":\"LOHA\",\"r\":4,\"target_modules\":[\"q_proj\"],"
                   "\"rank_pattern\":{\"model.layers.1.self_attn.q_proj\":2}}", "hada_w1_a", 4, 2);
    /* the key matches from the start of the name, with no "." before it */
    const char *regex_cfg = "\"r\":4,\"target_modules\":[\"q_proj\"],"
                            "\"rank_pattern\":{\"model\\\\.layers\\\\.0\\\\..*q_proj\":3}}";
    char cfg[512];
    snprintf(cfg, sizeof cfg, "{\"peft_type\":\"LOHA\",%s", regex_cfg);
    expect_q_ranks(cfg, "hada_w1_a", 3, 4);
    /* the same key under LoRA's rule (".*\.key$") matches nothing, as in PEFT */
    snprintf(cfg, sizeof cfg, "{\"peft_type\":\"LORA\",%s", regex_cfg);
    expect_q_ranks(cfg, "lora_A", 4, 4);
}
END_TEST

/* the LyCORIS rule is the host's cfg_pattern_real_lycoris (ABI 1.2): an older host is refused
 * when the plugin loads, with a message saying why */
START_TEST(older_host_refused)
{
    char err[512] = "";
    const peft_tuner_vtable *vt;
    void *so;
    peft_plugin_init_fn init = tu_plugin_entry("loha", &vt, &so);
    peft_host_api old = *peft_host_api_get();
    old.abi_minor = 1;
    old.struct_size = (uint32_t)offsetof(peft_host_api, regex_fullmatch);
    ck_assert_ptr_null(init(&old, err, sizeof err));
    ck_assert_msg(strstr(err, "loha: host ABI 1.1 is older than 1.2"), "%s", err);
    old.abi_minor = 2; /* claims 1.2 but its table stops before the 1.2 entries */
    ck_assert_ptr_null(init(&old, err, sizeof err));
    ck_assert_msg(strstr(err, "loha: host API table too short"), "%s", err);
    old = *peft_host_api_get(); /* a 1.2 host with an entry missing */
    old.cfg_pattern_real_lycoris = NULL;
    ck_assert_ptr_null(init(&old, err, sizeof err));
    ck_assert_msg(strstr(err, "loha: host API entry 'cfg_pattern_real_lycoris' is NULL"), "%s", err);
    dlclose(so);
}
END_TEST

int main(void)
{
    peft_rng_seed(&trng, 13);
    Suite *s = suite_create("loha");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_add_test(tk, grad_eval);
    tcase_add_test(tk, grad_rank_dropout);
    tcase_add_test(tk, module_dropout);
    tcase_add_test(tk, merge_equals_forward);
    suite_add_tcase(s, tk);
    TCase *ta = tcase_create("api");
    tcase_add_checked_fixture(ta, setup, teardown);
    tcase_set_timeout(ta, 60);
    tcase_add_test(ta, gpt2_conv1d_refused);
    tcase_add_test(ta, config_errors);
    tcase_add_test(ta, defaults_and_init);
    tcase_add_test(ta, patterns);
    tcase_add_test(ta, patterns_lycoris_rule);
    tcase_add_test(ta, older_host_refused);
    suite_add_tcase(s, ta);
    int failed = tu_run_suite(s);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
