################################################################################
#
# sztp-agent
#
################################################################################

# Placeholder: the tag or commit to build. Buildroot's golang infrastructure
# vendors the module's dependencies (go mod vendor, as pinned by go.sum) when
# it downloads the source, so the build itself runs offline.
SZTP_AGENT_VERSION = 0.1.0
SZTP_AGENT_SITE = $(call github,sztp-agent,sztp-agent,v$(SZTP_AGENT_VERSION))
# The repository has no LICENSE file yet; set these once it has one.
# SZTP_AGENT_LICENSE =
# SZTP_AGENT_LICENSE_FILES =

SZTP_AGENT_GOMOD = github.com/sztp-agent/sztp-agent
# Only the device binary; cmd/sztp-lab is a lab server and stays out.
SZTP_AGENT_BUILD_TARGETS = cmd/sztp-agent
SZTP_AGENT_INSTALL_BINS = sztp-agent

# Offline, vendored and pure Go. Buildroot's go environment already sets
# GOFLAGS=-mod=vendor and GOPROXY=off; they are repeated here so that the
# property this package relies on is visible (tools/check-packaging.sh
# builds the same way: go mod vendor, then an offline -mod=vendor build).
# CGO_ENABLED=0 gives the same static binary as the .deb/.rpm.
SZTP_AGENT_GO_ENV = CGO_ENABLED=0 GOFLAGS=-mod=vendor GOPROXY=off

# Version and build time as tools/packages.sh stamps them. The agent
# distrusts a clock earlier than its build time (a board without RTC
# battery that booted in 1970); SOURCE_DATE_EPOCH (set by
# BR2_REPRODUCIBLE) keeps the build reproducible.
SZTP_AGENT_BUILD_TIME = $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} +%Y-%m-%dT%H:%M:%SZ)
SZTP_AGENT_LDFLAGS = \
	-X $(SZTP_AGENT_GOMOD)/internal/version.Version=$(SZTP_AGENT_VERSION) \
	-X $(SZTP_AGENT_GOMOD)/internal/version.BuildTime=$(SZTP_AGENT_BUILD_TIME)

# The defaults file read by the unit (EnvironmentFile=-/etc/default/sztp-agent)
# and the directory for config.yaml, the IDevID and trust anchors. The man
# page is not installed: Buildroot strips /usr/share/man from the target.
define SZTP_AGENT_INSTALL_DEFAULTS
	$(INSTALL) -D -m 0644 $(@D)/packaging/default/sztp-agent \
		$(TARGET_DIR)/etc/default/sztp-agent
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/etc/sztp-agent
endef
SZTP_AGENT_POST_INSTALL_TARGET_HOOKS += SZTP_AGENT_INSTALL_DEFAULTS

# The unit, plus a preset so that `systemctl preset-all` (run when Buildroot
# finalizes a systemd image) enables it: provisioning is why it is in the
# image. The disabled marker in /var/lib/sztp-agent still turns it off.
define SZTP_AGENT_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/packaging/systemd/sztp-agent.service \
		$(TARGET_DIR)/usr/lib/systemd/system/sztp-agent.service
	$(INSTALL) -d $(TARGET_DIR)/usr/lib/systemd/system-preset
	echo "enable sztp-agent.service" > \
		$(TARGET_DIR)/usr/lib/systemd/system-preset/80-sztp-agent.preset
endef

$(eval $(golang-package))
