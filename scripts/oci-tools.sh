#!/usr/bin/env bash
# Installs the OCI tools the artifact tests use, from Debian's packages:
#   skopeo           inspects and copies OCI image layouts and registry images
#   docker-registry  the CNCF distribution registry, started on loopback by the test
# Usage: bash scripts/oci-tools.sh [TOOL...]   (default: both). Exits non-zero
# if a tool is still missing afterwards.
set -euo pipefail
tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(skopeo docker-registry)
need=()
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null 2>&1 || need+=("$t")
done
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "oci-tools: cannot install ${need[*]}: no apt-get on this machine" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "oci-tools: cannot install ${need[*]}: not root and no passwordless sudo" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "oci-tools: installing ${need[*]}" >&2
if ! $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
  $sudo apt-get update -qq >/dev/null 2>&1 || true
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || true
fi
missing=()
for t in "${need[@]}"; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if [ ${#missing[@]} -ne 0 ]; then
  echo "oci-tools: ${missing[*]} could not be installed" >&2
  exit 1
fi
