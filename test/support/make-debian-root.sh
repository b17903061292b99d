#!/bin/sh
# Makes the Debian 12 machine root the package tests boot (minbase + systemd,
# about 100 s and 240 MB), at $1, unless it is there. Used by .ci/run before
# the tests and by test/support/debian-root.ts when run by hand.
set -eu
root=$1
[ -x "$root/lib/systemd/systemd" ] && exit 0
partial="$root.partial-$$"
rm -rf "$partial"
mkdir -p "$(dirname "$root")"
if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$partial" http://deb.debian.org/debian >"$partial.log" 2>&1; then
  tail -n 5 "$partial.log" >&2
  rm -rf "$partial" "$partial.log"
  exit 1
fi
rm -f "$partial.log"
# Another process may have finished first: keep whichever came first.
if [ -e "$root" ]; then rm -rf "$partial"; else mv "$partial" "$root"; fi
