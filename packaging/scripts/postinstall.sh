#!/bin/sh
# Runs after the package is installed or upgraded (.deb postinst, .rpm %post).
# Only touches systemd when systemd is the running init: in a container, a
# chroot or an image build (debootstrap, Yocto/ELBE-style rootfs assembly)
# there is no manager to talk to, and a failing postinst would abort the
# whole image build. `systemctl enable` in such a root would still work
# offline, but whether a factory image starts SZTP is the image builder's
# decision, so there we leave it alone.
set -e
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
	# Enable but do not start: starting means provisioning this machine
	# now, which an operator installing the package by hand may not want.
	# The next boot starts it (unless `sztp-agent disable` was run).
	systemctl enable sztp-agent.service || true
fi
exit 0
