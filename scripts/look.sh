#!/usr/bin/env bash
# Renders an SVG (a --report's curves, a --emit=dot picture) to PNG in
# headless Chromium, as a browser shows it: scripts/look.sh IN.svg OUT.png
# [WIDTHxHEIGHT]. Installs Debian's chromium on first use (not needed by
# the build or the tests).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: scripts/look.sh IN.svg OUT.png [WIDTHxHEIGHT]" >&2
  exit 2
fi
in=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-}
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi
if [ -z "$size" ]; then
  # The SVG's own width and height.
  w=$(grep -o 'width="[0-9]*"' "$in" | head -1 | tr -dc 0-9)
  h=$(grep -o 'height="[0-9]*"' "$in" | head -1 | tr -dc 0-9)
  size="${w:-800}x${h:-600}"
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$profile" --window-size="${size/x/,}" \
  --screenshot="$out" "file://$in" 2>/dev/null
echo "look: $out ($size)"
