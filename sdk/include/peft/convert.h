/* peft/convert.h — saving a PiSSA or OLoRA adapter as a plain LoRA for the ORIGINAL base model
 * (PEFT 0.13.2 save_pretrained(..., path_initial_model_for_weight_conversion=...)). The method's
 * part is its plugin's convert_config / convert_tensor entries (ABI 1.4; LoRA has them, in
 * plugins/lora/lora_convert.c); the core walks the state dict and writes the directory.
 *
 * PiSSA/OLoRA rewrite the base weight to W_res = W - s B0 A0 at init. After training (A, B):
 *     W_res + s B A = W + s [B | -B0] [A ; A0]
 * so the adapter lora_A = cat([A, A0], 0), lora_B = cat([B, -B0], 1) with r -> 2r and
 * lora_alpha -> 2 alpha (sqrt(2) alpha with rsLoRA, keeping the scaling) applies to W itself.
 */
#ifndef PEFT_CONVERT_H
#define PEFT_CONVERT_H

#include "peft/export.h"

#include "peft/peft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes adapter `adapter_name` (NULL = "default") of m, converted as above, to dir ("default")
 * or dir/<name> (other adapters), atomically: adapter_model.safetensors (only the lora_A/lora_B
 * tensors, F32, metadata {"format": "pt"}; modules_to_save copies, DoRA magnitudes and trainable
 * biases are dropped, as PEFT 0.13.2 does) and adapter_config.json (the adapter's config with
 * init_lora_weights true, r and every rank_pattern value doubled, lora_alpha and every
 * alpha_pattern value doubled — lora_alpha times sqrt(2) with use_rslora — and inference_mode
 * true).
 *
 * initial_adapter_dir holds the adapter as it was right after init, before any training (the
 * A0, B0 of the PiSSA/OLoRA decomposition), saved by peft_save_pretrained with the same keys;
 * only its adapter_model.safetensors is read (nothing is written there: PEFT also rewrites that
 * folder's adapter_config.json, libpeft does not). Borrowed strings; m is not modified.
 *
 * Returns PEFT_OK, or with a message on m's context:
 *   PEFT_ENOTFOUND  no adapter of that name;
 *   PEFT_EINVAL     the adapter's plugin has no convert entries (not LoRA), or uses rsLoRA together with
 *                   rank_pattern/alpha_pattern (PEFT refuses the conversion too), or a path is
 *                   too long;
 *   PEFT_EFORMAT    the initial adapter file is unreadable as safetensors, lacks a key of the
 *                   adapter, or a tensor's shape does not fit (each named with the file);
 *   PEFT_EIO / PEFT_ENOMEM  writing failed / out of memory.
 * A warning (peft_warn) is given when the adapter's init_lora_weights is not "pissa...",
 * "olora" or true, as PEFT warns. */
PEFT_API int peft_save_pretrained_convert(peft_model *m, const char *dir, const char *adapter_name,
                                          const char *initial_adapter_dir);

#ifdef __cplusplus
}
#endif
#endif
