#!/usr/bin/env bash
# Installs the system packages Outrider's build needs on Debian/Ubuntu, if any is missing:
# cmake and a C compiler (Pingora's zlib-ng and zstd are C), pkg-config and libssl-dev
# (upstream TLS, the default `tls` feature), and the openssl command for the TLS test.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v openssl >/dev/null || need+=(openssl)   # the upstream-TLS test makes its own CA
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing: ${need[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}"
fi
