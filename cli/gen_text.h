/* gen_text.h — `peft generate --text`: prompts -> a left-padded batch, new tokens -> text. */
#ifndef PEFT_CLI_GEN_TEXT_H
#define PEFT_CLI_GEN_TEXT_H

#include <stdio.h>
#include "peft/generate.h"
#include "peft/tokenizer.h"
#include "cli/cli.h"

#define GEN_TEXT_MAX 64

/* texts[0..n) encoded with the tokenizer at tok_path (a model directory or tokenizer.json) into
 * *in (input_ids + attention_mask, left-padded; free with peft_inputs_free) and *ptk (caller
 * frees). 0, or 1 after printing the error. */
int gen_text_inputs(const char *tok_path, const char *const *texts, int n, peft_inputs *in, peft_tokenizer **ptk);
/* each row's new tokens (up to its EOS) decoded without special tokens, one row per line */
int gen_text_print(const peft_tokenizer *tk, const peft_gen_output *o, FILE *f);

#endif
