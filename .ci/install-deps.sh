#!/usr/bin/env bash
# Installs the Debian 12 packages the real-peer tests and benchmarks need.
# Idempotent. Needs root: as root `bash .ci/install-deps.sh`, otherwise
# `sudo bash .ci/install-deps.sh` (the script re-runs itself with sudo when
# it can). Used by .ci/run and by developers; `node scripts/preflight.mjs`
# then proves each tool works.
#
# Installed with --no-install-recommends, so a package a tool only
# *recommends* but the tests need is listed here by name (swaks' TLS and IPv6
# modules). Deliberately NOT installed: libnet-dns-perl (swaks MX routing,
# i.e. DNS lookups through the system resolver, which the tests must never
# make).
#
# Adding a package: append a line to PKGS below (one package per line, with
# what needs it; or a PKGS+=( ... ) block after it, same layout), and a
# check to scripts/preflight.mjs (test/integration/preflight.test.ts checks
# that every package the preflight names is listed here).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PKGS=(
  postfix                   # private instances: postfix, postconf, postmap, postqueue, smtp-sink, smtp-source
  swaks                     # SMTP client of the Haraka/Postfix tests
  libnet-ssleay-perl        # swaks --tls (only recommended by swaks)
  libio-socket-ssl-perl     # swaks --tls (only recommended by swaks)
  libio-socket-inet6-perl   # swaks over IPv6 (only recommended by swaks)
  miltertest                # milter-miltertest test, shared/peers/test-milter.lua
  opendkim                  # second milter beside linksec (shared/peers/opendkim-up.sh, bench)
  opendkim-tools            # opendkim-genkey
  python3                   # /usr/bin/python3 for the peers' helpers
  python3-milter            # shared/peers/test-milter.py (pymilter)
  gnupg                     # gpg, gpgconf, gpg-agent: signers of the verify tests
  gpgv                      # verify-equivalence test, verify bench
  gpg-wks-client            # WKD hashes/fetch as GnuPG does them (/usr/lib/gnupg/gpg-wks-client)
  sq                        # Sequoia signer of the verify tests
  sq-wot                    # Sequoia web of trust: authenticates users from the domain CA (ca-peers test)
  rnp                       # RNP signer/verifier (rnp, rnpkeys)
  mutt                      # a real MUA reading signed mail (gpgme backend)
  redis-server              # redis test (shared/peers/redis-up.sh)
  redis-tools               # redis-cli
  prometheus                # prometheus and promtool (metrics, rules and example tests)
  curl                      # shared/peers/prometheus-up.sh
  dnsmasq-base              # dnsmasq of shared/peers/mta-sts-lab.sh (socketmap bench)
  postfix-mta-sts-resolver  # mta-sts-daemon, the socketmap bench's peer
  openssl                   # test CA and certificates, openssl s_server
  ca-certificates
  iproute2                  # ss (peers' port checks), ip (network namespaces)
  util-linux                # unshare (private mount/network namespaces)
  procps
  systemd                   # systemd-analyze for examples-systemd.test.ts
  sasl2-bin                 # saslpasswd2: the sasldb of the signing-through-Postfix test (SMTP AUTH)
  libsasl2-modules          # Cyrus SASL PLAIN/LOGIN for that smtpd (only recommended by libsasl2-2)
)

[ "$(id -u)" = 0 ] || {
  command -v sudo >/dev/null && exec sudo -E bash "$0" "$@"
  echo "install-deps: must run as root (no sudo here): run it as root, e.g. su -c 'bash $0'" >&2
  exit 1
}

# dpkg -s also succeeds for a removed package whose config files remain:
# only status "ii" counts as installed.
installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = 'ii ' ]; }
missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  # Postfix must not ask questions or configure a system instance: the tests
  # run private instances with their own config directories.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  log=$(mktemp)
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
    || { cat "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
fi
echo "install-deps: ${#PKGS[@]} system packages present"
