#!/bin/sh
# seeds.sh — fills a fuzz target's seed corpus from the repository's fixtures and examples.
# usage: fuzz/seeds.sh TARGET DIR   (TARGET: safetensors config adapter inputs tokenizer yaml
# jsonl manifest). Targets whose first input byte picks a variant get a 0 byte in front.
set -u
t=$1; out=$2
mkdir -p "$out"
i=0
put() { i=$((i+1)); cp "$1" "$out/seed-$i"; }
put0() { i=$((i+1)); { printf '\0'; cat "$1"; } > "$out/seed-$i"; }
fx=tests/fixtures
case $t in
  safetensors) for f in $(find $fx -name '*.safetensors' -size -32k | sort | head -40); do put "$f"; done ;;
  config) for f in $(find $fx -name config.json -size -8k | sort | head -60); do put "$f"; done ;;
  adapter) for f in $(find $fx -name adapter_config.json | sort | head -60); do put0 "$f"; done ;;
  inputs) for f in $(find $fx -name inputs.json -size -16k | sort | head -40); do put "$f"; done ;;
  tokenizer) for f in $(find $fx -name tokenizer.json -size -64k | sort | head -20); do put "$f"; done ;;
  yaml) for f in examples/default.yaml $(find docs tests -name '*.yaml' | sort | head -20); do [ -f "$f" ] && put "$f"; done
        sed -n '/^```yaml/,/^```/p' README.md docs/experiments.md | grep -v '^```' > "$out/readme.yaml" ;;
  jsonl) for f in $(find examples $fx -name '*.jsonl' | sort | head -10); do
           i=$((i+1)); { printf '\0'; head -n 5 "$f"; } > "$out/seed-$i"; done ;;
  manifest) for f in $(find $fx -name peft_mixed.json | sort | head -20); do put "$f"; done
            printf '{"format": "libpeft-mixed", "format_version": 1, "adapters": [{"name": "default", "peft_type": "LORA", "folder": ".", "scale": 1.0}, {"name": "second", "peft_type": "LOHA", "folder": "second", "scale": 1.0}], "active_adapters": ["default", "second"], "enabled": true}\n' > "$out/seed-manifest" ;;
esac
[ -n "$(ls "$out")" ] || echo '{}' > "$out/empty"
