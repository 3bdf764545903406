#!/bin/sh
# run-tests.sh — runs Check suite binaries and prints a total line at the end.
#   run-tests.sh SUITE...                 each suite in turn (VALGRIND=1: under valgrind, leaks and
#                                         errors fail the suite)
#   run-tests.sh --one SUITE              one suite; its output, then "rc=N" as the last line
#   run-tests.sh --summary LOGDIR SUITE...  the logs that `make check` wrote (one per suite, run in
#                                         parallel) in suite order, then the total
one() {
  if [ -n "${VALGRIND:-}" ]; then
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$1"
  else
    "$1"
  fi
}
if [ "$1" = "--one" ]; then
  one "$2"; rc=$?; echo "rc=$rc"; exit $rc
fi
pass=0; fail=0; failed=""; checks=0; cfail=0
if [ "$1" = "--summary" ]; then
  logs=$2; shift 2
  for t in "$@"; do
    name=$(basename "$t"); log="$logs/$name.log"
    echo "== $name"
    if [ -f "$log" ]; then grep -v '^rc=' "$log"; rc=$(sed -n 's/^rc=//p' "$log" | tail -n 1); else echo "(no log: the suite did not run)"; rc=1; fi
    [ -n "$rc" ] || rc=1
    # Check's own line: "100%: Checks: 12, Failures: 0, Errors: 0"
    n=$(sed -n 's/.*Checks: \([0-9]*\).*/\1/p' "$log" 2>/dev/null | tail -n 1)
    f=$(sed -n 's/.*Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2/p' "$log" 2>/dev/null | tail -n 1)
    checks=$((checks + ${n:-0}))
    for x in $f; do cfail=$((cfail + x)); done
    if [ "$rc" -eq 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); failed="$failed $name"; fi
  done
else
  for t in "$@"; do
    echo "== $(basename "$t")"
    one "$t"
    if [ $? -eq 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); failed="$failed $(basename "$t")"; fi
  done
fi
echo "suites: $pass passed, $fail failed"
[ "$checks" -gt 0 ] && echo "checks: $((checks - cfail)) passed, $cfail failed"
[ $fail -eq 0 ] || { echo "failed suites:$failed"; exit 1; }
