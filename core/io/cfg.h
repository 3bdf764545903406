/* cfg.h — peft_cfg: an adapter_config.json object (jansson) behind the host API's config
 * getters and setters, plus PEFT's pattern-key lookup and target-module matching. */
#ifndef PEFT_CFG_H
#define PEFT_CFG_H

#include <jansson.h>
#include "peft/plugin.h"

struct peft_cfg {
    json_t *obj; /* borrowed: owned by whoever made the peft_cfg (the adapter record) */
};

int peft_cfg_type(const peft_cfg *c, const char *key);
int peft_cfg_bool(const peft_cfg *c, const char *key, int *out);
int peft_cfg_int(const peft_cfg *c, const char *key, int64_t *out);
int peft_cfg_real(const peft_cfg *c, const char *key, double *out);
const char *peft_cfg_str(const peft_cfg *c, const char *key);
/* key's value as compact JSON text (sorted keys), malloc'd (free()); NULL when missing */
char *peft_cfg_get_json(const peft_cfg *c, const char *key);
int peft_cfg_list_len(const peft_cfg *c, const char *key);
const char *peft_cfg_list_str(const peft_cfg *c, const char *key, int i);
int peft_cfg_pattern_real(const peft_cfg *c, const char *dict_key, const char *module_name,
                          double *out);
/* the same with the LyCORIS rule: module_name matches "(.*\.)?key$" from its start */
int peft_cfg_pattern_real_lycoris(const peft_cfg *c, const char *dict_key, const char *module_name,
                                  double *out);
void peft_cfg_set_bool(peft_cfg *c, const char *key, int v);
void peft_cfg_set_int(peft_cfg *c, const char *key, int64_t v);
void peft_cfg_set_real(peft_cfg *c, const char *key, double v);
void peft_cfg_set_str(peft_cfg *c, const char *key, const char *v);
int peft_cfg_set_json(peft_cfg *c, const char *key, const char *json_text);
int peft_cfg_list_int(const peft_cfg *c, const char *key, int i, int64_t *out);

/* Python-style regex (PCRE2, regex.c) full match, PEFT's re.fullmatch: 1 match, 0 no match, -1
 * when the pattern is invalid or a match exceeds the limits (the _err form writes why into err) */
int peft_regex_fullmatch(const char *pattern, const char *s);
int peft_regex_fullmatch_err(const char *pattern, const char *s, char *err, size_t errlen);
/* PEFT's pattern-key rule re.match(rf".*\.{key}$", name), or with lycoris rf"(.*\.)?{key}$":
 * 1 match, 0 no match, -1 an invalid key (Python would raise; the lookup skips it) */
int peft_regex_match_key(const char *key, const char *name, int lycoris);
/* PEFT's layer index of a module name: re.match(rf".*\.{pattern}\.(\d+)\.", name).group(1)
 * (pattern NULL: "[^.]*"); -1 when it does not match or group 1 is not a number */
long peft_regex_layer_index(const char *pattern, const char *name);

#endif
