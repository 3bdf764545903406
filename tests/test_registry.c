/* test_registry.c — Check suite for the tuner plugin loader (core/registry.c) and the host
 * table (core/host_api.c): every refusal rule on a fixture plugin (tests/plugins/), loading
 * twice, duplicate names, the PEFT_PLUGIN_PATH search, peft_type lookup, the warning sink, and
 * the good_scale fixture driven through the host table like the core would drive it. */
#define _GNU_SOURCE
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/io/cfg.h"
#include "peft/graph.h"
#include "peft/safetensors.h"
#include "core/tuner/registry.h"
#include "testutil.h"
#include "peft/warn.h"

static char err[2048];

static const char *fixture(const char *name)
{
    static char buf[8][1024];
    static int next;
    char *b = buf[next++ & 7];
    snprintf(b, sizeof buf[0], "tests/plugins/%s.so", name);
    return tu_build(b);
}

#define ASSERT_HAS(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in \"%s\"", (needle), (hay))

/* load a fixture expecting a refusal; returns the message */
static const char *refused(const char *name)
{
    err[0] = 0;
    const peft_tuner_vtable *vt = peft_registry_load_file(fixture(name), err, sizeof err);
    ck_assert_msg(vt == NULL, "%s.so was accepted", name);
    ck_assert_msg(err[0] != 0, "no message for %s.so", name);
    ASSERT_HAS(err, fixture(name)); /* every refusal names the file */
    return err;
}

static int copy_file(const char *from, const char *to)
{
    size_t n;
    char *d = tu_read_file(from, &n);
    if (!d) return -1;
    int rc = tu_write_file(to, d, n);
    free(d);
    return rc;
}

START_TEST(host_table_complete)
{
    const peft_host_api *h = peft_host_api_get();
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_eq(h, peft_host_api_get());
    ck_assert_uint_eq(h->struct_size, sizeof(peft_host_api));
    ck_assert_uint_eq(h->abi_major, PEFT_ABI_MAJOR);
    ck_assert_uint_eq(h->abi_minor, PEFT_ABI_MINOR);
    /* after the 8-byte header every field is a function pointer */
    size_t first = offsetof(peft_host_api, alloc);
    ck_assert_uint_eq(first, 8);
    ck_assert_uint_eq((sizeof(peft_host_api) - first) % sizeof(void *), 0);
    for (size_t off = first; off < sizeof(peft_host_api); off += sizeof(void *)) {
        void *p;
        memcpy(&p, (const char *)h + off, sizeof p);
        ck_assert_msg(p != NULL, "host table entry at offset %zu is NULL", off);
    }
    /* a few entries actually work */
    int *z = h->alloc(4 * sizeof(int));
    ck_assert_int_eq(z[0] | z[1] | z[2] | z[3], 0);
    h->free(z);
    h->free(NULL);
    int64_t shape[2] = {2, 3};
    peft_tensor *t = h->tensor_new(2, shape);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, PEFT_DTYPE_F32);
    ck_assert_int_eq(t->numel, 6);
    h->tensor_free(t);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, c[4] = {0};
    h->sgemm(0, 1, 2, 2, 3, 1.0f, a, 3, b, 3, 0.0f, c, 2); /* A (2,3) B^T (3,2) */
    ck_assert(c[0] == 1 && c[1] == 6 && c[2] == 4 && c[3] == 15);
    h->sgemm(1, 0, 3, 3, 2, 1.0f, a, 3, a, 3, 0.0f, (float[9]){0}, 3); /* A^T A runs */
}
END_TEST

/* ABI 1.3 host entries: batched solve and inverse (two 2x2 blocks), the graph's sticky error */
START_TEST(host_linalg_and_sticky_error)
{
    const peft_host_api *h = peft_host_api_get();
    ck_assert(PEFT_HOST_HAS(h, graph_error));
    const float a[8] = {2, 1, 1, 3, /* block 0 */ 4, 0, 0, 0.5f /* block 1 */};
    const float b[4] = {3, 5, 8, 1}; /* one right-hand side per block */
    float x[4], inv[8];
    ck_assert_int_eq(h->solve(2, 2, 1, a, b, x), 0);
    ck_assert(fabsf(x[0] - 0.8f) < 1e-6f && fabsf(x[1] - 1.4f) < 1e-6f); /* 2x+y=3, x+3y=5 */
    ck_assert(fabsf(x[2] - 2.0f) < 1e-6f && fabsf(x[3] - 2.0f) < 1e-6f);
    ck_assert_int_eq(h->inverse(2, 2, a, inv), 0);
    ck_assert(fabsf(inv[0] - 0.6f) < 1e-6f && fabsf(inv[1] + 0.2f) < 1e-6f);
    ck_assert(fabsf(inv[4] - 0.25f) < 1e-6f && fabsf(inv[7] - 2.0f) < 1e-6f);
    const float sing[4] = {1, 2, 2, 4};
    ck_assert_int_eq(h->solve(1, 2, 1, sing, b, x), -1); /* singular: refused, no crash */
    ck_assert_int_eq(h->inverse(1, 2, sing, inv), -1);
    peft_rng r;
    peft_rng_seed(&r, 1);
    peft_graph *g = peft_graph_new(&r);
    ck_assert_ptr_null(h->graph_error(g));
    h->graph_set_error(g, "first");
    h->graph_set_error(g, "second"); /* the first message stays */
    ck_assert_str_eq(h->graph_error(g), "first");
    int64_t one = 1;
    peft_tensor *l = peft_graph_tensor(g, 1, &one);
    l->requires_grad = 1;
    ck_assert_int_eq(peft_graph_backward(g, l), PEFT_EPLUGIN); /* backward fails with it */
    peft_graph_reset(g);
    ck_assert_ptr_null(h->graph_error(g));
    char msg[128];
    ck_assert_ptr_null(h->site_bias_trainable(NULL, msg, sizeof msg)); /* not during creation */
    ck_assert_ptr_nonnull(strstr(msg, "only while an adapter is being created"));
    peft_graph_free(g);
}
END_TEST

static char warned[256];
static void *warned_ud;
static void capture(const char *msg, void *ud)
{
    snprintf(warned, sizeof warned, "%s", msg);
    warned_ud = ud;
}

START_TEST(warning_sink)
{
    int tag;
    peft_set_warning_handler(capture, &tag);
    peft_host_api_get()->warn("something odd");
    ck_assert_str_eq(warned, "something odd");
    ck_assert_ptr_eq(warned_ud, &tag);
    peft_set_warning_handler(NULL, NULL); /* back to stderr */
    warned[0] = 0;
    peft_warn(NULL); /* ignored */
    ck_assert_str_eq(warned, "");
}
END_TEST

START_TEST(refuse_bad_major)
{
    ASSERT_HAS(refused("bad_major"), "ABI major 2, host speaks 1");
}
END_TEST

START_TEST(refuse_newer_minor)
{
    char want[64];
    snprintf(want, sizeof want, "needs ABI 1.99, host has 1.%d", PEFT_ABI_MINOR);
    ASSERT_HAS(refused("newer_minor"), want);
}
END_TEST

START_TEST(refuse_short_vtable)
{
    char want[128];
    snprintf(want, sizeof want, "vtable is 16 bytes, at least %zu required",
             (size_t)PEFT_TUNER_VTABLE_MIN_SIZE);
    ASSERT_HAS(refused("short_vtable"), want);
}
END_TEST

START_TEST(refuse_no_entry)
{
    ASSERT_HAS(refused("no_entry"), "exports no 'peft_plugin_init' symbol");
}
END_TEST

START_TEST(refuse_init_fails)
{
    const char *m = refused("init_fails");
    ASSERT_HAS(m, "failed to initialise");
    ASSERT_HAS(m, "cannot start: missing licence file");
}
END_TEST

START_TEST(refuse_missing_fn)
{
    ASSERT_HAS(refused("missing_fn"), "required vtable entry 'forward' is NULL");
}
END_TEST

START_TEST(refuse_missing_file)
{
    ASSERT_HAS(refused("does_not_exist"), "does not exist");
}
END_TEST

START_TEST(refuse_not_elf)
{
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/garbage.so", dir);
    ck_assert_int_eq(tu_write_file(path, "not an elf file at all\n", 23), 0);
    ck_assert_ptr_null(peft_registry_load_file(path, err, sizeof err));
    ASSERT_HAS(err, "cannot load plugin");
    ASSERT_HAS(err, path);
    ASSERT_HAS(err, "garbage.so:"); /* dlerror's own text follows */
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(check_vtable_rules)
{
    const peft_tuner_vtable *good = peft_registry_load_file(fixture("good_scale"), err, sizeof err);
    ck_assert_msg(good != NULL, "%s", err);
    peft_tuner_vtable v = *good;
    ck_assert_int_eq(peft_registry_check_vtable(&v, "x.so", err, sizeof err), 0);
    v.merge = NULL; /* MERGEABLE without merge */
    ck_assert_int_eq(peft_registry_check_vtable(&v, "x.so", err, sizeof err), -1);
    ASSERT_HAS(err, "PEFT_CAP_MERGEABLE");
    v.caps = 0; /* consistent again */
    ck_assert_int_eq(peft_registry_check_vtable(&v, "x.so", err, sizeof err), 0);
    v.caps = PEFT_CAP_INPUT_TRANSFORM; /* transform without pre_forward */
    ck_assert_int_eq(peft_registry_check_vtable(&v, "x.so", err, sizeof err), -1);
    ASSERT_HAS(err, "'pre_forward' is NULL");
    v = *good;
    v.name = "Bad/Name";
    ck_assert_int_eq(peft_registry_check_vtable(&v, "x.so", err, sizeof err), -1);
    ASSERT_HAS(err, "[a-z0-9_]+");
    v = *good;
    v.module_type = NULL;
    ck_assert_int_eq(peft_registry_check_vtable(&v, "x.so", err, sizeof err), -1);
    ASSERT_HAS(err, "'module_type'");
    v = *good;
    v.config_free = NULL;
    ck_assert_int_eq(peft_registry_check_vtable(&v, "x.so", err, sizeof err), -1);
    ASSERT_HAS(err, "'config_free'");
    ck_assert_int_eq(peft_registry_check_vtable(NULL, "x.so", err, sizeof err), -1);
}
END_TEST

START_TEST(good_loads_once)
{
    const peft_tuner_vtable *a = peft_registry_load_file(fixture("good_scale"), err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    ck_assert_str_eq(a->name, "testscale");
    ck_assert_str_eq(a->peft_type, "TESTSCALE");
    ck_assert(a->caps & PEFT_CAP_MERGEABLE);
    const peft_tuner_vtable *b = peft_registry_load_file(fixture("good_scale"), err, sizeof err);
    ck_assert_ptr_eq(a, b);
    /* the same file through another spelling of its path */
    char other[4096];
    const char *p = fixture("good_scale");
    const char *slash = strrchr(p, '/');
    snprintf(other, sizeof other, "%.*s/./%s", (int)(slash - p), p, slash + 1);
    ck_assert_ptr_eq(peft_registry_load_file(other, err, sizeof err), a);
    /* and by name, now registered */
    ck_assert_ptr_eq(peft_registry_get("testscale", err, sizeof err), a);
    ck_assert_ptr_eq(peft_registry_get_by_type("TESTSCALE", err, sizeof err), a);
}
END_TEST

START_TEST(duplicate_name)
{
    const peft_tuner_vtable *a = peft_registry_load_file(fixture("dup_a"), err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    ck_assert_str_eq(a->name, "dupname");
    ck_assert_ptr_null(peft_registry_load_file(fixture("dup_b"), err, sizeof err));
    ASSERT_HAS(err, fixture("dup_a"));
    ASSERT_HAS(err, fixture("dup_b"));
    ASSERT_HAS(err, "'dupname'");
    ASSERT_HAS(err, "already registered");
    /* the first one stays */
    ck_assert_ptr_eq(peft_registry_load_file(fixture("dup_a"), err, sizeof err), a);
    ck_assert_ptr_eq(peft_registry_get("dupname", err, sizeof err), a);
    ck_assert_str_eq(peft_registry_get("dupname", err, sizeof err)->peft_type, "DUP_A");
}
END_TEST

START_TEST(search_path)
{
    char *dir = tu_tmpdir();
    char p[4096], env[8192];
    snprintf(p, sizeof p, "%s/testscale.so", dir);
    ck_assert_int_eq(copy_file(fixture("good_scale"), p), 0);
    snprintf(env, sizeof env, "/nonexistent/peft-a::%s", dir);
    setenv("PEFT_PLUGIN_PATH", env, 1);
    const peft_tuner_vtable *vt = peft_registry_get("testscale", err, sizeof err);
    ck_assert_msg(vt != NULL, "%s", err);
    ck_assert_str_eq(vt->name, "testscale");
    ck_assert_ptr_eq(peft_registry_get("testscale", err, sizeof err), vt);

    /* a missing name lists every place looked at, in order */
    ck_assert_ptr_null(peft_registry_get("nosuchplugin", err, sizeof err));
    char want[8192];
    snprintf(want, sizeof want, "plugin 'nosuchplugin' not found; searched: /nonexistent/peft-a, %s",
             dir);
    ASSERT_HAS(err, want);
#ifdef PEFT_PLUGIN_BUILD_DIR
    ASSERT_HAS(err, PEFT_PLUGIN_BUILD_DIR);
#endif
    ASSERT_HAS(err, "/plugins"); /* the directory next to libpeft.so */

    /* a file found on the path whose vtable registers another name is refused */
    snprintf(p, sizeof p, "%s/othername.so", dir);
    ck_assert_int_eq(copy_file(fixture("good_scale"), p), 0);
    ck_assert_ptr_null(peft_registry_get("othername", err, sizeof err));
    ASSERT_HAS(err, "registers the name 'testscale', not 'othername'");

    /* the first file found is the answer, even when it is refused */
    snprintf(p, sizeof p, "%s/badmajor.so", dir);
    ck_assert_int_eq(copy_file(fixture("bad_major"), p), 0);
    ck_assert_ptr_null(peft_registry_get("badmajor", err, sizeof err));
    ASSERT_HAS(err, "ABI major 2, host speaks 1");
    ASSERT_HAS(err, p);

    /* names are file-name tokens */
    ck_assert_ptr_null(peft_registry_get("../etc/x", err, sizeof err));
    ASSERT_HAS(err, "invalid plugin name");
    ck_assert_ptr_null(peft_registry_get("", err, sizeof err));
    ck_assert_ptr_null(peft_registry_get(NULL, err, sizeof err));

    /* peft_type -> plugin: the core maps no name; the plugin that declares the type serves it.
     * A prompt.so earlier on the path that is not PEFT's prompt tuning shadows the built-in
     * one, so nothing serves PROMPT_TUNING */
    snprintf(p, sizeof p, "%s/prompt.so", dir);
    ck_assert_int_eq(copy_file(fixture("good_scale"), p), 0);
    ck_assert_ptr_null(peft_registry_get_by_type("PROMPT_TUNING", err, sizeof err));
    ASSERT_HAS(err, "unknown peft_type 'PROMPT_TUNING': no plugin on the search path serves it");
    ck_assert_ptr_null(peft_registry_get_by_type("NO_SUCH_TYPE", err, sizeof err));
    ASSERT_HAS(err, "peft_type 'NO_SUCH_TYPE'");
    ASSERT_HAS(err, "plugin 'no_such_type' not found; searched: ");
    ck_assert_ptr_null(peft_registry_get_by_type("BAD-TYPE", err, sizeof err));
    ASSERT_HAS(err, "unknown peft_type 'BAD-TYPE'");
    ck_assert_ptr_null(peft_registry_get_by_type(NULL, err, sizeof err));
    ck_assert_ptr_null(peft_registry_get_by_type("", NULL, 0)); /* no err buffer: no crash */

    unsetenv("PEFT_PLUGIN_PATH");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* drive good_scale through the host table the way the core would */
START_TEST(good_scale_works)
{
    const peft_tuner_vtable *vt = peft_registry_load_file(fixture("good_scale"), err, sizeof err);
    ck_assert_msg(vt != NULL, "%s", err);

    json_t *j = json_object();
    peft_cfg cfg = {j};
    void *parsed = NULL;
    ck_assert_int_eq(vt->config_parse(&cfg, &parsed, err, sizeof err), 0);
    double s = 0;
    ck_assert_int_eq(peft_cfg_real(&cfg, "scale", &s), 0); /* the default written back */
    ck_assert(s == 0.5);
    vt->config_free(parsed);
    peft_cfg_set_str(&cfg, "scale", "big");
    ck_assert_int_eq(vt->config_parse(&cfg, &parsed, err, sizeof err), -1);
    ASSERT_HAS(err, "'scale' must be a number");
    peft_cfg_set_real(&cfg, "scale", 0.25);
    ck_assert_int_eq(vt->config_parse(&cfg, &parsed, err, sizeof err), 0);

    int64_t wshape[2] = {2, 3};
    peft_tensor *w = peft_tensor_new(PEFT_DTYPE_F32, 2, wshape);
    float *wd = peft_f32(w);
    for (int i = 0; i < 6; i++) wd[i] = (float)(i + 1);
    peft_site_info site = {.struct_size = sizeof site, .kind = PEFT_SITE_LINEAR, .name = "h.0.attn.q",
                           .model_type = "gpt2", .in_features = 3, .out_features = 2, .weight = w};
    peft_rng rng;
    peft_rng_seed(&rng, 1);
    void *st = vt->inject(parsed, &cfg, &site, "default", &rng, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_str_eq(vt->module_type(st), "testscale.Linear");
    peft_param_ref refs[4];
    ck_assert_int_eq(vt->state_dict(st, refs, 4), 1);
    ck_assert_str_eq(refs[0].saved_name, "testscale_v.weight");
    ck_assert_str_eq(refs[0].memory_name, "testscale_v.default.weight");
    ck_assert_int_eq(refs[0].tensor->numel, 2);
    ck_assert_int_eq(refs[0].trainable, 1);

    /* forward: y + 0.25 y */
    peft_graph *g = peft_graph_new(&rng);
    int64_t xs[2] = {1, 3};
    peft_tensor *x = peft_graph_tensor(g, 2, xs);
    float *xd = peft_f32(x);
    xd[0] = 1, xd[1] = -1, xd[2] = 2;
    peft_tensor *y = peft_host_api_get()->op_linear(g, x, w, NULL, 0);
    ck_assert_ptr_nonnull(y);
    float base[2] = {peft_f32(y)[0], peft_f32(y)[1]};
    ck_assert(base[0] == 1 - 2 + 6 && base[1] == 4 - 5 + 12);
    peft_tensor *out = vt->forward(st, g, &site, x, y);
    ck_assert_ptr_nonnull(out);
    ck_assert(fabsf(peft_f32(out)[0] - 1.25f * base[0]) < 1e-5f);
    ck_assert(fabsf(peft_f32(out)[1] - 1.25f * base[1]) < 1e-5f);

    /* merge then unmerge restores the weight */
    float orig[6];
    memcpy(orig, wd, sizeof orig);
    ck_assert_int_eq(vt->merge(st, &site, wd, NULL, +1, err, sizeof err), 0);
    ck_assert(fabsf(wd[0] - 1.25f) < 1e-6f && fabsf(wd[5] - 7.5f) < 1e-6f);
    ck_assert_int_eq(vt->merge(st, &site, wd, NULL, -1, err, sizeof err), 0);
    ck_assert(tu_max_abs_diff(wd, orig, 6) < 1e-6);

    peft_graph_free(g);
    vt->destroy(st);
    vt->config_free(parsed);
    peft_tensor_free(w);
    json_decref(j);
}
END_TEST

/* ABI 1.5: host->safetensors_read converts F16 to f32, gives NULL for a missing key, refuses an
 * I32 tensor and a non-safetensors file naming it, and leaves nothing to free on failure */
START_TEST(host_safetensors_read)
{
    const peft_host_api *h = peft_host_api_get();
    ck_assert(PEFT_HOST_HAS(h, safetensors_read));
    char *dir = tu_tmpdir(), path[1100], msg[512];
    snprintf(path, sizeof path, "%s/src.safetensors", dir);
    const uint16_t half[3] = {0x3c00, 0xc000, 0x3800}; /* 1, -2, 0.5 */
    const int32_t ids[2] = {7, 8};
    const int64_t s3[2] = {1, 3}, s2[1] = {2};
    const peft_st_out outs[2] = {{"a", PEFT_DTYPE_F16, 2, s3, half},
                                 {"ids", PEFT_DTYPE_I32, 1, s2, ids}};
    ck_assert(peft_st_write(tu_ctx(), path, outs, 2, NULL) == 0);
    const char *names[2] = {"a", "missing"};
    peft_tensor *t[2] = {(peft_tensor *)1, (peft_tensor *)1};
    ck_assert_msg(h->safetensors_read(path, names, 2, t, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_ptr_null(t[1]);
    ck_assert_int_eq(t[0]->ndim, 2);
    ck_assert_int_eq(t[0]->shape[1], 3);
    ck_assert(peft_f32(t[0])[0] == 1.0f && peft_f32(t[0])[1] == -2.0f && peft_f32(t[0])[2] == 0.5f);
    h->tensor_free(t[0]);
    const char *bad[2] = {"a", "ids"};
    ck_assert_int_eq(h->safetensors_read(path, bad, 2, t, msg, sizeof msg), -1);
    ck_assert_msg(strstr(msg, "tensor 'ids' is I32"), "%s", msg);
    ck_assert(!t[0] && !t[1]);
    snprintf(path, sizeof path, "%s/src.bin", dir);
    FILE *f = fopen(path, "wb");
    fwrite("PK\x03\x04rest", 1, 8, f);
    fclose(f);
    ck_assert_int_eq(h->safetensors_read(path, names, 1, t, msg, sizeof msg), -1);
    ck_assert_msg(strstr(msg, "src.bin") && strstr(msg, "a PyTorch torch.save file"), "%s", msg);
    ck_assert_int_eq(h->safetensors_read(NULL, names, 1, t, msg, sizeof msg), -1);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, host_table_complete);
    tcase_add_test(tc, host_safetensors_read);
    tcase_add_test(tc, warning_sink);
    tcase_add_test(tc, host_linalg_and_sticky_error);
    tcase_add_test(tc, refuse_bad_major);
    tcase_add_test(tc, refuse_newer_minor);
    tcase_add_test(tc, refuse_short_vtable);
    tcase_add_test(tc, refuse_no_entry);
    tcase_add_test(tc, refuse_init_fails);
    tcase_add_test(tc, refuse_missing_fn);
    tcase_add_test(tc, refuse_missing_file);
    tcase_add_test(tc, refuse_not_elf);
    tcase_add_test(tc, check_vtable_rules);
    tcase_add_test(tc, good_loads_once);
    tcase_add_test(tc, duplicate_name);
    tcase_add_test(tc, search_path);
    tcase_add_test(tc, good_scale_works);
    suite_add_tcase(s, tc);
    int failed = tu_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
