# Installs a keybroker release on a CI runner: the archive for this OS and architecture, checked
# against the release's SHA256SUMS (and against KEYBROKER_INSTALL_SHA256 when the workflow pins it)
# before anything in it runs. Sourced by the GitHub Action (action.yml) and, byte for byte, by the
# GitLab template (ci/gitlab/keybroker.gitlab-ci.yml; test/release/action-install.test.ts checks
# they match). Sets KEYBROKER_BIN; on GitHub also adds its folder to $GITHUB_PATH.
#   KEYBROKER_INSTALL_VERSION  e.g. 0.1.0 (required)
#   KEYBROKER_INSTALL_URL      the releases' download base; <base>/v<version>/<file> (https; http
#                              only to this machine; file:// for a local mirror)
#   KEYBROKER_INSTALL_SHA256   the archive's SHA-256, when the workflow pins it itself
set -euo pipefail

keybroker_fail() {
  echo "keybroker install: $1" >&2
  exit 1
}

keybroker_target() {
  local os="${RUNNER_OS:-$(uname -s)}" arch="${RUNNER_ARCH:-$(uname -m)}"
  case "$os" in
    Linux) os=linux ;; macOS | Darwin) os=darwin ;; Windows | MINGW* | MSYS* | CYGWIN*) os=win ;;
    *) keybroker_fail "no keybroker release for the OS $os: use Linux, macOS or Windows" ;;
  esac
  case "$arch" in
    X64 | x86_64 | amd64) arch=x64 ;; ARM64 | aarch64 | arm64) arch=arm64 ;;
    *) keybroker_fail "no keybroker release for the architecture $arch: use x64 or arm64" ;;
  esac
  case "$os-$arch" in
    linux-x64 | linux-arm64 | darwin-arm64 | darwin-x64 | win-x64) echo "$os-$arch" ;;
    *) keybroker_fail "no keybroker release for $os-$arch" ;;
  esac
}

keybroker_sha256() {
  if command -v sha256sum > /dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

keybroker_download() {
  case "$1" in
    https://* | file://* | http://127.0.0.1[:/]* | http://localhost[:/]* | http://\[::1\][:/]*) ;;
    *) keybroker_fail "refusing to download over plain http from another host: $1 (use https)" ;;
  esac
  curl --fail --silent --show-error --location --proto '=https,http,file' --retry 3 --output "$2" "$1" ||
    keybroker_fail "could not download $1"
}

keybroker_install() {
  local version="${KEYBROKER_INSTALL_VERSION:-}" target archive base dir expected actual
  [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] || keybroker_fail "the version must look like 1.2.3, not '$version'"
  target="$(keybroker_target)"
  if [ "$target" = win-x64 ]; then archive="keybroker-$version-$target.zip"; else archive="keybroker-$version-$target.tar.gz"; fi
  base="${KEYBROKER_INSTALL_URL:-https://github.com/keybroker/keybroker/releases/download}"
  base="${base%/}/v$version"
  dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/keybroker-$version-$target"
  rm -rf "$dir" && mkdir -p "$dir/download" "$dir/bin"
  keybroker_download "$base/SHA256SUMS" "$dir/download/SHA256SUMS"
  keybroker_download "$base/$archive" "$dir/download/$archive"
  expected="$(awk -v file="$archive" '$2 == file || $2 == "*" file { print $1 }' "$dir/download/SHA256SUMS")"
  [ -n "$expected" ] || keybroker_fail "SHA256SUMS of v$version lists no $archive"
  actual="$(keybroker_sha256 "$dir/download/$archive")"
  [ "$actual" = "$expected" ] || keybroker_fail "$archive does not match SHA256SUMS (expected $expected, got $actual): not installed"
  if [ -n "${KEYBROKER_INSTALL_SHA256:-}" ] && [ "$actual" != "$KEYBROKER_INSTALL_SHA256" ]; then
    keybroker_fail "$archive is not the archive the workflow pinned (expected $KEYBROKER_INSTALL_SHA256, got $actual): not installed"
  fi
  if [ "$target" = win-x64 ]; then
    unzip -q -o "$dir/download/$archive" -d "$dir/bin" || keybroker_fail "cannot unpack $archive"
    KEYBROKER_BIN="$dir/bin/keybroker.exe"
  else
    tar -xzf "$dir/download/$archive" -C "$dir/bin" keybroker || keybroker_fail "cannot unpack $archive"
    KEYBROKER_BIN="$dir/bin/keybroker"
  fi
  "$KEYBROKER_BIN" --version > /dev/null || keybroker_fail "the installed $KEYBROKER_BIN does not run"
  if [ -n "${GITHUB_PATH:-}" ]; then echo "$dir/bin" >> "$GITHUB_PATH"; fi
  export KEYBROKER_BIN
  echo "keybroker install: $("$KEYBROKER_BIN" --version) ($target, sha256 $actual) at $KEYBROKER_BIN" >&2
}

keybroker_install
