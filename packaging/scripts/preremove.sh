#!/bin/sh
# Runs before the package is removed (.deb prerm, .rpm %preun). On an
# upgrade the unit stays as it is; only a real removal stops and disables it.
# Like postinstall.sh, it does nothing without a running systemd.
set -e
case "$1" in
	remove|purge|0) ;;   # dpkg: remove/purge; rpm: 0 packages left
	*) exit 0 ;;         # dpkg: upgrade/deconfigure/failed-upgrade; rpm: 1 = upgrade
esac
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now sztp-agent.service || true
fi
exit 0
