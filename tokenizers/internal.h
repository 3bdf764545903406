/* tokenizer_internal.h — what the core/tokenizer_*.c files share: growable buffers, UTF-8,
 * Unicode properties, hash maps, and the pipeline's parts (normalizer, pre-tokenizer, model,
 * post-processor, decoder), each parsed from its tokenizer.json object by its own file.
 * Internal to libpeft; the public API is tokenizer.h. */
#ifndef PEFT_TOKENIZER_INTERNAL_H
#define PEFT_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "peft/tokenizer.h"

/* every function below that can fail returns 0 or a negative PEFT_E* code */
int tk_err(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int tk_oom(char *err, size_t errlen);

/* ---- growable buffers (zero-initialise; free the pointer) ---- */
typedef struct tk_cps { uint32_t *c; size_t n, cap; } tk_cps;  /* code points */
typedef struct tk_str { char *s; size_t n, cap; } tk_str;      /* bytes, kept NUL-terminated */
typedef struct tk_ids { int32_t *v; size_t n, cap; } tk_ids;
int tk_cps_push(tk_cps *b, uint32_t c);
int tk_cps_append(tk_cps *b, const uint32_t *c, size_t n);
int tk_str_append(tk_str *b, const char *s, size_t n);
int tk_str_putc(tk_str *b, uint32_t cp); /* as UTF-8 */
int tk_ids_push(tk_ids *b, int32_t v);
int tk_ids_append(tk_ids *b, const int32_t *v, size_t n);

/* ---- jansson's allocations during one load (json_arena.c) ---- */
/* While open on this thread (texts of TK_JSON_ARENA_MIN bytes or more; NULL otherwise, or when
 * no arena can be had: then jansson allocates as usual), every jansson allocation of this thread
 * is carved from one arena; close(a, j) drops the tree j made under it (json_decref when needed)
 * and the arena: no jansson value made while it was open may outlive it. close(NULL, j) is
 * json_decref(j). */
#define TK_JSON_ARENA_MIN ((size_t)256 << 10)
typedef struct tk_json_arena tk_json_arena;
tk_json_arena *tk_json_arena_open(size_t text_len);
void tk_json_arena_close(tk_json_arena *a, json_t *j);

/* ---- UTF-8 ---- */
/* s[0..len) -> code points appended to out; each maximal invalid subsequence -> U+FFFD */
int tk_utf8_decode(const char *s, size_t len, tk_cps *out);
/* one code point -> 1..4 bytes in out; returns the count */
size_t tk_utf8_put(uint32_t cp, char out[4]);
int tk_utf8_from_cps(const uint32_t *c, size_t n, tk_str *out);
/* byte length of the UTF-8 character starting at s[0] (1 for an invalid lead byte), <= left */
size_t tk_utf8_len(const char *s, size_t left);
/* a NUL-terminated UTF-8 string (from JSON: always valid) -> a new code point array */
int tk_cps_from_cstr(const char *s, tk_cps *out);

/* ---- Unicode (unicode.c, through utf8proc) ---- */
enum { TK_Cn, TK_Lu, TK_Ll, TK_Lt, TK_Lm, TK_Lo, TK_Mn, TK_Mc, TK_Me, TK_Nd, TK_Nl, TK_No,
       TK_Pc, TK_Pd, TK_Ps, TK_Pe, TK_Pi, TK_Pf, TK_Po, TK_Sm, TK_Sc, TK_Sk, TK_So, TK_Zs,
       TK_Zl, TK_Zp, TK_Cc, TK_Cf, TK_Cs, TK_Co };
int tk_ucat(uint32_t cp);            /* general category, TK_* */
int tk_is_space(uint32_t cp);        /* White_Space (Rust char::is_whitespace, regex \s) */
int tk_is_letter(uint32_t cp);       /* \p{L} */
int tk_is_number(uint32_t cp);       /* \p{N} */
int tk_is_punct(uint32_t cp);        /* \p{P} */
int tk_is_word(uint32_t cp);         /* regex \w: letters, marks, Nd, Pc */
int tk_ccc(uint32_t cp);             /* canonical combining class */
/* full lowercase of one code point (U+0130 gives two) appended to out */
int tk_lower_append(uint32_t cp, tk_cps *out);
/* canonical decomposition (NFD) of in[0..n) appended to out */
int tk_nfd(const uint32_t *in, size_t n, tk_cps *out);
/* the normalization form (TK_NFC, TK_NFD, TK_NFKC, TK_NFKD) of in[0..n) appended to out */
enum { TK_NFC, TK_NFD, TK_NFKC, TK_NFKD };
int tk_unorm(const uint32_t *in, size_t n, int form, tk_cps *out);

/* ---- regular expressions through PCRE2 (regex.c) ---- */
#define TK_E_REGEX_LIMIT (-1000) /* a match hit the match/heap limit (internal; encode reports it) */
typedef struct tk_regex tk_regex;
typedef struct tk_span { size_t a, b; int match; } tk_span;
typedef struct tk_spans { tk_span *v; size_t n, cap; } tk_spans;
int tk_spans_push(tk_spans *s, size_t a, size_t b, int match);
/* literal != 0: pat is plain text (HF's {"String": ...}); where names the key for messages */
int tk_regex_compile(const char *pat, size_t len, int literal, const char *where, tk_regex **out, char *err,
                     size_t errlen);
void tk_regex_free(tk_regex *re);
/* HF's find_matches: the matches and the text between them, covering s[0..n) in order (byte offsets) */
int tk_regex_split(const tk_regex *re, const char *s, size_t n, tk_spans *out);
/* the same over code points (code-point offsets) */
int tk_regex_split_cps(const tk_regex *re, const uint32_t *c, size_t n, tk_spans *out);

/* ---- hash maps ---- */
/* bytes -> int32 (open addressing; keys copied into the map's arena, NUL-terminated) */
typedef struct tk_strslot { const char *key; uint32_t len, hash; int32_t val; } tk_strslot;
typedef struct tk_strchunk tk_strchunk; /* map.c: the arena the keys are copied into */
typedef struct tk_strmap { tk_strslot *slots; size_t cap, n; tk_strchunk *chunks; } tk_strmap;
/* replaces; *stored (if stored != NULL): the map's copy of the key, valid until tk_strmap_free */
int tk_strmap_put(tk_strmap *m, const char *k, size_t len, int32_t v, const char **stored);
int tk_strmap_reserve(tk_strmap *m, size_t n); /* room for n more keys without rehashing */
int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t len);  /* -1 when absent */
/* for a loader that looks up or stores many keys (the BPE merges, a vocabulary): the key a[0..la) b[0..lb) (b may be NULL
 * when lb is 0) by its hash h = tk_strmap_hash(a, la, b, lb), the slot it probes first and then
 * that slot's key fetched into the cache ahead of the lookups (hints: they change no result) */
uint32_t tk_strmap_hash(const char *a, size_t la, const char *b, size_t lb);
void tk_strmap_prefetch(const tk_strmap *m, uint32_t h);
void tk_strmap_prefetch_key(const tk_strmap *m, uint32_t h);
int32_t tk_strmap_get_h(const tk_strmap *m, uint32_t h, const char *a, size_t la, const char *b, size_t lb);
int tk_strmap_put_h(tk_strmap *m, uint32_t h, const char *k, size_t len, int32_t v, const char **stored);
void tk_strmap_free(tk_strmap *m);
/* (id a, id b) -> (rank, new id) */
typedef struct tk_pairslot { uint64_t key; int32_t rank, newid; } tk_pairslot; /* key 0: empty */
typedef struct tk_pairmap { tk_pairslot *slots; size_t cap, n; } tk_pairmap;
int tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t newid);
int tk_pairmap_reserve(tk_pairmap *m, size_t n); /* room for n more pairs without rehashing */
void tk_pairmap_prefetch(const tk_pairmap *m, int32_t a, int32_t b); /* a hint before a put */
int tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *newid); /* 1 found */
void tk_pairmap_free(tk_pairmap *m);

/* ---- pieces of text as they move through the pipeline ---- */
typedef struct tk_piece {
    tk_cps t;
    int32_t id;   /* an added token's id, or -1: text still to tokenize */
    int at_start; /* begins at offset 0 of the original text (Metaspace prepend_scheme "first") */
} tk_piece;
typedef struct tk_pieces { tk_piece *p; size_t n, cap; } tk_pieces;
int tk_pieces_push(tk_pieces *l, const uint32_t *c, size_t n, int32_t id, int at_start);
void tk_pieces_free(tk_pieces *l);

/* ---- normalizers (tokenizer_normalize.c) ---- */
typedef struct tk_normalizer tk_normalizer;
int tk_normalizer_parse(const json_t *j, const char *where, tk_normalizer **out, char *err, size_t errlen);
int tk_normalize(const tk_normalizer *nz, const tk_cps *in, tk_cps *out); /* out reset first */
void tk_normalizer_free(tk_normalizer *nz);

/* SentencePiece's compiled normalization rules (precompiled.c) */
typedef struct tk_charsmap tk_charsmap;
int tk_charsmap_parse(const char *b64, size_t len, const char *where, tk_charsmap **out, char *err, size_t errlen);
int tk_charsmap_apply(const tk_charsmap *cm, const uint32_t *in, size_t n, tk_cps *out);
void tk_charsmap_free(tk_charsmap *cm);

/* ---- pre-tokenizers (tokenizer_pretok.c) ---- */
typedef struct tk_pretok tk_pretok;
int tk_pretok_parse(const json_t *j, const char *where, tk_pretok **out, char *err, size_t errlen);
/* splits `in` into words appended to out (each with id -1) */
int tk_pretokenize(const tk_pretok *pt, const tk_piece *in, tk_pieces *out);
void tk_pretok_free(tk_pretok *pt);
/* GPT-2's byte -> unicode character map (tokenizer_pretok.c) */
uint32_t tk_byte_to_char(uint8_t b);
int tk_char_to_byte(uint32_t c); /* -1 if c is not one of the 256 */

/* ---- models (tokenizer_bpe.c, tokenizer_wordpiece.c) ---- */
enum { TK_MODEL_BPE = 1, TK_MODEL_WORDPIECE = 2, TK_MODEL_UNIGRAM = 3, TK_MODEL_WORDLEVEL = 4 };
typedef struct tk_model {
    int type;
    tk_strmap vocab;     /* token -> id */
    const char **id_tok; /* id -> token (NULL where the vocabulary has a hole): borrowed from
                            vocab's key arena, freed with it (tk_model_free) */
    int32_t n_ids;       /* max id + 1 */
    int32_t unk_id;      /* -1 if none */
    char *unk_token;
    /* BPE */
    tk_pairmap merges;
    char *cont_prefix, *eow_suffix; /* NULL when absent */
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_ids[256]; /* ids of <0x00>..<0xFF> or -1 */
    /* WordPiece */
    char *wp_prefix;
    int64_t max_chars;
    /* Unigram */
    double *scores;    /* per id */
    double min_score;
    size_t max_piece;  /* bytes of the longest piece */
} tk_model;
int tk_bpe_parse(const json_t *j, const char *where, tk_model *m, char *err, size_t errlen);
int tk_bpe_word(const tk_model *m, const char *w, size_t len, tk_ids *out);
int tk_wordpiece_parse(const json_t *j, const char *where, tk_model *m, char *err, size_t errlen);
int tk_wordpiece_word(const tk_model *m, const char *w, size_t len, tk_ids *out);
int tk_unigram_parse(const json_t *j, const char *where, tk_model *m, char *err, size_t errlen);
int tk_unigram_word(const tk_model *m, const char *w, size_t len, tk_ids *out);
int tk_wordlevel_parse(const json_t *j, const char *where, tk_model *m, char *err, size_t errlen);
int tk_wordlevel_word(const tk_model *m, const char *w, size_t len, tk_ids *out);
/* any model: the ids of one pre-tokenized word appended to out (PEFT_EINVAL: unk needed, none) */
int tk_model_word(const tk_model *m, const char *w, size_t len, tk_ids *out);
/* the vocab object {"token": id} shared by BPE, WordPiece and WordLevel */
int tk_model_parse_vocab(const json_t *vocab, const char *where, tk_model *m, char *err, size_t errlen);
void tk_model_free(tk_model *m);

/* ---- post-processors (tokenizer_post.c) ---- */
typedef struct tk_post tk_post;
/* the ids of the special tokens come from the processor's own JSON ("special_tokens" ids,
 * BertProcessing's ["[SEP]", 102]) */
int tk_post_parse(const json_t *j, const char *where, tk_post **out, char *err, size_t errlen);
/* seq (the encoded text) -> out with the special tokens */
int tk_post_apply(const tk_post *pp, const int32_t *seq, size_t n, tk_ids *out);
void tk_post_free(tk_post *pp);

/* ---- decoders (tokenizer_decode.c) ---- */
typedef struct tk_decoder tk_decoder;
int tk_decoder_parse(const json_t *j, const char *where, tk_decoder **out, char *err, size_t errlen);
void tk_decoder_free(tk_decoder *d);

/* ---- the tokenizer ---- */
typedef struct tk_added {
    char *content;     /* UTF-8 */
    char *decoded;     /* what decoding shows: the normalized content for normalized tokens (as
                          HF's simple_id_to_token), else content; borrowed from content or owned */
    tk_cps raw;        /* content as code points */
    tk_cps norm;       /* content after the normalizer (for normalized tokens) */
    int32_t id;
    int special, single_word, lstrip, rstrip, normalized;
} tk_added;

struct peft_tokenizer {
    char *name;                /* the file, for messages */
    tk_model model;
    tk_added *added;
    size_t n_added;
    tk_strmap added_map;       /* content -> index in added */
    /* the added tokens matched in the raw (by_first[0]) and in the normalized text (by_first[1]):
     * indices into added sorted by their pattern's first code point, with those first code points */
    uint32_t *by_first[2], *first_cp[2];
    size_t n_first[2];
    tk_normalizer *normalizer; /* NULL = none */
    tk_pretok *pretok;
    tk_post *post;
    tk_decoder *decoder;
    int32_t vocab_size;
    peft_tokenizer_special special;
};

/* the token string of id (added tokens first) or NULL; for_decode: an added token's decoded form */
const char *tk_token_of(const peft_tokenizer *tk, int32_t id, int for_decode);
/* runs the decoder chain over tokens[0..n) (strings, modified/replaced in place) and joins them */
int tk_decoder_run(const tk_decoder *d, tk_str *tokens, size_t n, tk_str *out);

#endif
