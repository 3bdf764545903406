/* host_file.c — host->safetensors_read (ABI 1.5): a plugin reads named tensors of a safetensors
 * file other than its adapter's own (multitask prompt tuning's prompt_tuning_init_state_dict_path,
 * a source adapter's file). The file is opened and validated as every load is (peft_st_open:
 * header, dtypes, shapes, offsets); each tensor is copied into a new f32 tensor taken through the
 * host table's tensor_new, so the alloc guard bounds it while an adapter is created; the file is
 * closed before the call returns (nothing borrowed outlives it). */
#include <stdio.h>
#include <string.h>

#include "core/io/safetensors.h"
#include "core/tuner/host_file.h"
#include "core/tuner/registry.h"
#include "peft/graph.h"
#include "peft/safetensors.h"
#include "peft/status.h"
#include "core/util/errbuf.h"

/* PyTorch's torch.save files: a zip archive ("PK\3\4") or a bare pickle (protocol 2+: 0x80) */
static const char *pickle_hint(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return "";
    unsigned char b[4] = {0};
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if ((n == 4 && memcmp(b, "PK\x03\x04", 4) == 0) || (n >= 1 && b[0] == 0x80))
        return " (it looks like a PyTorch torch.save file, a pickle: libpeft reads safetensors "
               "only; convert it with safetensors.torch.save_file)";
    return "";
}

int peft_host_safetensors_read(const char *path, const char *const *names, int n,
                               peft_tensor **out, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!path || !*path || n < 0 || (n > 0 && (!names || !out))) {
        peft_errbuf(err, errlen, "safetensors_read: missing path, names or out");
        return -1;
    }
    for (int i = 0; i < n; i++) out[i] = NULL;
    peft_st_file *f = NULL;
    char oerr[1024] = "";
    int rc = peft_st_open_buf(path, &f, oerr, sizeof oerr);
    if (rc) {
        peft_errbuf(err, errlen, "%s%s", oerr, rc == PEFT_EFORMAT ? pickle_hint(path) : "");
        return -1;
    }
    const peft_host_api *host = peft_host_api_get();
    for (int i = 0; i < n; i++) {
        const peft_st_entry *e = names[i] ? peft_st_find(f, names[i]) : NULL;
        if (!e) continue;
        if (e->dtype == PEFT_DTYPE_I32) {
            peft_errbuf(err, errlen, "%s: tensor '%s' is I32; a float tensor (F32, F16 or BF16) was "
                        "expected", path, names[i]);
            goto fail;
        }
        peft_tensor *t = host->tensor_new(e->ndim, e->shape);
        if (!t) {
            peft_errbuf(err, errlen, "%s: out of memory (or over the adapter's size bound) reading "
                        "tensor '%s'", path, names[i]);
            goto fail;
        }
        peft_convert_to_f32(e->dtype, e->data, peft_f32(t), t->numel);
        out[i] = t;
    }
    peft_st_close(f);
    return 0;
fail:
    for (int i = 0; i < n; i++) {
        host->tensor_free(out[i]);
        out[i] = NULL;
    }
    peft_st_close(f);
    return -1;
}
