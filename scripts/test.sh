#!/usr/bin/env bash
# The test command: bash scripts/test.sh [pytest args...]
#
# Builds .venv in the repo if it is missing (python3 -m venv), installs the package with its
# test extras into it, installs Debian's chromium if it is missing, we are root and the selected
# tests include browser tests (tests/e2e/), then runs pytest with the arguments given and exits
# with pytest's exit code.
# Network: PyPI (pip) and Debian's mirrors (apt-get) only.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3}"
chromium=/usr/bin/chromium

say() { echo "test.sh: $*" >&2; }

is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
    say "installing Debian packages: $* (apt-get update, then apt-get install)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "$@" >/dev/null
}

make_venv() {
    say "creating $venv with $("$python" --version 2>&1)"
    # Debian splits venv/ensurepip into python3-venv; without it `python3 -m venv` fails.
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        is_root || { say "python3 -m venv failed; install python3-venv"; exit 1; }
        apt_install python3-venv
        "$python" -m venv "$venv"
    fi
    # PEP 660 editable installs need pip >= 21.3; older distributions ship older pips.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
}

install_package() {
    # A no-op `pip install` still costs 5-15 s: skip it while pyproject.toml is unchanged (the
    # editable install picks up source changes by itself).
    local stamp="$venv/.pyproject.sha256" want
    want="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)"
    [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
    say "installing tracker and its test dependencies into $venv (pip install -e '.[test]')"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo[test]"
    echo "$want" >"$stamp"
}

browser_tests_selected() {
    # Asks pytest which tests the arguments select (a few seconds, and only when chromium is
    # missing: cheaper than apt-get). Collected into a variable first: under pipefail, grep -q
    # leaving early would fail the pipeline. A collection error selects none: pytest says why.
    local selected
    selected="$(cd "$repo" && "$venv/bin/python" -m pytest --collect-only -q \
        -p no:cacheprovider "$@" 2>/dev/null || true)"
    grep -q '^tests/e2e/' <<<"$selected"
}

ensure_chromium() {
    [ -x "$chromium" ] && return 0
    if ! browser_tests_selected "$@"; then
        say "no browser test selected: chromium is not needed"
        return 0
    fi
    if is_root && command -v apt-get >/dev/null; then
        apt_install chromium
        return 0
    fi
    say "$chromium is missing and cannot be installed here (needs root and apt-get):" \
        "the browser tests will be skipped (or fail when CI=true)"
}

main() {
    [ -x "$venv/bin/python" ] || make_venv
    install_package
    ensure_chromium "$@"
    cd "$repo"
    exec "$venv/bin/python" -m pytest "$@"
}

# Sourced (tests/test_scripts.py), it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
