#!/bin/sh
# run-tests.sh — runs Check suite binaries and prints a total line at the end.
#   run-tests.sh SUITE...                 each suite in turn (VALGRIND=1: under valgrind, leaks and
#                                         errors fail the suite)
#   run-tests.sh --one SUITE              one suite; its output, its wall and CPU time (user + sys,
#                                         its processes included), then "rc=N" as the last line
#   run-tests.sh --summary LOGDIR SUITE...  the logs that `make check` wrote (one per suite, run in
#                                         parallel) in suite order, then the total and the suites
#                                         that took longest
one() {
  if [ -n "${VALGRIND:-}" ]; then
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$1"
  else
    "$1"
  fi
}
if [ "$1" = "--one" ]; then # --one SUITE [NAME]: NAME labels its time line (default: SUITE's)
  t0=$(date +%s.%N); one "$2"; rc=$?; t1=$(date +%s.%N)
  # `times`, second line: the children's user and sys time ("0m1.230000s 0m0.100000s")
  tf=$(mktemp); times > "$tf" # (in this shell: in a pipe, a subshell would report its own)
  awk -v n="${3:-$(basename "$2")}" -v t0="$t0" -v t1="$t1" 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "time: %s %.2f s wall, %.2f s CPU (%.2f-%.2f)\n", n, t1 - t0, u[1] * 60 + u[2] + s[1] * 60 + s[2], t0, t1 }' "$tf"
  rm -f "$tf"
  echo "rc=$rc"; exit $rc
fi
pass=0; fail=0; failed=""; checks=0; cfail=0
if [ "$1" = "--summary" ]; then
  logs=$2; shift 2
  for t in "$@"; do
    name=$(basename "$t")
    echo "== $name"
    # NAME.log, and NAME@part2.log when the suite ran as two processes (Makefile: PART2_SUITES)
    rc=0; nlogs=0
    for log in "$logs/$name.log" "$logs/$name"@*.log; do
      [ -f "$log" ] || continue
      nlogs=$((nlogs + 1))
      grep -v '^rc=\|^time: ' "$log"
      r=$(sed -n 's/^rc=//p' "$log" | tail -n 1)
      [ "${r:-1}" -eq 0 ] || rc=1
      # Check's own line: "100%: Checks: 12, Failures: 0, Errors: 0"
      n=$(sed -n 's/.*Checks: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
      f=$(sed -n 's/.*Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2/p' "$log" | tail -n 1)
      checks=$((checks + ${n:-0}))
      for x in $f; do cfail=$((cfail + x)); done
    done
    [ "$nlogs" -gt 0 ] || { echo "(no log: the suite did not run)"; rc=1; }
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
if [ "${logs:-}" ]; then # the longest suites (wall), and the CPU time of all
  cat "$logs"/*.log 2>/dev/null | awk '/^time: / { w[$2] = $3; c[$2] = $6; cpu += $6; wall += $3 }
    END { if (!wall) exit; n = 0
      printf "suite time: %.1f s CPU, %.1f s wall if run one after another; longest:", cpu, wall
      while (n++ < 5) { m = ""; for (k in w) if (m == "" || w[k] > w[m]) m = k
        if (m == "") break; printf " %s %.1f s (%.1f s CPU)", m, w[m], c[m]; delete w[m] }
      printf "\n" }'
fi
[ $fail -eq 0 ] || { echo "failed suites:$failed"; exit 1; }
