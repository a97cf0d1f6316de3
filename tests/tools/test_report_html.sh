#!/usr/bin/env bash
# compile --report-html and verify --report-html, rendered in headless
# Chromium; the pages must be self-contained and not blank.
#   test_report_html.sh SLIMPACK PNG_STATS CHROMIUM SOURCE_DIR [IMG_DIR]
# With IMG_DIR the screenshots are kept there (docs/make_report_images.sh).
set -euo pipefail
slimpack="$1"
png_stats="$2"
chromium="$3"
src="$(cd "$4" && pwd)"
img="${5:-}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
model="$src/models/kjv-byte"

"$slimpack" compile "$model" -o "$tmp/kjv.slim" --preset int4-gptq --calib "$model/calib_tokens.json" \
  --calib-skip 64 --quiet --report-html "$tmp/compile.html" > /dev/null
set +e
"$slimpack" verify "$tmp/kjv.slim" --reference "$model" --data "$model/calib_tokens.json" --limit 64 \
  --max-kl 0.05 --min-top1 0.9 --target phone-arm-dotprod --quiet --report-html "$tmp/verify.html" > /dev/null
status=$?
set -e
[ "$status" -eq 0 ] || { echo "verify exit $status" >&2; exit 1; }

for page in compile verify; do
  html="$tmp/$page.html"
  # Self-contained: no scripts, no stylesheets or images from elsewhere.
  if grep -Eiq '<script|<link|<img|src=|url\(' "$html"; then echo "$page.html is not self-contained" >&2; exit 1; fi
  grep -q "<svg" "$html" || { echo "$page.html has no chart" >&2; exit 1; }
  "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1800 \
    --screenshot="$tmp/$page.png" "file://$html" > "$tmp/$page.log" 2>&1 ||
    { cat "$tmp/$page.log" >&2; exit 1; }
  read -r w h nonwhite colors < <("$png_stats" "$tmp/$page.png")
  echo "$page.html: ${w}x$h screenshot, non-white fraction $nonwhite, $colors colours"
  # A blank page is all white; a page with only text has few colours.
  awk -v f="$nonwhite" 'BEGIN {exit !(f > 0.03)}' || { echo "$page.png is nearly blank" >&2; exit 1; }
  [ "$colors" -ge 8 ] || { echo "$page.png has $colors colours: no charts drawn" >&2; exit 1; }
  [ -z "$img" ] || cp "$tmp/$page.png" "$img/report-$page.png"
done
grep -q "PASS" "$tmp/verify.html"
