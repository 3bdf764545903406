#!/bin/sh
# run-tests.sh — runs Check suite binaries and prints a total line at the end.
#   run-tests.sh SUITE...                 each suite in turn (VALGRIND=1: under valgrind, leaks and
#                                         errors fail the suite)
#   run-tests.sh --one SUITE [NAME]       one suite; its output, its wall and CPU time (user + sys,
#                                         its processes included), then "rc=N" as the last line
#   run-tests.sh --summary LOGDIR SUITE...  what `make check` wrote in LOGDIR: the static checks'
#                                         reports (lint-*.txt), then the suites' logs (one per
#                                         suite, run in parallel) in suite order, then the total
#                                         and the suites that took longest
# The summary is one awk program over every log and --one starts as few processes as it can:
# `make check` waits for the summary before it ends, and the edit-test loop runs --one ~60
# times (each process a shell starts costs ~1 ms of CPU; the old summary started ~1000).
one() {
  if [ -n "${VALGRIND:-}" ]; then
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$1"
  else
    "$1"
  fi
}
if [ "$1" = "--one" ]; then # --one SUITE [NAME]: NAME labels its time line (default: SUITE's)
  # /proc/uptime: the wall clock to 10 ms without starting `date`. `times`, second line: the
  # children's user and sys time ("0m1.230000s 0m0.100000s"), written by this shell to a file
  # (in a pipe or $(...), a subshell would report its own)
  read -r t0 _ < /proc/uptime
  one "$2"; rc=$?
  read -r t1 _ < /proc/uptime
  tf=${TMPDIR:-/tmp}/run-tests.$$.times
  times > "$tf"
  { read -r _ _; read -r u s; } < "$tf"
  rm -f "$tf"
  awk -v n="${3:-${2##*/}}" -v t0="$t0" -v t1="$t1" -v u="${u%s}" -v s="${s%s}" 'BEGIN {
    split(u, a, "m"); split(s, b, "m")
    printf "time: %s %.2f s wall, %.2f s CPU (%.2f-%.2f)\n", n, t1 - t0, a[1] * 60 + a[2] + b[1] * 60 + b[2], t0, t1 }'
  echo "rc=$rc"; exit $rc
fi
if [ "$1" = "--summary" ]; then
  logs=$2; shift 2
  # one argument per suite: NAME, then its logs (NAME.log, and NAME@part2.log when the suite ran
  # as two processes: Makefile, PART2_SUITES), separated by tabs
  tab=$(printf '\t')
  list=
  for t in "$@"; do
    name=${t##*/}
    entry=$name
    for log in "$logs/$name.log" "$logs/$name"@*.log; do
      [ -f "$log" ] && entry="$entry$tab$log"
    done
    list="$list$entry
"
  done
  printf '%s' "$list" | awk -F '\t' -v lintglob="$logs/lint-" '
    function slurp(f,   line, r) { # prints f but its rc= and time: lines; returns its rc
      r = ""
      while ((getline line < f) > 0) {
        if (line ~ /^rc=/) { r = substr(line, 4); continue }
        if (line ~ /^time: /) {
          split(line, w, " "); wall[w[2]] = w[3]; cpu[w[2]] = w[6]; tcpu += w[6]; twall += w[3]
          continue
        }
        if (match(line, /Checks: [0-9]+/)) lastn = substr(line, RSTART + 8, RLENGTH - 8) + 0
        if (match(line, /Failures: [0-9]+, Errors: [0-9]+/)) {
          split(substr(line, RSTART, RLENGTH), x, /[^0-9]+/); lastf = x[2] + x[3]
        }
        print line
      }
      close(f)
      return r == "" ? 1 : r + 0
    }
    BEGIN { # the static checks first (cppcheck, layers, exports): a report each, ending in rc=N
      for (i = 0; i < 3; i++) {
        f = lintglob (i == 0 ? "cppcheck" : i == 1 ? "layers" : "exports") ".txt"
        if ((getline line < f) < 0) continue
        close(f)
        if (slurp(f) != 0) { lintfail = lintfail " " (i == 0 ? "cppcheck" : i == 1 ? "layers" : "exports") }
      }
    }
    {
      print "== " $1
      rc = 0
      for (i = 2; i <= NF; i++) {
        lastn = 0; lastf = 0
        if (slurp($i) != 0) rc = 1
        checks += lastn; cfail += lastf
      }
      if (NF < 2) { print "(no log: the suite did not run)"; rc = 1 }
      if (rc == 0) pass++; else { fail++; failed = failed " " $1 }
    }
    END {
      printf "suites: %d passed, %d failed\n", pass, fail
      if (checks > 0) printf "checks: %d passed, %d failed\n", checks - cfail, cfail
      if (twall) { # the longest suites (wall), and the CPU time of all
        printf "suite time: %.1f s CPU, %.1f s wall if run one after another; longest:", tcpu, twall
        for (n = 0; n < 5; n++) {
          m = ""; for (k in wall) if (m == "" || wall[k] + 0 > wall[m] + 0) m = k
          if (m == "") break
          printf " %s %.1f s (%.1f s CPU)", m, wall[m], cpu[m]; delete wall[m]
        }
        printf "\n"
      }
      if (fail) print "failed suites:" failed
      if (lintfail != "") print "failed static checks:" lintfail
      exit (fail || lintfail != "") ? 1 : 0
    }'
  exit $?
fi
pass=0; fail=0; failed=""
for t in "$@"; do
  echo "== $(basename "$t")"
  one "$t"
  if [ $? -eq 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); failed="$failed $(basename "$t")"; fi
done
echo "suites: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed suites:$failed"; exit 1; }
