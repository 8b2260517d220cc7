#!/usr/bin/env bash
# Builds the fuzz targets and runs each in turn (see fuzz/README.md).
#
#   fuzz/run.sh                  short run: 20,000 executions per target (CI)
#   fuzz/run.sh --short N        N executions per target
#   fuzz/run.sh --long [N]       N executions per target, default 1,000,000
#   fuzz/run.sh --replay         only the corpora and regression inputs, once each
#   ... --no-build               use the binary built last
#   ... [TARGET...]              only these targets
#
# Every run first replays the target's seed corpus (fuzz/corpus/TARGET) and regression inputs
# (fuzz/regressions/TARGET). Inputs the fuzzer finds go to fuzz/work/TARGET (not committed), a
# crashing input to fuzz/artifacts/TARGET/. The script exits non-zero when any target crashes
# (panic, abort, heap over 256 MiB, RSS over 512 MiB, one input running over 10 s).
#
# Needs cargo-fuzz (cargo install cargo-fuzz --locked) and a C++ compiler; the stable toolchain is
# enough: RUSTC_BOOTSTRAP=1 lets it take the instrumentation flags.
set -euo pipefail
fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz")"
cd "$root"

runs=20000
mode=short
build=yes
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --short) mode=short; runs="${2:?--short needs a count}"; shift ;;
    --long)
      mode=long; runs=1000000
      if [[ "${2:-}" =~ ^[0-9]+$ ]]; then runs="$2"; shift; fi ;;
    --replay) mode=replay; runs=0 ;;
    --no-build) build=no ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done

all=(data_jsonl data_conll data_tsv data_csv data_jointbert run_config run_weights hf_weights
  onnx_model merged_meta line_reader)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

command -v cargo-fuzz >/dev/null 2>&1 || {
  echo "fuzz/run.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 1; }

# The instrumented build has its own target dir (fuzz/target), whatever CARGO_TARGET_DIR says.
unset CARGO_TARGET_DIR
export RUSTC_BOOTSTRAP=1
triple="$(rustc -vV | sed -n 's/^host: //p')"
if [ "$build" = yes ]; then
  echo "== building the fuzz targets (release, debug assertions, no sanitizer)" >&2
  # Only the instrumented binary: the smoke runner (src/bin) is built without libFuzzer.
  cargo fuzz build --sanitizer none --target "$triple" parsers >&2
fi
bin="$fuzz/target/$triple/release/parsers"

dict_of() {
  case "$1" in
    data_tsv|data_csv) echo data_delimited ;;
    run_weights|hf_weights) echo safetensors ;;
    onnx_model|merged_meta) echo onnx ;;
    *) echo "$1" ;;
  esac
}

max_len_of() {
  case "$1" in
    run_weights|hf_weights|onnx_model|merged_meta) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

mkdir -p "$fuzz/work/logs"
failed=()
summary="$fuzz/work/summary.txt"
printf '%-15s %12s %10s %14s %8s  %s\n' target executions "peak RSS" "peak heap" seconds result \
  | tee "$summary"
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz/run.sh: no target $t (targets: ${all[*]})" >&2; exit 2; }
  work="$fuzz/work/$t"
  mkdir -p "$work" "$fuzz/artifacts/$t"
  dirs=("$fuzz/corpus/$t")
  [ -d "$fuzz/regressions/$t" ] && dirs+=("$fuzz/regressions/$t")
  [ "$mode" = replay ] || dirs=("$work" "${dirs[@]}")
  # One process, in turn (no -jobs: libFuzzer would fork workers that log elsewhere).
  flags=(-runs="$runs" -seed=1 -timeout=10 -rss_limit_mb=512
    -malloc_limit_mb=256 -max_len="$(max_len_of "$t")" -print_final_stats=1
    -artifact_prefix="$fuzz/artifacts/$t/")
  d="$fuzz/dict/$(dict_of "$t").dict"
  [ -f "$d" ] && flags+=(-dict="$d")
  # The long run draws its own seed; short runs and replays repeat.
  [ "$mode" = long ] && flags=("${flags[@]/-seed=1/-seed=0}")
  log="$fuzz/work/logs/$t.log"
  start=$EPOCHREALTIME
  if EDGETUNE_FUZZ_TARGET="$t" "$bin" "${flags[@]}" "${dirs[@]}" >"$log" 2>&1; then result=ok; else result=CRASH; fi
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  heap=$(sed -n 's/^==edgetune-fuzz== heap: peak \([0-9]*\) bytes.*/\1/p' "$log" | tail -1)
  printf '%-15s %12s %8s MB %10s KiB %8s  %s\n' "$t" "${execs:-?}" "${rss:-?}" \
    "$(( ${heap:-0} / 1024 ))" "$secs" "$result" | tee -a "$summary"
  if [ "$result" != ok ]; then
    failed+=("$t")
    grep -E "panicked|ERROR|SUMMARY|heap limit|Test unit written|==edgetune-fuzz==" "$log" | head -20 >&2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/run.sh: crashes in ${failed[*]} (logs in fuzz/work/logs, inputs in fuzz/artifacts)" >&2
  exit 1
fi
echo "fuzz/run.sh: ${#targets[@]} targets, no crash" >&2
