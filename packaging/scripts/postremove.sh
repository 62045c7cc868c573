#!/bin/sh
# Runs after the package is removed (.deb postrm, .rpm %postun): tell a
# running systemd that the unit file is gone. The state directory
# /var/lib/sztp-agent is kept on purpose (it records whether this device was
# bootstrapped); remove it by hand after `sztp-agent reset` if needed.
set -e
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
exit 0
