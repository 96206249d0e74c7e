#!/usr/bin/env bash
# Installs everything HNSE Studio and its tests need on a fresh Debian machine:
# the CPU build of torch (pinned: other specs pull a multi-GB CUDA build), the
# project with its test extras, and Xvfb with the X libraries Qt's xcb plugin needs.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v Xvfb >/dev/null || ! ldconfig -p | grep -q libxcb-icccm; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 \
        libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 \
        libgl1 libegl1 libfontconfig1 libdbus-1-3 >/dev/null
fi
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test]"
