/* cli.h — shared pieces of the `peft` command: option parsing, input files, model setup. */
#ifndef PEFT_CLI_H
#define PEFT_CLI_H

#include "peft/peft.h"
#include "peft/inputs.h"

#define CLI_MAX_ADAPTERS 16


/* "--model DIR --adapter DIR[:NAME]..." -> a PEFT model with every adapter active.
 * *pm is NULL (and *pbase set) when no adapter was given. 0 or 1 after printing the error. */
int cli_open_model(peft_ctx *ctx, const char *model_dir, char **adapters, int n_adapters,
                   int trainable, peft_base_model **pbase, peft_model **pm);
/* the same; mixed != 0 makes a mixed model (PeftMixedModel), as does an --adapter directory
 * holding a mixed-model manifest (peft_mixed.json) */
int cli_open_model_mixed(peft_ctx *ctx, const char *model_dir, char **adapters, int n_adapters,
                         int trainable, int mixed, peft_base_model **pbase, peft_model **pm);

/* --dtype auto|float32|bfloat16|float16 and --quant none|int8|nf4|nf4-nodq at argv[*i]
 * (consumed: returns 1), remembered for cli_load_base / cli_open_model */
int cli_load_opt(int argc, char **argv, int *i);
/* the base model with those options; 0, or 1 after printing the error */
int cli_load_base(peft_ctx *ctx, const char *model_dir, peft_base_model **out);
#define CLI_LOAD_HELP \
    "  --dtype D    auto (default: weights stay in the file's dtype, nothing copied), float32,\n" \
    "               bfloat16 or float16 (transformers' torch_dtype)\n" \
    "  --quant Q    none, int8, nf4 (double quant) or nf4-nodq: linear layers quantized at load\n" \
    "               (default: config.json's quantization_config)\n" \
    "  --random-weights  no weight files: random weights drawn in memory from DIR/config.json\n" \
    "               (benchmarks of real shapes without a download)\n"

int cmd_forward(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_init_model(int argc, char **argv);
int cmd_plugin_check(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_combine(int argc, char **argv);
int cmd_generate(int argc, char **argv);

/* tiny option helpers: returns the value of --name at argv[*i] and advances, or NULL */
const char *cli_opt(int argc, char **argv, int *i, const char *name);
/* a whole text file (NUL-terminated, caller frees) or NULL after printing why */
char *cli_read_text(const char *path);
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* peft_inputs_load_json of path into *in; 0, or 1 after printing why */
int cli_load_inputs(const char *path, peft_inputs *in);
/* "a,b,c" -> names (pointers into buf, which is cut up), count; at most max */
int cli_split_names(char *buf, const char **names, int max);
/* --row-adapters "a,b,...": one adapter name per batch row (B rows) into names (max entries;
 * pointers into buf, len bytes, which holds a copy of spec). have_model: adapters are loaded.
 * 0, or 1 after printing what was expected */
int cli_row_adapters(const char *spec, char *buf, size_t len, const char **names, int max, int64_t B,
                     int have_model);

#endif
