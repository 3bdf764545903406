#!/bin/sh
# run-tests.sh — run each Check suite binary, print its summary, and a total line at the end.
# With VALGRIND=1 each suite runs under valgrind (leaks and errors fail the suite).
pass=0; fail=0; failed=""
for t in "$@"; do
  echo "== $(basename "$t")"
  if [ -n "$VALGRIND" ]; then
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$t"
  else
    "$t"
  fi
  if [ $? -eq 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); failed="$failed $(basename "$t")"; fi
done
echo "suites: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed suites:$failed"; exit 1; }
