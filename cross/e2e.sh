#!/usr/bin/env bash
# Emulated end-to-end test: the same pipeline on x86_64 (natively) and on aarch64 (under qemu as a
# Cortex-A72, see cross/qemu-run.sh), then a comparison of what the two produced.
#
# Stages, on both architectures (EDGETUNE_CACHE is per architecture, so the aarch64 run computes its
# own backbone features with the aarch64 ONNX Runtime):
#   ortcheck  cross/ortcheck loads ONNX Runtime and runs the backbone on a fixed input   (optional)
#   version   edgetune --version
#   train     edgetune --threads 1 train --data DATA --out RUN --seed S --epochs E
#   eval      edgetune --threads 1 eval --run RUN --data DATA --split test --json
#   infer     edgetune --threads 1 infer --run RUN --logits INPUTS        (test-set sentences)
#   export    edgetune export --run RUN --out merged.onnx; infer --model merged.onnx --logits INPUTS
#   xinfer    the aarch64 binary on the *x86_64* run and merged model (trained on a PC, used on a board)
#   serial    the aarch64 `serve` on the x86_64 run, answering over a pseudo-terminal pair
#             (cross/serial_check.py; the whole demo data only, --limit 0, its actions.toml)
# Comparisons (cross/compare.py): same strings, labels and integers; floats within --tol (1e-3):
#   x86_64 vs aarch64 for ortcheck, eval, infer, xinfer and merged-model infer;
#   on each architecture, infer --model merged.onnx vs infer --run (the export is faithful).
# The aarch64 pipeline runs in the background while the x86_64 one (fast) and then the aarch64
# xinfer stage run in the foreground, so both cores are used.
#
# Usage: cross/e2e.sh [options]
#   --host-bin PATH   x86_64 edgetune (default: cargo build --release, target/release/edgetune; any
#                     profile gives the same numbers, e.g. target/debug/edgetune after cargo test)
#   --arm-bin PATH    aarch64 edgetune (default: cross/build.sh, the dist profile)
#   --no-build        use the default paths without building (fail if missing)
#   --no-ortcheck     skip the ortcheck stage (saves building cross/ortcheck twice)
#   --data DIR        dataset (default data/demo)          --epochs N   (default 3)
#   --seed N          (default 7)                          --tol X      float tolerance (default 1e-3)
#   --inputs N        test sentences to infer (default 20)
#   --limit N         use only the first N examples of train (and N/3, at least 20, of valid and
#                     test); 0 = the whole dataset. Default 120: under qemu the int8 backbone takes
#                     about 1.7 CPU-seconds per sentence, so the demo's 700 would take ~20 minutes
#   --work DIR        working folder (default: a new temp folder; kept on failure, else removed)
#   --keep            keep the working folder
#   --allow-missing   a subcommand this build lacks is skipped instead of failed
#   --no-arm-export   skip export + infer --model on aarch64 (over 10 min under qemu); the x86_64
#                     merged model is still run on aarch64 and compared
#   --cross-only      no pipeline on aarch64: only the aarch64 binary running the x86_64 run and
#                     merged model (what a board does with a model trained on a PC)
#   --agreement A     compare x86_64 and aarch64 answers by labels, not floats (cross/agree.py): at
#                     least fraction A identical labels and intent accuracy / slot F1 against the
#                     test split within 1 point. For the int8 backbone, whose dynamic quantization
#                     uses other kernels on aarch64. --inputs 0 infers the whole test split
# Prints one line per check and closes with "e2e: N passed, N failed, N skipped"; exit status 0 only
# when nothing failed.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

host_bin="" arm_bin="" build=1 ortcheck=1 data="data/demo" epochs=3 seed=7 tol=1e-3 ninputs=20
work="" keep=0 allow_missing=0 limit=120 arm_export=1 cross_only=0 agreement=""
while [ $# -gt 0 ]; do
  case "$1" in
    --host-bin) host_bin="$2"; shift 2 ;;
    --arm-bin) arm_bin="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --no-ortcheck) ortcheck=0; shift ;;
    --data) data="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --tol) tol="$2"; shift 2 ;;
    --inputs) ninputs="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --allow-missing) allow_missing=1; shift ;;
    --no-arm-export) arm_export=0; shift ;;
    --cross-only) cross_only=1; shift ;;
    --agreement) agreement="$2"; shift 2 ;;
    -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
    *) echo "cross/e2e.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

target=aarch64-unknown-linux-gnu
target_dir="${CARGO_TARGET_DIR:-$root/target}"
t_start=$(date +%s)

# Results go to a file, so that stages run in background subshells count too.
results="$(mktemp "${TMPDIR:-/tmp}/edgetune-e2e-results.XXXXXX")"
log() { echo "e2e: $*"; }
record() { printf '%s\t%s\n' "$1" "$2" >> "$results"; log "$1 $2"; }
pass() { record PASS "$*"; }
fail() { record FAIL "$*"; }
skip() { record SKIP "$*"; }
work_is_temp=0
finish() {
  wait
  local passed failed skipped
  passed=$(grep -c '^PASS' "$results"); failed=$(grep -c '^FAIL' "$results"); skipped=$(grep -c '^SKIP' "$results")
  if [ "$failed" -gt 0 ]; then
    log "failed checks:"
    grep '^FAIL' "$results" | cut -f2 | sed 's/^/  - /'
    [ -n "$work" ] && log "outputs and logs kept in $work"
  elif [ "$keep" = 0 ] && [ "$work_is_temp" = 1 ]; then
    rm -rf "$work"
  else
    log "outputs in $work"
  fi
  rm -f "$results"
  log "total wall time $(( $(date +%s) - t_start )) s"
  echo "e2e: $passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
  exit $?
}
die() { fail "setup: $*"; finish; }

# --- prerequisites -------------------------------------------------------------------------------
if [ -z "$work" ]; then work="$(mktemp -d "${TMPDIR:-/tmp}/edgetune-e2e.XXXXXX")"; work_is_temp=1; fi
mkdir -p "$work" || die "cannot create $work"
work="$(cd "$work" && pwd)"
[ -d "$data" ] || die "no dataset at $data"
[ -f "$data/test.jsonl" ] || die "no $data/test.jsonl"
data="$(cd "$data" && pwd)"
# The project's demo data (its labels are the ones examples/actions.toml names).
is_demo=0; [ "$data" = "$root/data/demo" ] && is_demo=1
command -v python3 >/dev/null || die "python3 not found"
for a in x86_64 aarch64; do
  [ -f ".runtime/$a/libonnxruntime.so" ] || bash models/setup.sh "$a" >&2 || die "no ONNX Runtime for $a (run cross/setup.sh)"
done
command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || die "qemu-aarch64 missing (run cross/setup.sh)"

# timed NAME CMD...: runs CMD with stdout to $work/NAME.out and stderr to $work/NAME.log; logs the
# time, and the log's tail on failure.
timed() {
  local name="$1"; shift
  local t0 rc; t0=$(date +%s.%N)
  "$@" > "$work/$name.out" 2> "$work/$name.log"
  rc=$?
  log "  $name: exit $rc in $(python3 -c "import sys;print(f'{float(sys.argv[2])-float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s"
  if [ $rc -ne 0 ]; then tail -n 15 "$work/$name.log" | sed "s|^|    $name: |"; fi
  return $rc
}

# --- binaries ------------------------------------------------------------------------------------
if [ -z "$host_bin" ]; then
  host_bin="$target_dir/release/edgetune"
  if [ "$build" = 1 ]; then
    log "building the host binary (cargo build --release)"
    cargo build --locked --release --bin edgetune >&2 || die "host build failed"
  fi
fi
if [ -z "$arm_bin" ]; then
  arm_bin="$target_dir/$target/dist/edgetune"
  if [ "$build" = 1 ]; then
    log "building the aarch64 binary (cross/build.sh)"
    args=(); [ "$ortcheck" = 1 ] && args+=(--ortcheck)
    cross/build.sh "${args[@]}" >&2 || die "aarch64 build failed"
  fi
fi
[ -x "$host_bin" ] || die "no host binary at $host_bin"
[ -f "$arm_bin" ] || die "no aarch64 binary at $arm_bin"
host_bin="$(cd "$(dirname "$host_bin")" && pwd)/$(basename "$host_bin")"
arm_bin="$(cd "$(dirname "$arm_bin")" && pwd)/$(basename "$arm_bin")"
log "host binary:    $host_bin"
log "aarch64 binary: $arm_bin (under qemu, ${EDGETUNE_QEMU_CPU:-cortex-a72})"
log "work folder:    $work"

# run_on ARCH CMD...: runs a command for one architecture, with that architecture's ONNX Runtime
# and feature cache; aarch64 commands run under cross/qemu-run.sh.
run_on() {
  local arch="$1"; shift
  local env=(EDGETUNE_ORT_LIB="$root/.runtime/$arch/libonnxruntime.so" EDGETUNE_CACHE="$work/$arch/cache"
             RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1)
  if [ "$arch" = aarch64 ]; then
    env "${env[@]}" "$root/cross/qemu-run.sh" "$@"
  else
    env "${env[@]}" "$@"
  fi
}
bin_of() { if [ "$1" = aarch64 ]; then echo "$arm_bin"; else echo "$host_bin"; fi; }

# cross_compare NAME A B: x86_64 vs aarch64 answers, by labels (--agreement) or within --tol.
cross_compare() {
  local name="$1" a="$2" b="$3"
  if [ -z "$agreement" ]; then compare "$name" "$a" "$b" --min-records "$n_in"; return; fi
  local msg
  if msg="$(python3 "$root/cross/agree.py" --gold "$data/test.jsonl" --min-agreement "$agreement" --name "$name" "$a" "$b")"; then
    pass "${msg#OK }"
  else
    fail "${msg#FAIL }"
  fi
}

compare() { # compare NAME A B [extra compare.py args]
  local name="$1" a="$2" b="$3"; shift 3
  if [ ! -s "$a" ] || [ ! -s "$b" ]; then
    fail "$name (missing output:$( [ -s "$a" ] || echo " $a")$( [ -s "$b" ] || echo " $b"))"; return
  fi
  local msg
  if msg="$(python3 "$root/cross/compare.py" --tol "$tol" --name "$name" "$@" "$a" "$b")"; then
    pass "${msg#OK }"
  else
    fail "$name"; echo "$msg" | sed 's/^/    /'
  fi
}

# Does this build have the subcommand? (asked of the host binary: both come from the same source)
has_cmd() { "$host_bin" help "$1" >/dev/null 2>&1; }
missing() { # missing STAGE SUBCOMMAND
  if [ "$allow_missing" = 1 ]; then skip "$1 (this build has no \`edgetune $2\`)"; else fail "$1 (this build has no \`edgetune $2\`)"; fi
}

# --- data ----------------------------------------------------------------------------------------
# A smaller copy of the dataset (the same examples on both architectures).
if [ "$limit" -gt 0 ]; then
  small="$work/data"; mkdir -p "$small"
  n_eval=$(( limit / 3 )); [ "$n_eval" -ge 20 ] || n_eval=20
  for f in "$data"/*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in
      train.*) head -n "$limit" "$f" > "$small/$(basename "$f")" ;;
      valid.*|test.*) head -n "$n_eval" "$f" > "$small/$(basename "$f")" ;;
      *) cp "$f" "$small/" ;;
    esac
  done
  data="$small"
  log "dataset: first $limit train / $n_eval valid / $n_eval test examples ($data)"
fi

# Test-set sentences, one per line.
python3 - "$data/test.jsonl" "$ninputs" > "$work/inputs.txt" <<'PY' || die "cannot read $data/test.jsonl"
import json, sys
n = int(sys.argv[2]) or 10**9
out = []
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.strip():
        continue
    r = json.loads(line)
    t = r.get("text") or " ".join(r.get("words") or r.get("tokens") or [])
    if t.strip():
        out.append(" ".join(t.split()))
    if len(out) >= n:
        break
if not out:
    sys.exit("no sentences")
print("\n".join(out))
PY
n_in=$(wc -l < "$work/inputs.txt")
log "$n_in inference inputs from $data/test.jsonl"
for a in x86_64 aarch64; do mkdir -p "$work/$a/cache"; done

# --- ortcheck ------------------------------------------------------------------------------------
if [ "$ortcheck" = 1 ]; then
  oc_host="$target_dir/ortcheck/release/ortcheck"
  oc_arm="$target_dir/ortcheck/$target/release/ortcheck"
  if [ "$build" = 1 ]; then
    (cd cross/ortcheck && CARGO_TARGET_DIR="$target_dir/ortcheck" cargo build --locked --release >&2) || true
  fi
  model_dir="${EDGETUNE_MODEL:-$root/.models/default}"
  model=""
  if [ -f "$model_dir" ]; then model="$model_dir"; fi
  for n in backbone.int8.onnx backbone.onnx model.onnx; do
    if [ -z "$model" ] && [ -f "$model_dir/$n" ]; then model="$model_dir/$n"; fi
  done
  if [ -x "$oc_host" ] && [ -f "$oc_arm" ] && [ -n "$model" ]; then
    timed x86_64/ortcheck run_on x86_64 "$oc_host" "$root/.runtime/x86_64/libonnxruntime.so" "$model" 1 || fail "x86_64: ortcheck"
    timed aarch64/ortcheck run_on aarch64 "$oc_arm" "$root/.runtime/aarch64/libonnxruntime.so" "$model" 1 || fail "aarch64: ortcheck"
    compare "ortcheck: backbone output x86_64 vs aarch64" "$work/x86_64/ortcheck.out" "$work/aarch64/ortcheck.out"
  else
    skip "ortcheck (missing:$( [ -x "$oc_host" ] || echo " $oc_host")$( [ -f "$oc_arm" ] || echo " $oc_arm")$( [ -n "$model" ] || echo " a model in $model_dir"))"
  fi
fi

# --- version -------------------------------------------------------------------------------------
for a in x86_64 aarch64; do
  if timed "$a/version" run_on "$a" "$(bin_of "$a")" --version; then
    pass "$a: $(cat "$work/$a/version.out")"
  else
    fail "$a: edgetune --version"
  fi
done
if cmp -s "$work/x86_64/version.out" "$work/aarch64/version.out"; then pass "same version string"; else fail "version strings differ"; fi

# --- train -> eval -> infer -> export, per architecture --------------------------------------------
# pipeline ARCH: writes $work/ARCH/{run,eval.out,infer.out,merged.onnx,infer-merged.out}.
pipeline() {
  local a="$1" b; b="$(bin_of "$1")"
  if ! has_cmd train; then missing "$a: train" train; return; fi
  log "$a: train (seed $seed, $epochs epochs, 1 thread)"
  if timed "$a/train" run_on "$a" "$b" --threads 1 train --data "$data" --out "$work/$a/run" \
       --seed "$seed" --epochs "$epochs" --quiet && [ -f "$work/$a/run/config.json" ]; then
    pass "$a: train"
  else
    fail "$a: train"; return
  fi
  if ! has_cmd eval; then
    missing "$a: eval" eval
  elif timed "$a/eval" run_on "$a" "$b" --threads 1 eval --run "$work/$a/run" --data "$data" --split test --json; then
    pass "$a: eval $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(f"{k}={d.get(k)}" for k in ("intent_accuracy","slot_f1","sentence_accuracy","examples")))' "$work/$a/eval.out" 2>&1)"
  else
    fail "$a: eval"
  fi
  if ! has_cmd infer; then
    missing "$a: infer" infer
  elif timed "$a/infer" run_on "$a" "$b" --threads 1 infer --run "$work/$a/run" --logits "$work/inputs.txt"; then
    pass "$a: infer --run ($(wc -l < "$work/$a/infer.out") lines)"
  else
    fail "$a: infer --run"
  fi
  if ! has_cmd export; then
    missing "$a: export" export; return
  fi
  if [ "$a" = aarch64 ] && [ "$arm_export" = 0 ]; then
    # Building and self-checking a merged model under emulation takes over 10 minutes here; the
    # x86_64 merged model is still run on aarch64 (the cross-inference stage below).
    skip "aarch64: export (--no-arm-export)"; return
  fi
  if timed "$a/export" run_on "$a" "$b" --threads 1 export --run "$work/$a/run" --out "$work/$a/merged.onnx" \
       && [ -s "$work/$a/merged.onnx" ]; then
    pass "$a: export ($(stat -c %s "$work/$a/merged.onnx") bytes)"
  else
    fail "$a: export"; return
  fi
  if timed "$a/infer-merged" run_on "$a" "$b" --threads 1 infer --model "$work/$a/merged.onnx" --logits "$work/inputs.txt"; then
    pass "$a: infer --model merged.onnx"
    compare "$a: infer --model merged.onnx vs --run (export is faithful)" "$work/$a/infer.out" "$work/$a/infer-merged.out"
  else
    fail "$a: infer --model merged.onnx"
  fi
}

if [ "$cross_only" = 1 ]; then
  skip "aarch64: train/eval/infer/export pipeline (--cross-only)"
  arm_pid=""
else
  pipeline aarch64 &
  arm_pid=$!
fi
pipeline x86_64

# The board running what a PC trained: the aarch64 binary on the x86_64 run and merged model
# (in parallel with the aarch64 pipeline: both cores busy).
xinfer_merged() {
  if timed aarch64/xinfer-merged run_on aarch64 "$arm_bin" --threads 1 infer --model "$work/x86_64/merged.onnx" --logits "$work/inputs.txt"; then
    cross_compare "x86_64 merged.onnx: infer on x86_64 vs on aarch64" "$work/x86_64/infer-merged.out" "$work/aarch64/xinfer-merged.out"
  else
    fail "aarch64: infer --model on the x86_64 merged.onnx"
  fi
}
if [ -f "$work/x86_64/run/config.json" ] && has_cmd infer; then
  merged_pid=""
  if [ -s "$work/x86_64/merged.onnx" ] && [ "$cross_only" = 1 ]; then
    # Nothing else runs on aarch64: both cores take one emulated inference each.
    xinfer_merged &
    merged_pid=$!
  fi
  if timed aarch64/xinfer run_on aarch64 "$arm_bin" --threads 1 infer --run "$work/x86_64/run" --logits "$work/inputs.txt"; then
    cross_compare "x86_64 run: infer on x86_64 vs on aarch64" "$work/x86_64/infer.out" "$work/aarch64/xinfer.out"
  else
    fail "aarch64: infer --run on the x86_64 run"
  fi
  if [ -n "$merged_pid" ]; then
    wait "$merged_pid"
  elif [ -s "$work/x86_64/merged.onnx" ]; then
    xinfer_merged
  fi
fi
[ -n "$arm_pid" ] && wait "$arm_pid"

# The serial path on the board: the aarch64 `serve` answering over a pseudo-terminal pair (real
# termios, split lines, bad lines, the demo's actions as a dry run, SIGTERM), on the x86_64 run.
# Its checks name the answers of a model trained on the whole demo data (--limit 0).
if [ -f "$work/x86_64/run/config.json" ] && has_cmd serve && [ "$is_demo" = 1 ] && [ "$limit" = 0 ]; then
  if timed aarch64/serial python3 "$root/cross/serial_check.py" -- \
       env EDGETUNE_ORT_LIB="$root/.runtime/aarch64/libonnxruntime.so" EDGETUNE_CACHE="$work/aarch64/cache" \
       "$root/cross/qemu-run.sh" "$arm_bin" --threads 1 serve --no-stdin --run "$work/x86_64/run" \
       --serial '{SERIAL}' --baud 115200 --dry-run-io --actions "$root/examples/actions.toml"; then
    pass "aarch64: serve over a serial pty ($(grep -c '^PASS' "$work/aarch64/serial.out") checks)"
  else
    fail "aarch64: serve over a serial pty (see $work/aarch64/serial.out)"
  fi
fi

# Trained separately on each architecture from the same seed: same predictions, numbers within tol.
if [ -f "$work/x86_64/run/config.json" ] && [ -f "$work/aarch64/run/config.json" ]; then
  if has_cmd eval; then compare "eval: x86_64 vs aarch64" "$work/x86_64/eval.out" "$work/aarch64/eval.out"; fi
  if has_cmd infer; then compare "infer --run: x86_64 vs aarch64" "$work/x86_64/infer.out" "$work/aarch64/infer.out" --min-records "$n_in"; fi
  if [ -s "$work/x86_64/merged.onnx" ] && [ -s "$work/aarch64/merged.onnx" ]; then
    compare "infer --model merged.onnx: x86_64 vs aarch64" "$work/x86_64/infer-merged.out" "$work/aarch64/infer-merged.out" --min-records "$n_in"
  fi
fi

finish
