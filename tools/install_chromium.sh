#!/usr/bin/env bash
# Install Debian/Ubuntu's Chromium for the browser tests (tests/ui), unless it is already
# there. Idempotent: a second run does nothing. Needs root (sudo bash tools/install_chromium.sh).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "Chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "No apt-get here: install Chromium so that /usr/bin/chromium exists, then run make ui." >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "Run as root: sudo bash $0" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium
/usr/bin/chromium --version
