/* null_forward.c — fixture plugin whose forward returns NULL without a word (an older plugin):
 * the host names the adapter, the plugin and the site (PEFT_EPLUGIN). */
#define FIX_NAME "nullfwd"
#define FIX_PEFT_TYPE "NULLFWD"
#define FIX_FORWARD nullfwd_forward
#include "peft/plugin.h"
static peft_tensor *nullfwd_forward(void *state, peft_graph *g, const peft_site_info *site,
                                    peft_tensor *x, peft_tensor *y);
#include "fixture.h"

static peft_tensor *nullfwd_forward(void *state, peft_graph *g, const peft_site_info *site,
                                    peft_tensor *x, peft_tensor *y)
{
    (void)state, (void)g, (void)site, (void)x, (void)y;
    return NULL;
}
