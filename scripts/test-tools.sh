#!/usr/bin/env bash
# Installs the outside tools the tests use, from Debian's packages, when they
# are missing (the tests never install anything: a test whose tool is missing
# fails and names this script):
#   skopeo           inspects and copies OCI image layouts and registry images
#   docker-registry  the CNCF distribution registry, started on loopback by
#                    cli/tests/artifacts_oci.rs
#   python3          runs manifests/envoy/demo-backends.py (artifacts_serve.rs)
# Usage: bash scripts/test-tools.sh   (run by scripts/test.sh before the tests).
# Exits non-zero, naming the tool, if one is still missing afterwards.
set -euo pipefail
# command name -> Debian package
declare -A pkg=([skopeo]=skopeo [docker-registry]=docker-registry [python3]=python3)
need=()
for t in skopeo docker-registry python3; do
  command -v "$t" >/dev/null 2>&1 || need+=("${pkg[$t]}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test-tools: cannot install ${need[*]}: no apt-get on this machine; install them by hand" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "test-tools: cannot install ${need[*]}: not root and no passwordless sudo; install them by hand" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "test-tools: installing ${need[*]} (apt-get update, then install)" >&2
# A fresh machine has no package lists: update first, always.
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
missing=()
for t in skopeo docker-registry python3; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if [ ${#missing[@]} -ne 0 ]; then
  echo "test-tools: ${missing[*]} still missing after apt-get install" >&2
  exit 1
fi
