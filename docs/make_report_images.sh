#!/usr/bin/env bash
# Refreshes docs/img/report-compile.png and docs/img/report-verify.png (the
# README shows them): the HTML reports of kjv-byte compressed with int4-gptq,
# rendered in headless Chromium, exactly as CTest report_html_renders does.
#   docs/make_report_images.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
mkdir -p "$root/docs/img"
"$root/tests/tools/test_report_html.sh" "$build/tools/slimpack" "$build/tests/slimpack_png_stats" \
  "$(command -v chromium)" "$root" "$root/docs/img"
