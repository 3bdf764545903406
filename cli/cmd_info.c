/* cmd_info.c — `peft info`: module summary, trainable parameters, adapter status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char *HELP =
    "usage: peft info --model DIR [--adapter DIR[:NAME]]... [--json]\n\n"
    "Prints the model's linear layers (with the adapters on each), PEFT's trainable-parameter\n"
    "line and the model status. --json prints {model_status, layer_status} as JSON only.\n";

int cmd_info(int argc, char **argv)
{
    const char *model = NULL;
    char *adapters[CLI_MAX_ADAPTERS];
    int n_adapters = 0, as_json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter"))) {
            if (n_adapters == CLI_MAX_ADAPTERS) return cli_fail("at most %d adapters", CLI_MAX_ADAPTERS);
            adapters[n_adapters++] = (char *)v;
        } else if (!strcmp(argv[i], "--json")) as_json = 1;
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (!model) { fputs(HELP, stderr); return cli_fail("--model is required"); }
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    peft_model *m;
    int rc = cli_open_model(ctx, model, adapters, n_adapters, 0, &base, &m);
    if (rc) { peft_ctx_free(ctx); return rc; }
    peft_base_model *b = m ? peft_get_base_model(m) : base;
    int64_t total = 0;
    for (size_t i = 0; i < b->n_params; i++) total += b->params[i].t->numel;
    if (!as_json) {
        printf("%s (%s) from %s: %zu parameter tensors, %lld parameters, %zu linear layers\n",
               peft_model_class(b), b->arch->model_type, b->dir, b->n_params, (long long)total, b->n_sites);
        for (size_t i = 0; i < b->n_sites; i++) {
            peft_site *s = b->sites[i];
            printf("  %-40s %s (%lld -> %lld)", s->info.name,
                   s->info.kind == PEFT_SITE_CONV1D ? "Conv1D" : "Linear",
                   (long long)s->info.in_features, (long long)s->info.out_features);
            for (int j = 0; j < s->n_chain; j++)
                printf("%s %s:%s%s", j ? "," : "  +", s->chain[j].adapter->name,
                       s->chain[j].adapter->vt->name, s->chain[j].merged ? " (merged)" : "");
            printf("\n");
        }
    }
    if (m) {
        char *ms = NULL, *ls = NULL;
        if (peft_get_model_status(m, &ms) || peft_get_layer_status(m, &ls)) {
            free(ms);
            peft_model_free(m);
            peft_ctx_free(ctx);
            return cli_fail("%s", "out of memory");
        }
        if (as_json) {
            printf("{\"model_status\": %s, \"layer_status\": %s}\n", ms, ls);
        } else {
            peft_print_trainable_parameters(m, stdout);
            printf("model status:\n%s\n", ms);
        }
        free(ms);
        free(ls);
        peft_model_free(m);
    } else {
        if (as_json) printf("{\"model_status\": null, \"layer_status\": []}\n");
        else printf("no adapters\n");
        peft_base_model_free(base);
    }
    peft_ctx_free(ctx);
    return 0;
}
