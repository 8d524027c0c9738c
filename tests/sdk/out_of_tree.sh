#!/usr/bin/env bash
# The plugin author's path: install adonode into a fresh prefix, build the example C plugin
# out of tree against the installed SDK (CMake package and pkg-config), load it in the
# installed daemon, and see it run.
# usage: out_of_tree.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d /tmp/ado-oot-XXXXXX)
node_pid=""
cleanup() { [ -n "$node_pid" ] && kill -9 "$node_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
keep_log() { cat "$work/log" 2>/dev/null; }
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$work/prefix" >/dev/null
[ -x "$work/prefix/bin/adonode" ] || fail "adonode not installed"
[ -f "$work/prefix/include/ado/ado.h" ] || fail "SDK headers not installed"

# 1. CMake: find_package(adonode) from a copy of the example, outside the source tree.
cp -r "$src/examples/plugins/hello_c" "$work/hello_c"
cmake -S "$work/hello_c" -B "$work/hello_c/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null || fail "configure against the installed SDK"
cmake --build "$work/hello_c/build" >/dev/null || fail "build against the installed SDK"
so="$work/hello_c/build/hello_c.so"
[ -f "$so" ] || fail "no $so"

# 2. pkg-config: the same source with a plain compiler command.
PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig" \
  cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden \
  $(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig" \
    pkg-config --cflags adonode) "$work/hello_c/hello.c" -o "$work/hello_pc.so" \
  || fail "build with pkg-config"

# 3. The installed daemon loads both.
cat > "$work/chain.yaml" <<YAML
node:
  name: oot
  data_dir: $work/data
  rpc: {listen: "off"}
plugins:
  - name: hello_cmake
    path: $so
    config: {greeting: "built out of tree", every: 50ms}
  - name: hello_pkgconfig
    path: $work/hello_pc.so
YAML
out=$("$work/prefix/bin/adonode" --check-config "$work/chain.yaml") || fail "check-config: $out"
echo "$out" | grep -q "start order: hello_cmake, hello_pkgconfig" || fail "start order: $out"
"$work/prefix/bin/adonode" --config "$work/chain.yaml" 2>"$work/log" &
node_pid=$!
for _ in $(seq 1 200); do
  grep -q "running" "$work/log" 2>/dev/null && break
  sleep 0.05
done
grep -q 'plugin=hello_cmake msg="ready: greeting=\\"built out of tree\\"' "$work/log" \
  || fail "plugin did not start: $(cat "$work/log")"
kill -TERM "$node_pid" || fail "node died: $(keep_log)"
wait "$node_pid" || fail "node exit status $?"
node_pid=""
echo "1 passed, 0 failed"
