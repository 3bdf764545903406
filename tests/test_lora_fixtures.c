/* test_lora_fixtures.c — LoRA against Python PEFT's fixtures on every architecture: each
 * <arch>__lora_* case through the contract table (tests/util/contract.c), task heads'
 * modules_to_save copies included. */
#include "contract.h"

int main(void)
{
    static const char *const prefixes[] = {"gpt2__lora", "llama__lora", "t5__lora", "bert_seqcls__lora",
                                           "bert_tokcls__lora", "bert_qa__lora"};
    return contract_suite_main("lora_fixtures", prefixes, 6, 25);
}
