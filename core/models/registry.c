/* registry.c — the table of base-model architectures, looked up by config.json "model_type".
 * Each architecture (core/models/<name>.c) exports one const peft_arch; add it to the table. */
#include <string.h>
#include "core/model/model_internal.h"

extern const peft_arch peft_arch_gpt2;
extern const peft_arch peft_arch_bert;
extern const peft_arch peft_arch_llama;
extern const peft_arch peft_arch_t5;
extern const peft_arch peft_arch_qwen2;
extern const peft_arch peft_arch_mistral;
extern const peft_arch peft_arch_gemma;
extern const peft_arch peft_arch_gemma2;
extern const peft_arch peft_arch_phi3;

static const peft_arch *const ARCHS[] = {
    &peft_arch_gpt2,
    &peft_arch_bert,
    &peft_arch_llama,
    &peft_arch_t5,
    &peft_arch_qwen2,
    &peft_arch_mistral,
    &peft_arch_gemma,
    &peft_arch_gemma2,
    &peft_arch_phi3,
};

#define N_ARCHS (sizeof ARCHS / sizeof ARCHS[0])

const peft_arch *peft_arch_find(const char *model_type)
{
    if (!model_type) return NULL;
    for (size_t i = 0; i < N_ARCHS; i++)
        if (strcmp(ARCHS[i]->model_type, model_type) == 0) return ARCHS[i];
    return NULL;
}

const peft_arch *peft_arch_at(size_t i)
{
    return i < N_ARCHS ? ARCHS[i] : NULL;
}

const char *peft_arch_model_type(const peft_arch *a) { return a ? a->model_type : NULL; }
const char *peft_arch_class_name(const peft_arch *a) { return a ? a->class_name : NULL; }
const char *peft_arch_task_type(const peft_arch *a) { return a ? a->task_type : NULL; }
