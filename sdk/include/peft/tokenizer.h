/* tokenizer.h — Hugging Face tokenizers in C: reads a `tokenizer.json` and gives the token ids
 * that Hugging Face's `tokenizers` library gives, and turns ids back into text.
 *
 * Supported (what GPT-2, Llama-2, Llama-3, Qwen2/3, Gemma/Gemma2, DeepSeek-V3 and BERT files
 * use; anything else is refused at load with an error naming the file, the key and the
 * unsupported type):
 *   models          BPE (merges by rank, continuing_subword_prefix, end_of_word_suffix, unk_token,
 *                   fuse_unk, byte_fallback <0xNN>, ignore_merges; dropout must be null/0),
 *                   WordPiece ("##" continuation, [UNK], max_input_chars_per_word), Unigram
 *                   (T5, ALBERT, XLM-R: Viterbi over the pieces' scores, unk fused,
 *                   byte_fallback) and WordLevel
 *   normalizers     BertNormalizer (clean_text, handle_chinese_chars, strip_accents, lowercase),
 *                   Prepend, Replace (String or Regex pattern), Lowercase, NFC, NFD, NFKC, NFKD
 *                   (utf8proc), Precompiled (SentencePiece's compiled charsmap, per grapheme
 *                   cluster), StripAccents, Strip, Sequence
 *   pre-tokenizers  Split (a String or a Regex pattern through PCRE2 — \p{L}, \p{N}, look-ahead,
 *                   (?i:...) — behaviors Removed, Isolated, MergedWithPrevious, MergedWithNext,
 *                   Contiguous, invert), Whitespace, Digits, Punctuation,
 *                   ByteLevel (GPT-2's regex, byte-to-unicode map, add_prefix_space, use_regex),
 *                   Metaspace (replacement, prepend_scheme always/first/never, split),
 *                   BertPreTokenizer, WhitespaceSplit, Sequence
 *   post-processors TemplateProcessing (single), BertProcessing, RobertaProcessing, ByteLevel,
 *                   Sequence
 *   decoders        ByteLevel, Metaspace, WordPiece (cleanup), Replace, ByteFallback, Fuse, Strip,
 *                   BPEDecoder, Sequence
 *   added tokens    matched in the raw text (normalized: false) or in the normalized text
 *                   (normalized: true), leftmost-longest, with lstrip/rstrip/single_word, as HF does
 * Not done: truncation and padding in tokenizer.json are ignored (the caller cuts and pads), pair
 * inputs, offsets.
 *
 * Text is UTF-8. Invalid UTF-8 never fails and never crashes: each maximal invalid subsequence
 * becomes U+FFFD (the replacement character), as Python's errors="replace" and Rust's
 * String::from_utf8_lossy do, and is then tokenized like any U+FFFD (BERT's clean_text drops it;
 * byte-level BPE encodes its bytes EF BF BD). Embedded NUL bytes are text like any other.
 * Unicode properties and normalization come from utf8proc (Unicode 15); regular expressions from
 * PCRE2 (Unicode 14 property tables in Debian 12's 10.42), with JIT, a 64 KiB pattern limit and
 * match/heap limits: a text on which a pattern exceeds them makes encode fail with a message.
 *
 * Errors: functions return PEFT_OK (0) or a negative PEFT_E* code (peft.h) and write a message
 * naming the file, key and what was expected into err (err may be NULL). This library keeps a
 * per-call buffer on purpose, where libpeft's calls leave the message on a context: it is its
 * own library (libpeft_tokenizers.a, nothing of libpeft.so), its calls take no context, and
 * encode/decode run on one tokenizer from many threads at once, so a last-error slot would be
 * shared mutable state (regerror's and PCRE2's choice). peft_tokenizer_text_hook, the bridge to
 * libpeft, reports on the context it is given.
 * Thread safety: a loaded tokenizer is never modified; encode and decode may run on it from any
 * number of threads at once.
 */
#ifndef PEFT_TOKENIZER_H
#define PEFT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct peft_tokenizer peft_tokenizer;
typedef struct peft_ctx peft_ctx; /* peft/peft.h */

/* Special token ids, -1 when the tokenizer has none. Taken from tokenizer_config.json
 * (bos_token, eos_token, pad_token, unk_token, cls_token, sep_token) when the directory has one;
 * otherwise from the usual names among the tokens: bos "<s>"/"<|begin_of_text|>"/"<|endoftext|>",
 * eos "</s>"/"<|end_of_text|>"/"<|endoftext|>", pad "[PAD]"/"<pad>", unk the model's unk_token or
 * "[UNK]"/"<unk>"/"<|endoftext|>" (GPT-2's), cls "[CLS]", sep "[SEP]". */
typedef struct peft_tokenizer_special {
    int32_t bos, eos, pad, unk, cls, sep;
} peft_tokenizer_special;

/* Loads a tokenizer. path: a model directory (reads DIR/tokenizer.json and, when present,
 * DIR/tokenizer_config.json for the special tokens) or a tokenizer.json file (its directory's
 * tokenizer_config.json is read too). *out is owned by the caller: peft_tokenizer_free. */
int peft_tokenizer_load(const char *path, peft_tokenizer **out, char *err, size_t errlen);
/* The same from tokenizer.json text already in memory (no tokenizer_config.json). name is used
 * in error messages (NULL: "tokenizer.json"). */
int peft_tokenizer_from_json(const char *json_text, const char *name, peft_tokenizer **out,
                             char *err, size_t errlen);
void peft_tokenizer_free(peft_tokenizer *tk); /* NULL ok */
/* A peft_tokenize_fn (peft/peft.h) for peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL):
 * loads the tokenizer at `where`, encodes text with special tokens, frees the tokenizer. */
int peft_tokenizer_text_hook(void *ud, peft_ctx *ctx, const char *where, const char *text,
                             int32_t **ids, size_t *n);

/* text (len bytes; len == (size_t)-1 means NUL-terminated) -> *ids (*n of them; the caller frees
 * *ids with free(); *ids may be NULL when *n == 0). add_special_tokens != 0 runs the
 * post-processor (<s> for Llama, [CLS] ... [SEP] for BERT, nothing for GPT-2), like HF's
 * encode(text, add_special_tokens=True). Special-token text in the input ("<s>", "[CLS]",
 * "<|endoftext|>") becomes that token, as in HF. */
int peft_tokenizer_encode(const peft_tokenizer *tk, const char *text, size_t len,
                          int add_special_tokens, int32_t **ids, size_t *n, char *err, size_t errlen);
/* ids -> *text (NUL-terminated UTF-8, the caller frees with free()), like HF's
 * decode(ids, skip_special_tokens). *len (len may be NULL) gets its length in bytes, which
 * counts NUL characters that the text may hold (a decoded <0x00> token). Ids that are not in the
 * vocabulary are skipped, as HF does. */
int peft_tokenizer_decode(const peft_tokenizer *tk, const int32_t *ids, size_t n,
                          int skip_special_tokens, char **text, size_t *len, char *err, size_t errlen);

/* ids are in [0, vocab_size): the model's vocabulary and the added tokens */
int32_t peft_tokenizer_vocab_size(const peft_tokenizer *tk);
/* a token's id (added tokens first, then the model's vocabulary), or -1 */
int32_t peft_tokenizer_token_to_id(const peft_tokenizer *tk, const char *token);
/* an id's token string (borrowed, valid while tk lives), or NULL */
const char *peft_tokenizer_id_to_token(const peft_tokenizer *tk, int32_t id);
/* borrowed, valid while tk lives */
const peft_tokenizer_special *peft_tokenizer_special_ids(const peft_tokenizer *tk);
/* "BPE", "WordPiece", "Unigram" or "WordLevel" (static string) */
const char *peft_tokenizer_model_type(const peft_tokenizer *tk);

#ifdef __cplusplus
}
#endif
#endif
