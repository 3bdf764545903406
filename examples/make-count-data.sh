#!/bin/sh
# make-count-data.sh — the toy data set of the README's main job: 600 lines of 32 token ids,
# each line counting upward by a stride of 1, 2 or 3 (mod 256) from a pseudo-random start.
# A language model learns it only by reading the stride off the first tokens: a frozen random
# GPT-2 sits at ln(256) = 5.5 nats; a LoRA that learns the rule gets close to 0.
# Deterministic (a fixed LCG), so the committed file can be regenerated bit for bit:
#   sh examples/make-count-data.sh > examples/data/count-tokens.txt
awk 'BEGIN {
  s = 12345
  for (line = 0; line < 600; line++) {
    s = (s * 1103515245 + 12345) % 2147483648; start = int(s / 65536) % 256
    s = (s * 1103515245 + 12345) % 2147483648; stride = 1 + int(s / 65536) % 3
    out = ""
    for (i = 0; i < 32; i++) out = out (i ? " " : "") ((start + i * stride) % 256)
    print out
  }
}'
