#!/usr/bin/env bash
# Installs the system packages Outrider's build needs on Debian/Ubuntu, if any is missing:
# cmake and a C compiler (Pingora's zlib-ng, zstd and ring are C), and the openssl command, with
# which the upstream-TLS test makes its own CA and origin; and Debian's prometheus package, whose
# promtool checks and unit-tests the alert rules `outrider rules` writes (tests/it/alerts/); and
# Debian's chromium, which loads the admin dashboard headless (tests/it/dashboard.rs); and
# redis-server and valkey-server, which the shared cache tier's tests start on loopback
# (tests/it/shared_cache/; Valkey is the Redis fork some users run instead).
set -euo pipefail
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(build-essential)
command -v openssl >/dev/null || need+=(openssl)   # the upstream-TLS test makes its own CA
command -v promtool >/dev/null || need+=(prometheus)   # promtool, for the alert rule tests
command -v chromium >/dev/null || need+=(chromium)     # headless browser, for the dashboard test
command -v redis-server >/dev/null || need+=(redis-server)   # the shared cache tier tests
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}"
fi
# valkey-server: Debian 12 (bookworm) has it in bookworm-backports only, which is added as a
# source (once) and asked for explicitly; later Debian and Ubuntu releases have it in their main
# archives.
if ! command -v valkey-server >/dev/null; then
  release=()
  codename=$(. /etc/os-release && echo "${ID:-}-${VERSION_CODENAME:-}")
  if [ "$codename" = debian-bookworm ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "deb http://deb.debian.org/debian bookworm-backports main" |
        $sudo_cmd tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
    release=(-t bookworm-backports)
  fi
  echo "installing: valkey-server"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${release[@]}" valkey-server
fi
