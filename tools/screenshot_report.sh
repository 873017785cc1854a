#!/usr/bin/env bash
# Screenshot an srbench HTML report with headless Chromium, for humans (and PR descriptions).
#
#   tools/screenshot_report.sh reports/index.html out.png [WIDTHxHEIGHT]
#
# Default size 1400x4000 (the page is cropped at that height). Needs Debian's `chromium` package
# (apt-get install -y chromium) or set $CHROMIUM to another Chromium/Chrome binary.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2
  exit 2
fi
report="$1"
out="$2"
size="${3:-1400x4000}"
browser="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
if [[ -z "$browser" ]]; then
  echo "error: no Chromium found; install it (apt-get install -y chromium) or set \$CHROMIUM" >&2
  exit 2
fi
if [[ ! -f "$report" ]]; then
  echo "error: $report: no such file (make it with \`srbench report\`)" >&2
  exit 2
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
  --user-data-dir="$profile" --window-size="${size/x/,}" --virtual-time-budget=5000 \
  --screenshot="$out_abs" "$url" >/dev/null 2>&1
if [[ ! -s "$out_abs" ]]; then
  echo "error: Chromium wrote no screenshot to $out_abs" >&2
  exit 1
fi
echo "wrote $out_abs"
