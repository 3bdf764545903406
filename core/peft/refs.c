/* refs.c — an adapter's state-dict references from its plugin (site or adapter level), however
 * many: the plugin's state_dict returns the count it needs (as snprintf), and a larger buffer
 * asks again. Plugins of ABI <= 1.2 return at most the room given (32 here), as before. */
#include <stdlib.h>
#include <string.h>
#include "core/peft/internal.h"
#include "core/tuner/plugin_call.h"

static int call(const peft_adapter *a, void *state, peft_param_ref *out, int max)
{
    if (state) return PEFT_PLUGIN_CALL(a->vt, "state_dict", a->name, NULL, a->vt->state_dict(state, out, max));
    if (!a->adapter_state || !a->vt->adapter_state_dict) return 0;
    return PEFT_PLUGIN_CALL(a->vt, "adapter_state_dict", a->name, NULL,
                            a->vt->adapter_state_dict(a->adapter_state, out, max));
}

int peft_refs_get(peft_refs *r, const peft_adapter *a, void *state)
{
    const int local = (int)(sizeof r->local / sizeof r->local[0]);
    memset(r->local, 0, sizeof r->local);
    r->v = r->local;
    r->n = call(a, state, r->v, local);
    if (r->n < 0) r->n = 0;
    if (r->n <= local) return 0;
    int need = r->n;
    r->v = calloc((size_t)need, sizeof *r->v);
    if (!r->v) {
        r->v = r->local;
        r->n = 0;
        return -1;
    }
    r->n = call(a, state, r->v, need);
    if (r->n > need) r->n = need; /* it grew between the calls: keep what fits */
    if (r->n < 0) r->n = 0;
    return 0;
}

void peft_refs_free(peft_refs *r)
{
    if (r->v && r->v != r->local) free(r->v);
    r->v = r->local;
    r->n = 0;
}
