/* peft_internal.h — the PeftModel's insides, shared by core/peft_*.c (not public). */
#ifndef PEFT_INTERNAL_H
#define PEFT_INTERNAL_H

#include "peft.h"
#include "site.h"

struct peft_ctx {
    char err[2048];
    peft_rng rng;
};

/* A base parameter made trainable by an adapter's `bias` setting. */
typedef struct peft_trainable_bias {
    peft_param *param;   /* borrowed from the base model */
    peft_site *site;     /* the site whose bias it is, or NULL */
    peft_adapter *owner; /* the adapter whose config asked for it */
} peft_trainable_bias;

struct peft_model {
    peft_ctx *ctx;                 /* borrowed */
    peft_base_model *base;         /* owned */
    peft_adapter **adapters;       /* in the order added */
    int n_adapters, cap_adapters;
    int mixed;                     /* PeftMixedModel */
    int bare;                      /* inject_adapter_in_model: no "base_model.model." prefix */
    int training;
    peft_trainable_bias *biases;
    int n_biases, cap_biases;
};

/* the key prefix of tuner-layer names: "base_model.model." or "" for bare models */
const char *peft_key_prefix(const peft_model *m);
peft_adapter *peft_find_adapter(const peft_model *m, const char *name);
/* parse config text, check peft_type and fields against the plugin; returns a new adapter
 * record (not yet attached) or NULL with the ctx error set */
peft_adapter *peft_adapter_create(peft_model *m, const char *name, const char *config_json,
                                  const char *source);
void peft_adapter_free(peft_adapter *a);
/* attach a created adapter to every matching site; on failure nothing stays attached */
int peft_adapter_inject(peft_model *m, peft_adapter *a);
/* requires_grad on an adapter's parameters (and its trainable biases) */
void peft_adapter_set_trainable(peft_model *m, peft_adapter *a, int trainable);
/* does module `name` (a site) match the adapter's target rules? 1/0, -1 bad regex (err set) */
int peft_target_matches(peft_model *m, const json_t *cfg, const peft_site *s);

#endif
