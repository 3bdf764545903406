/* contract.h — the contract table every tuner method runs on Python PEFT's fixture cases:
 * HF fixtures match (logits, loss, gradients, merged logits, status, counts), merged ==
 * unmerged, unload restores the base bit-exactly, disabled adapter == base, save/load round
 * trip with PEFT's exact keys and config fields. */
#ifndef PEFT_CONTRACT_H
#define PEFT_CONTRACT_H

/* Runs every check on fixture case <set>/<case_name>, the set hf-peft or hf-peft-v2 (its
 * INDEX.json entry gives the model, the adapter name, the loss and the saved keys). Failures are
 * reported with ck_assert. With CONTRACT_REPORT set, prints the largest differences seen. */
void contract_run_case(const char *case_name);

/* Flags of contract_run_case_flags: a documented departure from PEFT on the case.
 * CONTRACT_MERGE_DEPARTS: PEFT's merge is wrong on this case (its merged_logits are not the
 * unmerged model's); libpeft's merged outputs must equal its unmerged ones and differ from
 * PEFT's merged_logits (or PEFT could not merge at all and libpeft can). */
#define CONTRACT_MERGE_DEPARTS 0x1u
void contract_run_case_flags(const char *case_name, unsigned flags);

/* the case names in hf-peft/INDEX.json (the first set) whose name starts with prefix,
 * NULL-terminated, static */
const char *const *contract_cases(const char *prefix);

/* A whole Check suite: every case under each prefix through contract_run_case. Returns the exit
 * status (failure also when fewer than min_cases cases were found). */
int contract_suite_main(const char *suite, const char *const *prefixes, int n_prefixes, int min_cases);

#endif
