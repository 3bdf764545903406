/* ia3_match.c — PEFT 0.13.2's IA3Model._check_target_module_feedforward: a module is
 * feed-forward when feedforward_modules is a string that re.fullmatch()es its name, or a list
 * with an entry the name ends with (a plain str.endswith, no '.' boundary, as PEFT does).
 *
 * The regex goes through the host's regex_fullmatch (ABI 1.2: the same Python-to-POSIX
 * translation the host uses for target_modules). An older host has none: a regex is then
 * refused with a message saying so, and a list of names still works. */
#include <string.h>

#include "ia3.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return k <= n && memcmp(s + n - k, suffix, k) == 0;
}

/* re.fullmatch(pattern, module_name): 1, 0, or -1 with err set */
static int regex_feedforward(const char *pat, const char *module_name, char *err, size_t errlen)
{
    if (!PEFT_PU_HOST_HAS(ia3_host, regex_fullmatch, 2)) {
        peft_pu_errf(err, errlen, "ia3 config: field 'feedforward_modules' is the regular "
                     "expression \"%s\", which needs a host with ABI 1.2 or newer "
                     "(regex_fullmatch); this host speaks %u.%u: give feedforward_modules as a "
                     "list of module names", pat, (unsigned)ia3_host->abi_major,
                     (unsigned)ia3_host->abi_minor);
        return -1;
    }
    int m = ia3_host->regex_fullmatch(pat, module_name);
    if (m < 0)
        peft_pu_errf(err, errlen, "ia3 config: field 'feedforward_modules' is the regular "
                     "expression \"%s\", which is invalid or uses a construct with no POSIX "
                     "equivalent (look-around, back-references, \\b)", pat);
    return m;
}

int ia3_is_feedforward(const peft_cfg *cfg, const char *module_name, char *err, size_t errlen)
{
    const char *key = "feedforward_modules";
    int t = ia3_host->cfg_type(cfg, key);
    if (t == PEFT_CFG_STRING) {
        const char *pat = ia3_host->cfg_str(cfg, key);
        return regex_feedforward(pat ? pat : "", module_name, err, errlen);
    }
    if (t == PEFT_CFG_LIST) {
        int n = ia3_host->cfg_list_len(cfg, key);
        for (int i = 0; i < n; i++) {
            const char *f = ia3_host->cfg_list_str(cfg, key, i);
            if (f && ends_with(module_name, f)) return 1;
        }
        return 0;
    }
    peft_pu_errf(err, errlen, "ia3 config: field 'feedforward_modules' must be a string or a "
                 "list of strings when the adapter is injected");
    return -1;
}
