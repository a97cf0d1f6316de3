#!/usr/bin/env bash
# The installed tree and the Debian package, as a user gets them:
#   tests/install/test_install.sh BUILD_DIR SOURCE_DIR
# 1. cmake --install into a temporary prefix; a consumer project
#    (tests/install/consumer) finds the package, links slimpack::compress,
#    runs the whole public API on kjv-byte.
# 2. cpack -G DEB; the package unpacked with dpkg -x runs slimpack --version;
#    its Depends name Debian runtime packages.
set -euo pipefail
build="$(cd "$1" && pwd)"
src="$(cd "$2" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log"
for f in bin/slimpack include/slimpack/slimpack.h lib/cmake/slimpack/slimpackConfig.cmake; do
  [ -e "$tmp/prefix/$f" ] || { echo "install: missing $f" >&2; exit 1; }
done
ls "$tmp/prefix"/lib/libslimpack_compress.so* > /dev/null
"$tmp/prefix/bin/slimpack" --version | head -2

cmake -S "$src/tests/install/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$tmp/consumer-configure.log"
cmake --build "$tmp/consumer" > "$tmp/consumer-build.log" || { cat "$tmp/consumer-build.log" >&2; exit 1; }
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/consumer/consumer" "$src/models/kjv-byte" \
  "$src/models/kjv-byte/calib_tokens.json" "$tmp"

# The package (cpack reads the build tree's CPackConfig.cmake).
(cd "$tmp" && cpack --config "$build/CPackConfig.cmake" -B "$tmp/pkg" > "$tmp/cpack.log") ||
  { cat "$tmp/cpack.log" >&2; exit 1; }
deb="$(ls "$tmp"/pkg/*.deb)"
depends="$(dpkg-deb -f "$deb" Depends)"
echo "package $(basename "$deb"): Depends: $depends"
for lib in libprotobuf libpcre2-8 libutf8proc libssl libstdc++6; do
  case "$depends" in *"$lib"*) ;; *) echo "Depends lacks $lib" >&2; exit 1 ;; esac
done
dpkg -x "$deb" "$tmp/root"
"$tmp/root/usr/bin/slimpack" --version | grep -q "^slimpack 0.1.0"
lib="$(find "$tmp/root" -name 'libslimpack_compress.so.*' -type f)"
[ -n "$lib" ] || { echo "the package has no libslimpack_compress.so" >&2; exit 1; }
if ldd "$lib" | grep "not found"; then echo "the packaged library has unresolved dependencies" >&2; exit 1; fi
echo "install, consumer project and .deb: ok"
