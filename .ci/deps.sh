#!/usr/bin/env bash
# Installs what the test suite needs and is not on a fresh machine. Idempotent:
# does nothing when everything is there. Needs root (CI runs as root).
set -euo pipefail
need=()
# PostgreSQL server binaries for the export tests (a throwaway cluster per run).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# iproute2 for the mDNS tests between network namespaces.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# Headless Chromium for the web page's end-to-end tests.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing ${need[*]} and not root: install them (make test requires them) or run as root" >&2
	exit 0
fi
echo "deps: installing ${need[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
