/* fail_forward.c — fixture plugin whose forward refuses its input through the host's
 * graph_set_error (ABI 1.3): peft_model_forward must return PEFT_EPLUGIN with the plugin's own
 * message (not an arena out-of-memory). */
#define FIX_NAME "failfwd"
#define FIX_PEFT_TYPE "FAILFWD"
#define FIX_FORWARD failfwd_forward
#include "peft/plugin.h"
static peft_tensor *failfwd_forward(void *state, peft_graph *g, const peft_site_info *site,
                                    peft_tensor *x, peft_tensor *y);
#include "fixture.h"

static peft_tensor *failfwd_forward(void *state, peft_graph *g, const peft_site_info *site,
                                    peft_tensor *x, peft_tensor *y)
{
    (void)state, (void)x, (void)y;
    char msg[256];
    snprintf(msg, sizeof msg, "failfwd: refuses the input of %s", site->name);
    fix_host->graph_set_error(g, msg);
    return NULL;
}
