#!/usr/bin/env bash
# Installs the system packages Outrider's build needs on Debian/Ubuntu, if any is missing:
# cmake and a C compiler (Pingora's zlib-ng, zstd and ring are C), and the openssl command, with
# which the upstream-TLS test makes its own CA and origin; and Debian's prometheus package, whose
# promtool checks and unit-tests the alert rules `outrider rules` writes (tests/it/alerts/); and
# Debian's chromium, which loads the admin dashboard headless (tests/it/dashboard.rs); and
# redis-server, which the shared cache tier's tests start on loopback (tests/it/shared_cache/).
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(build-essential)
command -v openssl >/dev/null || need+=(openssl)   # the upstream-TLS test makes its own CA
command -v promtool >/dev/null || need+=(prometheus)   # promtool, for the alert rule tests
command -v chromium >/dev/null || need+=(chromium)     # headless browser, for the dashboard test
command -v redis-server >/dev/null || command -v valkey-server >/dev/null || need+=(redis-server)   # the shared cache tier tests
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing: ${need[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}"
fi
