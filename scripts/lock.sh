#!/usr/bin/env bash
# Write requirements-dev.lock and requirements.lock from pyproject.toml's ranges.
#
#   bash scripts/lock.sh                         # after editing pyproject.toml: keep every pin that still fits
#   bash scripts/lock.sh --upgrade               # move every package to its newest version that fits
#   bash scripts/lock.sh --upgrade-package NAME  # move one package
#
# The locks pin exact versions with the hashes of every file PyPI serves for them, for
# CPython 3.11 on Linux x86_64. requirements-dev.lock holds everything the test suite needs,
# with the build backend (setuptools) and pip itself; requirements.lock holds what a node
# needs to run kubelite, at the same versions (not the chaos tool's plotting, which runs where
# the tests run). Needs network access to PyPI.
set -euo pipefail

cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
python=${PYTHON:-python3}
tool=$(mktemp -d)
inputs=$(mktemp -d)
trap 'rm -rf "$tool" "$inputs"' EXIT

"$python" -m venv "$tool"
"$tool/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
uv=("$tool/bin/uv" pip compile --quiet --generate-hashes --python-version 3.11
    --python-platform x86_64-unknown-linux-gnu --index-url https://pypi.org/simple
    --custom-compile-command "bash scripts/lock.sh")

# The build backend named in pyproject.toml, and pip, are locked too: the install builds
# the project without isolation from these exact versions.
"$python" - >"$inputs/build.in" <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    requires = tomllib.load(f)["build-system"]["requires"]
print("\n".join([*requires, "pip"]))
PY
cp "$inputs/build.in" build-requirements.in
trap 'rm -rf "$tool" "$inputs" build-requirements.in' EXIT

"${uv[@]}" "$@" --extra dev --extra chaos -o requirements-dev.lock pyproject.toml build-requirements.in
# The runtime lock takes its versions from the dev lock, so a node runs what the tests ran.
"${uv[@]}" -c requirements-dev.lock -o requirements.lock pyproject.toml
echo "locked: $(grep -c '==' requirements-dev.lock) packages in requirements-dev.lock," \
  "$(grep -c '==' requirements.lock) in requirements.lock"
