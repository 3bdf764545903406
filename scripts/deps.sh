#!/bin/sh
# deps.sh — install the Debian packages libpeft builds against, only those that are missing.
# Usage: scripts/deps.sh PKG...   (root, or sudo when available)
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "deps: apt-get update failed" >&2; exit 1; }
$SUDO apt-get install -y -qq $missing || { echo "deps: apt-get install$missing failed" >&2; exit 1; }
