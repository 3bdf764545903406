/* cmd_info.c — `peft info`: module summary, trainable parameters, adapter status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "peft/tokenizer.h"
#include "cli.h"
#include "peft/quant.h"

static const char *HELP =
    "usage: peft info --model DIR [--adapter DIR[:NAME]]... [--json]\n"
    "       peft info --config CONFIG.json [--peft-config ADAPTER_CONFIG.json]\n\n"
    "Prints the model's linear layers (with the adapters on each), PEFT's trainable-parameter\n"
    "line and the model status, then the base's storage: the dtype of its weights and, for a\n"
    "quantized base (--quant or quantization_config), bits, quant type, double quantization,\n"
    "block size and the relative error ||W - dequant(Q(W))|| / ||W|| over the quantized layers,\n"
    "then a table of each quantized layer: module, dtype, relative error, max |W - dequant(Q(W))|\n"
    "(--json: quantization.per_layer, an array of {module, dtype, relative_error, max_abs_error}).\n"
    "--json prints {model_status, layer_status, base} as JSON only.\n"
    "With --config, nothing is loaded but a config.json: the parameter counts come from the\n"
    "shapes alone (PEFT's meta device), with the head that the adapter config's task_type picks.\n"
    CLI_LOAD_HELP;

/* `peft info --config C [--peft-config P]`: counts without weights */
static int info_from_config(const char *config, const char *peft_config)
{
    char *text = NULL;
    const char *task = NULL;
    json_t *pc = NULL;
    if (peft_config) {
        if (!(text = cli_read_text(peft_config))) return 1;
        json_error_t je;
        pc = json_loads(text, 0, &je);
        if (!pc) {
            free(text);
            return cli_fail("%s: invalid JSON at line %d: %s", peft_config, je.line, je.text);
        }
        task = json_string_value(json_object_get(pc, "task_type"));
    }
    peft_base_model *base;
    peft_ctx *lctx = peft_ctx_new(0);
    if (!lctx || peft_load_base_model_meta(lctx, config, task, &base)) {
        json_decref(pc);
        free(text);
        int frc = cli_fail("%s", lctx ? peft_errmsg(lctx) : "out of memory");
        peft_ctx_free(lctx);
        return frc;
    }
    peft_ctx_free(lctx);
    printf("%s (%s): %lld parameters\n", peft_base_model_class(base), peft_base_model_type(base),
           (long long)peft_base_model_param_count(base));
    int rc = 0;
    if (text) {
        peft_ctx *ctx = peft_ctx_new(0);
        peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
        peft_model *m;
        if (peft_get_peft_model(ctx, base, text, "default", 0, &m)) {
            rc = cli_fail("%s: %s", peft_config, peft_errmsg(ctx));
            peft_base_model_free(base);
        } else {
            peft_print_trainable_parameters(m, stdout);
            peft_model_free(m);
        }
        peft_ctx_free(ctx);
    } else {
        peft_base_model_free(base);
    }
    json_decref(pc);
    free(text);
    return rc;
}

/* the base's storage as JSON: weight bytes, dtypes (tensors and bytes each) and the quantization
 * (bitsandbytes' terms) or null. New reference. */
static json_t *base_storage_json(const peft_base_model *b)
{
    json_t *o = json_object(), *dt = json_object();
    for (size_t i = 0; i < peft_base_model_num_params(b); i++) {
        const peft_tensor *t = peft_base_model_param(b, i, NULL);
        const char *k = peft_dtype_label(t->dtype);
        json_t *e = json_object_get(dt, k);
        if (!e) json_object_set_new(dt, k, e = json_pack("{s:I, s:I}", "tensors", (json_int_t)0, "bytes", (json_int_t)0));
        json_object_set_new(e, "tensors", json_integer(json_integer_value(json_object_get(e, "tensors")) + 1));
        json_object_set_new(e, "bytes", json_integer(json_integer_value(json_object_get(e, "bytes")) +
                                                     (json_int_t)peft_dtype_storage_bytes(t->dtype, t->ndim, t->shape)));
    }
    json_object_set_new(o, "weight_bytes", json_integer((json_int_t)peft_base_model_weight_bytes(b)));
    json_object_set_new(o, "dtypes", dt);
    int32_t qd;
    double qerr;
    int nq = peft_base_model_quant_report(b, &qd, &qerr);
    json_t *q = json_null();
    if (nq) {
        const int four = qd != PEFT_DTYPE_INT8;
        q = json_pack("{s:s, s:s, s:i, s:b, s:s, s:i, s:f}", "quant_method", "bitsandbytes",
                      "quant_type", four ? "nf4" : "int8", "bits", four ? 4 : 8,
                      "double_quant", qd == PEFT_DTYPE_NF4, "compute_dtype", "float32",
                      "layers", nq, "relative_error", qerr);
        /* NF4: absmax per 64 weights (8-bit, per 256 blocks, with double quant); int8: per row */
        json_object_set_new(q, "blocksize", four ? json_integer(PEFT_NF4_BLOCK) : json_null());
        if (qd == PEFT_DTYPE_NF4) json_object_set_new(q, "absmax_blocksize", json_integer(PEFT_NF4_ABSMAX_BLOCK));
        if (!four) json_object_set_new(q, "scale", json_string("per-row absmax"));
        int nl = 0; /* each layer's error, in load order */
        const peft_quant_layer *ql = peft_base_model_quant_layers(b, &nl);
        json_t *per = json_array();
        for (int i = 0; i < nl; i++)
            json_array_append_new(per, json_pack("{s:s, s:s, s:f, s:f}", "module", ql[i].name,
                                                 "dtype", peft_dtype_label(ql[i].dtype),
                                                 "relative_error", ql[i].rel_err,
                                                 "max_abs_error", ql[i].max_abs_err));
        json_object_set_new(q, "per_layer", per);
    }
    json_object_set_new(o, "quantization", q);
    return o;
}

static void print_base_storage(const json_t *st)
{
    printf("frozen weights: %.2f MB in memory (", (double)json_integer_value(json_object_get(st, "weight_bytes")) / 1e6);
    const char *k;
    json_t *e;
    int first = 1;
    json_object_foreach((json_t *)json_object_get(st, "dtypes"), k, e) {
        printf("%s%s: %lld tensors, %.2f MB", first ? "" : "; ", k,
               (long long)json_integer_value(json_object_get(e, "tensors")),
               (double)json_integer_value(json_object_get(e, "bytes")) / 1e6);
        first = 0;
    }
    printf(")\n");
    const json_t *q = json_object_get(st, "quantization");
    if (!json_is_object(q)) return;
    const int64_t bits = json_integer_value(json_object_get(q, "bits"));
    printf("quantization: %s (bitsandbytes, %lld-bit", json_string_value(json_object_get(q, "quant_type")), (long long)bits);
    if (bits == 4)
        printf(", blocksize %lld, double quant %s", (long long)json_integer_value(json_object_get(q, "blocksize")),
               json_is_true(json_object_get(q, "double_quant")) ? "on (8-bit absmax, blocks of 256)" : "off");
    else
        printf(", per-row absmax");
    printf("), %lld linear layers, relative error ||W - dequant(Q(W))|| / ||W|| = %.4f\n",
           (long long)json_integer_value(json_object_get(q, "layers")),
           json_real_value(json_object_get(q, "relative_error")));
    size_t i;
    json_t *l;
    printf("  %-40s %-9s %10s %13s\n", "module", "dtype", "rel. error", "max abs error");
    json_array_foreach(json_object_get(q, "per_layer"), i, l)
        printf("  %-40s %-9s %10.4f %13.6g\n", json_string_value(json_object_get(l, "module")),
               json_string_value(json_object_get(l, "dtype")),
               json_real_value(json_object_get(l, "relative_error")),
               json_real_value(json_object_get(l, "max_abs_error")));
}

/* prints {model_status, layer_status, base} (ms, ls: JSON texts or NULL for null / []) */
static void print_json(const char *ms, const char *ls, const char *error, json_t *base)
{
    json_t *o = json_object();
    json_object_set_new(o, "model_status", ms ? json_loads(ms, 0, NULL) : json_null());
    json_object_set_new(o, "layer_status", ls ? json_loads(ls, 0, NULL) : (error ? json_null() : json_array()));
    if (error) json_object_set_new(o, "error", json_string(error));
    json_object_set(o, "base", base);
    char *txt = json_dumps(o, JSON_COMPACT);
    printf("%s\n", txt ? txt : "{}");
    free(txt);
    json_decref(o);
}

/* the model's line and one line per site with the adapters on it */
static void print_sites(const peft_base_model *b)
{
    const int64_t total = peft_base_model_param_count(b);
    const size_t n_sites = peft_base_model_num_sites(b);
    printf("%s (%s) from %s: %zu parameter tensors, %lld parameters, %zu sites\n",
           peft_base_model_class(b), peft_base_model_type(b), peft_base_model_dir(b),
           peft_base_model_num_params(b), (long long)total, n_sites);
    static const char *const kinds[] = {"Linear", "Conv1D", "Embedding", "Norm"};
    for (size_t i = 0; i < n_sites; i++) {
        const peft_site_info *s = peft_base_model_site(b, i);
        int k = s->kind >= 0 && s->kind <= 3 ? s->kind : 0;
        printf("  %-40s %s (%lld -> %lld)", s->name, kinds[k],
               (long long)s->in_features, (long long)s->out_features);
        const char *an, *meth;
        int merged;
        for (int j = 0; peft_base_model_site_adapter(b, i, j, &an, &meth, &merged); j++)
            printf("%s %s:%s%s", j ? "," : "  +", an, meth, merged ? " (merged)" : "");
        printf("\n");
    }
}

int cmd_info(int argc, char **argv)
{
    const char *model = NULL, *config = NULL, *peft_config = NULL;
    char *adapters[CLI_MAX_ADAPTERS];
    int n_adapters = 0, as_json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if (cli_load_opt(argc, argv, &i)) continue;
        else if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--config"))) config = v;
        else if ((v = cli_opt(argc, argv, &i, "--peft-config"))) peft_config = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter"))) {
            if (n_adapters == CLI_MAX_ADAPTERS) return cli_fail("at most %d adapters", CLI_MAX_ADAPTERS);
            adapters[n_adapters++] = (char *)v;
        } else if (!strcmp(argv[i], "--json")) as_json = 1;
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (config) {
        if (model || n_adapters) return cli_fail("--config counts from a config.json alone: no --model/--adapter");
        return info_from_config(config, peft_config);
    }
    if (peft_config) return cli_fail("--peft-config goes with --config");
    if (!model) { fputs(HELP, stderr); return cli_fail("--model (or --config) is required"); }
    peft_ctx *ctx = peft_ctx_new(0);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_base_model *base;
    peft_model *m;
    int rc = cli_open_model(ctx, model, adapters, n_adapters, 0, &base, &m);
    if (rc) { peft_ctx_free(ctx); return rc; }
    peft_base_model *b = m ? peft_get_base_model(m) : base;
    if (!as_json) print_sites(b);
    json_t *storage = base_storage_json(b);
    if (!as_json) print_base_storage(storage);
    if (m) {
        char *ms = NULL, *ls = NULL;
        if (peft_get_model_status(m, &ms) || peft_get_layer_status(m, &ls)) {
            /* prompt learning: PEFT has no status for it either; say why */
            if (!as_json) peft_print_trainable_parameters(m, stdout);
            else print_json(NULL, NULL, peft_errmsg(ctx), storage);
            fprintf(stderr, "peft: %s\n", peft_errmsg(ctx));
            free(ms);
            free(ls);
            peft_model_free(m);
            json_decref(storage);
            peft_ctx_free(ctx);
            return 0;
        }
        if (as_json) {
            print_json(ms, ls, NULL, storage);
        } else {
            peft_print_trainable_parameters(m, stdout);
            printf("model status:\n%s\n", ms);
        }
        free(ms);
        free(ls);
        peft_model_free(m);
    } else {
        if (as_json) print_json(NULL, NULL, NULL, storage);
        else printf("no adapters\n");
        peft_base_model_free(base);
    }
    json_decref(storage);
    peft_ctx_free(ctx);
    return 0;
}
