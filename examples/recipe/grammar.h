/* grammar.h — the seeded synthetic language of the embedded default (examples/).
 *
 * Every sentence is one text line: an operation tag and 3 to 6 letter pairs "x>y" where y is the
 * operation applied to the letter x:
 *     "cap: q>Q f>F z>Z"      upper case
 *     "nxt: q>r f>g z>a"      the next letter (z -> a)
 *     "prv: q>p f>e a>z"      the previous letter (a -> z)
 *     "mir: q>j f>u z>a"      the mirror letter (a <-> z, b <-> y, ...: atbash)
 * The base model is pretrained on a stream of such lines, tags included. The downstream task
 * gives lines without a tag ("q>j f>u z>a") of one operation: the model knows every operation
 * but must learn from a few hundred examples which one an untagged line asks for. Text is
 * tokenized byte by byte (token id = byte value), so the ids of a string are its bytes.
 */
#ifndef RECIPE_GRAMMAR_H
#define RECIPE_GRAMMAR_H

#include <stddef.h>
#include "peft/graph.h"

#define GRAMMAR_CAP 0
#define GRAMMAR_NXT 1
#define GRAMMAR_PRV 2
#define GRAMMAR_MIR 3
#define GRAMMAR_N_OPS 4
#define GRAMMAR_MAX_LINE 32 /* bytes of the longest line, newline and NUL included */

/* the tag of op ("cap", "nxt", "prv", "mir") */
const char *grammar_tag(int op);

/* One line of op drawn from r into line (GRAMMAR_MAX_LINE bytes), ending in '\n'; answer[i] = 1
 * where byte i is an answer letter (the y of a pair), else 0. Returns the length. */
int grammar_line(peft_rng *r, int op, int with_tag, char *line, unsigned char *answer);

#endif
