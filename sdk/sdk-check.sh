#!/bin/sh
# sdk-check.sh — what CI checks of the plugin SDK, run by `make sdk-check` after
# `make install DESTDIR=$STAGE/root`: the template and the shipped plugins that double as the
# plugin guide's worked examples (plugins/lokr, plugins/vera: one copy of each, no separate
# example tree) are copied out of the tree and built with their own Makefiles against the
# staged install, found by pkg-config alone; `peft plugin-check` (the installed command) runs on every installed
# plugin and on each of those, from a directory outside the source tree with PEFT_FIXTURES unset
# (its built-in tiny models of every architecture, nothing else); the LoKr example is loaded by name through PEFT_PLUGIN_PATH: trained a
# few steps, saved, and reloaded by `peft forward --adapter`.
# usage: sdk/sdk-check.sh STAGE PREFIX
set -u
stage=$1; prefix=$2
src=$(pwd)
root=$stage/root
export PKG_CONFIG_PATH="$root$prefix/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$root"
peft="$root$prefix/bin/peft"
fail=0; failed=""
note_fail() { fail=$((fail+1)); failed="$failed $1"; echo "sdk-check: FAILED: $1"; }

# 0. the installed library: libpeft.so -> its SONAME, exports == the installed headers' API
lib="$root$prefix/lib/libpeft.so"
soname=$(objdump -p "$lib" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
if [ -L "$lib" ] && [ -f "$root$prefix/lib/$soname" ] && [ "$(readlink "$lib")" = "$soname" ]; then
  echo "installed: libpeft.so -> $soname"
else
  note_fail "libpeft.so is not a symlink to its SONAME ($soname)"
fi
./scripts/check-exports.sh "$lib" "$root$prefix/include" || note_fail "exports of the installed library"
# 0b. the installed library searches only install locations and $PEFT_PLUGIN_PATH: the build
# tree's plugin dir is not compiled into it
if [ -n "${PEFT_BUILD_PLUGIN_DIR:-}" ] && grep -qF "$PEFT_BUILD_PLUGIN_DIR" "$root$prefix/lib/$soname"; then
  note_fail "the installed libpeft.so still names the build's plugin dir $PEFT_BUILD_PLUGIN_DIR"
else
  echo "installed libpeft.so: searches \$PEFT_PLUGIN_PATH and install locations only"
fi

# 1. out-of-tree builds, pkg-config only
mkdir -p "$stage/src"
cp -r sdk/template "$stage/src/template"
built="$stage/src/template/chanscale.so"
make -s -C "$stage/src/template" || note_fail "build sdk/template"
for ex in plugins/lokr plugins/vera; do
  name=$(basename "$ex")
  mkdir -p "$stage/src/$name"
  cp "$ex"/*.c "$ex"/*.h "$ex"/Makefile "$stage/src/$name/"
  make -s -C "$stage/src/$name" || note_fail "build $ex out of tree"
  built="$built $stage/src/$name/$name.so"
done

# 2. the conformance checks on every installed plugin and the out-of-tree ones: the installed
# command, run from outside the source tree with no fixtures (its built-in models only)
installed=$(ls "$root$prefix"/lib/libpeft/plugins/*.so 2>/dev/null)
[ -n "$installed" ] || note_fail "no plugin installed under $root$prefix/lib/libpeft/plugins"
mkdir -p "$stage/elsewhere"
for so in $installed $built; do
  if [ ! -f "$so" ]; then note_fail "$so (not built)"; continue; fi
  out=$(cd "$stage/elsewhere" && env -u PEFT_FIXTURES "$peft" plugin-check "$so" 2>&1); rc=$?
  echo "$out" | tail -n 1 | sed "s|^|$(basename "$so"): |"
  if [ $rc -ne 0 ]; then echo "$out" | grep '^FAIL'; note_fail "plugin-check $(basename "$so")"; fi
done

# 3. LoKr by name: PEFT_PLUGIN_PATH, trained, saved, reloaded by `peft forward --adapter`
lokr_dir="$stage/src/lokr"
if [ -f "$lokr_dir/lokr.so" ]; then
  run="$stage/lokr-run"
  mkdir -p "$run"
  export PEFT_PLUGIN_PATH="$lokr_dir"
  printf '{"peft_type": "LOKR", "r": 4, "alpha": 4, "target_modules": ["c_attn", "c_fc"]}\n' > "$run/config.json"
  printf '{"input_ids": [[1, 2, 3, 4, 5, 6, 7, 8]], "labels": [[1, 2, 3, 4, 5, 6, 7, 8]]}\n' > "$run/in.json"
  awk 'BEGIN { for (i = 0; i < 400; i++) printf "%d%s", (i * 7) % 256, (i % 32 == 31) ? "\n" : " " }' > "$run/tokens.txt"
  if "$peft" init-model --out "$run/model" --layers 2 --embd 32 --heads 4 --vocab 256 --positions 64 >/dev/null &&
     "$peft" train --model "$run/model" --data "$run/tokens.txt" --config "$run/config.json" \
        --steps 5 --batch 2 --seq 16 --eval-every 5 --output "$run/adapter" >/dev/null 2>&1 &&
     grep -q '"LOKR"' "$run/adapter/adapter_config.json" &&
     "$peft" forward --model "$run/model" --adapter "$run/adapter" --input "$run/in.json" \
        --output "$run/out.safetensors" >/dev/null 2>&1 &&
     "$peft" forward --model "$run/model" --adapter "$run/adapter" --input "$run/in.json" \
        --output "$run/merged.safetensors" --merge >/dev/null 2>&1; then
    echo "lokr.so by name: trained, saved, reloaded by peft forward --adapter (and --merge)"
  else
    note_fail "lokr by name (train / save / forward --adapter)"
  fi
  # 4. LoKr by name from a YAML experiment (peft run) on the embedded default model
  root=$src
  cat > "$run/lokr.yaml" <<YAML
name: lokr-yaml
base_model: $root/examples/base-model
task: causal_lm
metric: exact_match
output_dir: $run/runs
data: {train: $root/examples/data/mirror-train.jsonl, eval: $root/examples/data/mirror-eval.jsonl,
       max_length: 32, eval_examples: 20}
training: {steps: 4, batch_size: 8, eval_steps: 4}
experiments:
  - name: lokr
    adapters:
      - {method: lokr, r: 4, alpha: 4, target_modules: [q_proj, v_proj]}
YAML
  if "$peft" run "$run/lokr.yaml" >/dev/null 2>&1 && [ -f "$run/runs/lokr/adapter/adapter_model.safetensors" ]; then
    echo "lokr.so by name from a YAML experiment: peft run trained and saved it"
  else
    note_fail "lokr by name from a YAML experiment (peft run)"
  fi
  unset PEFT_PLUGIN_PATH
fi

# 5. applications: a C and a C++ program built out of tree against the installed headers with
# pkg-config alone, run on a fixture model (LoRA added, forward and backward)
cp -r sdk/apps "$stage/src/apps"
if make -s -C "$stage/src/apps"; then
  for prog in hello hello_cpp; do
    if out=$(LD_LIBRARY_PATH="$stage/root$prefix/lib" PEFT_PLUGIN_PATH="$stage/root$prefix/lib/libpeft/plugins" \
             "$stage/src/apps/$prog" "${PEFT_FIXTURES:-tests/fixtures}/hf-peft/_models/gpt2" 2>&1); then
      echo "$out" | tail -n 1
    else
      echo "$out"; note_fail "run sdk/apps/$prog"
    fi
  done
else
  note_fail "build sdk/apps (C and C++ against the installed headers)"
fi

if [ $fail -ne 0 ]; then echo "sdk-check: $fail failed:$failed"; exit 1; fi
echo "sdk-check: passed"
