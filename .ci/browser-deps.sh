#!/usr/bin/env bash
# Installs what the browser test (tests/browser) needs on a fresh Debian machine: the distribution's
# `chromium` (Playwright drives it; Playwright's own browser download is never used) and the pinned
# npm packages from tests/browser/package-lock.json. Quick and silent when both are in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHROMIUM="${PARLEY_CHROMIUM:-/usr/bin/chromium}"
# Chromium, plus fonts so the screenshots show every character (emoji in bot replies, too).
missing=()
[[ -x "$CHROMIUM" ]] || missing+=(chromium)
for font in fonts-dejavu-core fonts-noto-color-emoji; do
    dpkg-query -W -f='${Status}' "$font" 2>/dev/null | grep -q "ok installed" || missing+=("$font")
done
if (( ${#missing[@]} )); then
    command -v apt-get >/dev/null || { echo "browser-deps: ${missing[*]} missing and apt-get is not available" >&2; exit 1; }
    if [[ "$(id -u)" -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null; then
        as_root=(sudo -n)
    else
        echo "browser-deps: installing ${missing[*]} needs root or sudo" >&2
        exit 1
    fi
    echo "browser-deps: installing Debian's ${missing[*]}"
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [[ -x "$CHROMIUM" ]] || { echo "browser-deps: chromium was installed, but $CHROMIUM is still missing" >&2; exit 1; }
fi

command -v npm >/dev/null || { echo "browser-deps: npm is required (Debian package nodejs/npm)" >&2; exit 1; }
# npm ci only when the lockfile changed since the last install (npm records it in node_modules).
lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.package-lock.json
if [[ ! -f "$stamp" || "$lock" -nt "$stamp" ]]; then
    echo "browser-deps: npm ci in tests/browser"
    # Playwright must not fetch browsers of its own: Debian's chromium is the one driven.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
