# sztp-agent: Secure Zero Touch Provisioning (RFC 8572) device agent.
#
# Builds the static agent from its Go module (CGO_ENABLED=0: no target libc
# dependency, the same binary as the .deb/.rpm), and installs the systemd
# unit, the defaults file and the manual page that ship in packaging/.
# Written for Yocto releases with the ":" override syntax (kirkstone and
# later). It has not been run through bitbake in this repository;
# tools/check-packaging.sh checks that its paths and names agree with the
# unit, the nfpm config and the command line.

SUMMARY = "Secure Zero Touch Provisioning (RFC 8572) device agent"
DESCRIPTION = "Finds bootstrap servers, authenticates with the device IDevID, \
decides trust as RFC 8572 section 5 says and carries out onboarding: boot \
image, pre-configuration script, configuration, post-configuration script."
HOMEPAGE = "https://github.com/sztp-agent/sztp-agent"
SECTION = "admin"

# The repository has no LICENSE file yet. CLOSED needs no LIC_FILES_CHKSUM;
# replace both with the real license once the repository carries one.
LICENSE = "CLOSED"

# Placeholder: point SRC_URI at the repository (or a mirror) and pin SRCREV
# to the commit being released. GO_SRCURI_DESTSUFFIX (go.bbclass) puts the
# checkout where go.bbclass expects the module: ${S}/src/${GO_IMPORT}.
SRC_URI = "git://github.com/sztp-agent/sztp-agent.git;protocol=https;branch=main;destsuffix=${GO_SRCURI_DESTSUFFIX}"
SRCREV = "0000000000000000000000000000000000000000"
# Releases before scarthgap need "+git${SRCPV}" here; later ones append the
# revision themselves.
PV = "0.1+git"

GO_IMPORT = "github.com/sztp-agent/sztp-agent"
# Only the device binary; cmd/sztp-lab is a lab server and stays out.
GO_INSTALL = "${GO_IMPORT}/cmd/sztp-agent"

inherit go-mod systemd

# Go module dependencies. Offline and pinned is better: on releases that have
# it, add "inherit go-mod-update-modules", run `bitbake sztp-agent -c
# update_modules` once, commit the generated sztp-agent-go-mods.inc next to
# this recipe and delete the network flag below. Until then do_compile
# downloads the modules that go.sum pins (and verifies them against it).
include ${BPN}-go-mods.inc
do_compile[network] = "1"

# A pure-Go static binary: no cgo, and none of go.bbclass's shared-runtime
# linking (-linkshared) that GO_DYNLINK turns on for some machines.
CGO_ENABLED = "0"
GO_DYNLINK = ""
GO_LINKSHARED = ""

# Version and build time, as tools/packages.sh stamps them. The build time
# matters at run time: the agent distrusts a clock that reads earlier than
# its own build (a board without RTC battery that booted in 1970) and then
# checks no validity periods. Taken from SOURCE_DATE_EPOCH, so the build
# stays reproducible.
def sztp_build_time(d):
    import time
    epoch = d.getVar('SOURCE_DATE_EPOCH') or '0'
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(int(epoch)))

GO_EXTRA_LDFLAGS:append = " -s -w \
    -X ${GO_IMPORT}/internal/version.Version=${PV} \
    -X ${GO_IMPORT}/internal/version.BuildTime=${@sztp_build_time(d)}"

# The manual page is generated from the command definitions by a small Go
# program. It must run on the build host, so it is built for BUILD_GOOS/
# BUILD_GOARCH with the same toolchain (go-cross can target the host too).
do_compile:append() {
    cd ${S}/src/${GO_IMPORT}
    SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH}" GOOS=${BUILD_GOOS} GOARCH=${BUILD_GOARCH} \
        ${GO} run ./tools/genman -version ${PV} -o ${B}/sztp-agent.8
}

do_install:append() {
    # Unit, defaults file and config directory, in the places the unit and
    # the agent expect (see packaging/systemd/sztp-agent.service).
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/src/${GO_IMPORT}/packaging/systemd/sztp-agent.service \
        ${D}${systemd_system_unitdir}/sztp-agent.service
    # The unit names /usr/bin/sztp-agent; follow a distro that moves bindir.
    sed -i -e 's,/usr/bin/sztp-agent,${bindir}/sztp-agent,' \
        ${D}${systemd_system_unitdir}/sztp-agent.service

    install -d ${D}${sysconfdir}/default ${D}${sysconfdir}/sztp-agent
    install -m 0644 ${S}/src/${GO_IMPORT}/packaging/default/sztp-agent \
        ${D}${sysconfdir}/default/sztp-agent

    install -d ${D}${mandir}/man8 ${D}${docdir}/${BPN}
    install -m 0644 ${B}/sztp-agent.8 ${D}${mandir}/man8/sztp-agent.8
    install -m 0644 ${S}/src/${GO_IMPORT}/packaging/config.yaml.example \
        ${D}${docdir}/${BPN}/config.yaml.example
}

SYSTEMD_SERVICE:${PN} = "sztp-agent.service"
# Provisioning is the point of installing this into a factory image.
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

FILES:${PN} += "${sysconfdir}/default/sztp-agent ${sysconfdir}/sztp-agent"
# Operator edits to the defaults file survive upgrades.
CONFFILES:${PN} = "${sysconfdir}/default/sztp-agent"

# Hooks run through /bin/sh -c.
RDEPENDS:${PN} += "${VIRTUAL-RUNTIME_base-utils}"
