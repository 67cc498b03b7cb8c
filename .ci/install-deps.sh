#!/usr/bin/env bash
# Installs the system packages the real-peer tests and benchmarks need
# (Debian 12). Idempotent; run as root. Used by .ci/run and by developers.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(postfix swaks miltertest opendkim opendkim-tools python3-milter sq gnupg
      redis-server prometheus dnsmasq-base postfix-mta-sts-resolver openssl
      ca-certificates iproute2 procps)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  # Postfix must not ask questions or configure a system instance: the tests
  # run private instances with their own config directories.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "system packages: ${#PKGS[@]} present"
