#!/usr/bin/env bash
# The quickstart: bash scripts/quickstart.sh
#
# Builds .venv in the repo if it is missing (python3 -m venv), installs tracker into it
# (pip install -e .) together with nbclient and ipykernel, the least that runs a notebook
# headlessly (`jupyter execute`), then runs notebooks/quickstart.ipynb and prints the run that
# tracker recorded. The run goes to your default catalog: ~/.tracker/catalog.duckdb, or
# $TRACKER_CATALOG if you set it. The notebook writes notebooks/outputs/.
# Network: PyPI (pip) only, and only on the first run or after pyproject.toml changes.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3}"

say() { echo "quickstart.sh: $*" >&2; }

make_venv() {
    say "creating $venv with $("$python" --version 2>&1)"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        say "python3 -m venv failed; on Debian/Ubuntu: apt-get install python3-venv"
        exit 1
    fi
    # PEP 660 editable installs need pip >= 21.3; older distributions ship older pips.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
}

install_package() {
    # A no-op `pip install` still costs seconds: skip it while pyproject.toml is unchanged.
    # scripts/test.sh installs a superset (the test extras), so its stamp counts too.
    local want
    want="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)"
    for stamp in "$venv/.quickstart.sha256" "$venv/.pyproject.sha256"; do
        [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
    done
    say "installing tracker, nbclient and ipykernel into $venv (pip install -e .)"
    # setuptools' notes about editable installs are noise: pip's output shows only on failure.
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo" \
            nbclient ipykernel >"$log" 2>&1; then
        cat "$log" >&2
        exit 1
    fi
    echo "$want" >"$venv/.quickstart.sha256"
}

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

[ -x "$venv/bin/python" ] || make_venv
install_package

say "running notebooks/quickstart.ipynb (jupyter execute; the kernel works in notebooks/)"
started=$(date +%s)
if ! "$venv/bin/jupyter" execute "$repo/notebooks/quickstart.ipynb" >"$log" 2>&1; then
    cat "$log" >&2
    say "the notebook failed (its run is recorded as failed)"
    exit 1
fi
# jupyter_client's notice about TCP transport is noise here: the kernel is local.
grep -v "running over TCP without encryption" "$log" >&2 || true
say "notebook done in $(( $(date +%s) - started )) s; the run tracker recorded:"
echo
run_id="$("$venv/bin/tracker" runs --where "notebook_name = 'quickstart'" --limit 1 --columns id \
    --format csv | tail -n 1)"
"$venv/bin/tracker" show "$run_id"
echo
echo "The run is in the catalog ${TRACKER_CATALOG:-$HOME/.tracker/catalog.duckdb}."
echo "The tracker command is in $venv/bin: run '$venv/bin/tracker runs', or"
echo "'source $venv/bin/activate' first to type just 'tracker runs'."
