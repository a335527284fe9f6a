#!/usr/bin/env bash
# Installs whatever the build and the tests need and is not there yet, on Debian or Ubuntu.
#
#   scripts/deps.sh PACKAGE...      (the Makefile passes APT_PACKAGES)
#
# An entry `COMMAND=PACKAGE` installs PACKAGE only when COMMAND is not on PATH: node and npm may
# come from another source (e.g. NodeSource's nodejs, which bundles npm and conflicts with
# Debian's npm package), and any working one will do.
#
# RUST_COMPONENTS (default "rustfmt clippy") names the rustup components to ensure.
# Prints nothing when everything is present, so `make test` can call it on every run.
set -euo pipefail

cd "$(dirname "$0")/.."

# ---- apt packages -------------------------------------------------------------------------
if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for pkg in "$@"; do
        if [[ $pkg == *=* ]]; then
            command -v "${pkg%%=*}" >/dev/null 2>&1 || missing+=("${pkg#*=}")
            continue
        fi
        # "install ok installed" (or "hold ok installed") is the only state that counts:
        # "deinstall ok config-files" means the package was removed.
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ $status == *" ok installed" ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} > 0)); then
        if [[ $(id -u) -eq 0 ]]; then
            sudo=""
        elif command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "deps: missing apt packages: ${missing[*]}" >&2
            echo "deps: not root and no sudo; install them as root and run again" >&2
            exit 1
        fi
        echo "deps: installing ${missing[*]}"
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
elif (($# > 0)); then
    echo "deps: no dpkg-query (not Debian/Ubuntu); make sure these are installed: $*" >&2
fi

# ---- Rust toolchain -----------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
components=${RUST_COMPONENTS-rustfmt clippy}

if ! command -v cargo >/dev/null 2>&1 && ! command -v rustup >/dev/null 2>&1; then
    # Debian's packaged rustc is older than the workspace's rust-version, so use rustup.
    echo "deps: installing the Rust toolchain with rustup into $HOME/.cargo"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --quiet --no-modify-path --profile minimal
fi

if command -v rustup >/dev/null 2>&1; then
    need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)
    have=$(rustc --version 2>/dev/null | awk '{print $2}')
    if [[ -n $need ]] && { [[ -z $have ]] ||
        [[ $(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1) != "$need" ]]; }; then
        if [[ -z $have ]]; then
            echo "deps: no default Rust toolchain; installing stable"
            rustup default stable
        else
            echo "deps: rustc $have is older than the required $need; running rustup update"
            rustup update --no-self-update
        fi
    fi
    installed=$(rustup component list --installed 2>/dev/null || true)
    for component in $components; do
        if ! grep -q "^$component-" <<<"$installed"; then
            echo "deps: adding rustup component $component"
            rustup component add "$component"
        fi
    done
else
    echo "deps: cargo found but no rustup; make sure $components are installed" >&2
fi
