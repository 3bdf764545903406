/* host_file.h — files a plugin may read through the host table (ABI 1.5): see
 * peft_host_api.safetensors_read in peft/plugin.h. */
#ifndef PEFT_HOST_FILE_H
#define PEFT_HOST_FILE_H

#include "peft/plugin.h"

int peft_host_safetensors_read(const char *path, const char *const *names, int n,
                               peft_tensor **out, char *err, size_t errlen);

#endif
