#!/bin/sh
# tools/check-packaging.sh: check everything in packaging/ that can be
# checked without bitbake, Buildroot or a booted systemd:
#
#   1. go.mod/go.sum are what they were at the end (nfpm is a tool, never a
#      dependency of the agent)
#   2. the manual page: generated, reproducible, renders without warnings
#   3. offline vendored build, as Buildroot does it: `go mod vendor` in a
#      temporary copy of the tree (never a vendor/ in the real one), then
#      GOFLAGS=-mod=vendor GOPROXY=off with an empty module cache
#   4. tools/packages.sh: static amd64 + arm64 binaries (`file` must say
#      x86-64/aarch64 and statically linked), .deb and .rpm
#   5. the unit, the nfpm config and the Yocto/Buildroot recipes agree with
#      each other and with the agent's own constants (paths, exit codes)
#   6. systemd-analyze verify on the unit
#   7. the .deb: dpkg -i, sztp-agent version, the config example parses,
#      systemd-analyze verify of the installed unit, dpkg -r, dpkg -P
#   8. the .rpm: rpm -qpl, config files, scripts
#
# Run as root on a throw-away machine (CI) for step 7; elsewhere the .deb is
# unpacked into a temporary root instead. Missing tools are installed with
# apt-get when running as root (systemd, rpm, file, groff-base, man-db).
# Everything it builds goes to a temporary directory that is removed at the
# end (KEEP=1 keeps it).
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VERSION=${VERSION:-0.0.0-check}
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1735689600)}"

T=$(mktemp -d /tmp/sztp-check-packaging.XXXXXX)
INSTALLED=
cleanup() {
	rc=$?
	if [ -n "$INSTALLED" ]; then
		# The script failed between dpkg -i and dpkg -P: leave no package.
		dpkg -P sztp-agent >/dev/null 2>&1 || true
	fi
	if [ "${KEEP:-}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
	exit $rc
}
trap cleanup EXIT INT TERM

START=$(date +%s)
STEP_START=
FAILS=0
step() { # step TITLE: close the previous step with its time, open the next
	now=$(date +%s)
	[ -z "$STEP_START" ] || echo "   ($((now - STEP_START)) s)"
	STEP_START=$now
	echo "== $*"
}
ok() { echo "   ok: $*"; }
bad() {
	echo "   FAIL: $*"
	FAILS=$((FAILS + 1))
}
skip() { echo "   skip: $*"; }

APT_UPDATED=
need() { # need COMMAND PACKAGE: install PACKAGE when COMMAND is missing
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		if [ -z "$APT_UPDATED" ]; then
			apt-get update -qq >/dev/null && APT_UPDATED=1
		fi
		echo "   installing $2 (for $1)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
	fi
	command -v "$1" >/dev/null 2>&1
}

# value KEY FILE: the value of the first "KEY=..." line of a unit or facts file
value() { sed -n "s/^$1=//p" "$2" | head -n 1; }

step "tools"
for t in "systemd-analyze systemd" "file file" "dpkg-deb dpkg" "rpm rpm" "groff groff-base" "man man-db"; do
	# shellcheck disable=SC2086 # split "COMMAND PACKAGE" on purpose
	set -- $t
	if need "$1" "$2"; then ok "$1"; else skip "$1 not available (package $2)"; fi
done
command -v systemd-analyze >/dev/null || { bad "systemd-analyze is required (apt-get install systemd)"; exit 1; }
command -v file >/dev/null || { bad "file is required (apt-get install file)"; exit 1; }

MODSUM=$(cat go.mod go.sum | sha256sum)

# ---------------------------------------------------------------------------
step "facts from the agent's constants (tools/genman -facts)"
go run ./tools/genman -facts >"$T/facts"
sed 's/^/   /' "$T/facts"

# ---------------------------------------------------------------------------
step "manual page"
go run ./tools/genman -version "$VERSION" -o "$T/a.8"
go run ./tools/genman -version "$VERSION" -o "$T/b.8"
if cmp -s "$T/a.8" "$T/b.8"; then ok "reproducible (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"; else bad "two runs of genman differ"; fi
for s in NAME SYNOPSIS DESCRIPTION COMMANDS "EXIT STATUS" FILES "SEE ALSO"; do
	grep -q "^\.SH \"*$s\"*\$" "$T/a.8" || bad "no $s section"
done
while IFS='=' read -r name code; do
	case $name in Exit*) grep -q "^\.B $code\$" "$T/a.8" || bad "exit code $code ($name) missing from EXIT STATUS" ;; esac
done <"$T/facts"
if command -v groff >/dev/null; then
	warn=$(groff -man -Tutf8 -ww -z "$T/a.8" 2>&1)
	if [ -z "$warn" ]; then ok "groff -man -ww: no warnings"; else bad "groff: $warn"; fi
fi
if command -v man >/dev/null; then
	warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$T/a.8" 2>&1 >"$T/man.txt")
	if [ -z "$warn" ] && grep -q "SZTP-AGENT(8)" "$T/man.txt"; then
		ok "man -l renders ($(wc -l <"$T/man.txt") lines)"
	else
		bad "man -l: $warn"
	fi
fi

# ---------------------------------------------------------------------------
step "offline vendored build (go mod vendor in a temporary copy)"
mkdir -p "$T/src"
# The working tree as it is, minus build output and VCS data.
tar -C "$ROOT" --exclude=./.git --exclude=./bin --exclude=./dist --exclude=./lab-run \
	--exclude=./vendor -cf - . | tar -C "$T/src" -xf -
(cd "$T/src" && GOFLAGS=-mod=mod go mod vendor)
ok "vendor/: $(grep -c '^# ' "$T/src/vendor/modules.txt") modules"
# An empty module cache: the build can only succeed from vendor/.
mkdir -p "$T/empty-modcache"
(cd "$T/src" && GOFLAGS=-mod=vendor GOPROXY=off GOMODCACHE="$T/empty-modcache" GOWORK=off \
	CGO_ENABLED=0 go build -trimpath -o "$T/sztp-agent.vendored" ./cmd/sztp-agent)
if [ -n "$(ls -A "$T/empty-modcache")" ]; then bad "the vendored build filled the module cache"; fi
"$T/sztp-agent.vendored" version >/dev/null && ok "built offline from vendor/ (GOFLAGS=-mod=vendor GOPROXY=off)"
[ ! -e "$ROOT/vendor" ] || bad "a vendor/ directory exists in the real tree"

# ---------------------------------------------------------------------------
step "packages (tools/packages.sh $VERSION amd64 arm64)"
DIST=$T/dist tools/packages.sh "$VERSION" amd64 arm64 2>&1 | sed 's/^/   /'
DEB=$(ls "$T"/dist/sztp-agent_*_amd64.deb)
for arch in amd64:x86-64 arm64:aarch64; do
	a=${arch%%:*} machine=${arch#*:}
	bin=$T/dist/$a/sztp-agent
	if [ ! -x "$bin" ]; then
		bad "no $a binary"
		continue
	fi
	desc=$(file -b "$bin")
	case $desc in *"$machine"*) ok "$a binary is $machine" ;; *) bad "$a binary: $desc" ;; esac
	case $desc in *"statically linked"*) ok "$a binary is statically linked" ;; *) bad "$a binary is not static: $desc" ;; esac
done
ls "$T"/dist/*.deb "$T"/dist/*.rpm | sed "s|^$T/dist/|   |"
[ "$(ls "$T"/dist/*.deb "$T"/dist/*.rpm | wc -l)" = 4 ] || bad "expected 2 .deb and 2 .rpm"

# ---------------------------------------------------------------------------
step "unit, nfpm config and recipes agree"
UNIT=packaging/systemd/sztp-agent.service
NFPM=packaging/nfpm.yaml
BB=packaging/yocto/sztp-agent_git.bb
MK=packaging/buildroot/sztp-agent/sztp-agent.mk
CFGIN=packaging/buildroot/sztp-agent/Config.in
MODULE=$(sed -n 's/^module //p' go.mod)
check() { # check DESCRIPTION COMMAND...
	d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}
has() { grep -Eq -- "$1" "$2"; }

exec_start=$(value ExecStart "$UNIT")
bin=${exec_start%% *}
envfile=$(value EnvironmentFile "$UNIT")
envfile=${envfile#-}
check "unit: Type=simple (long-running, never oneshot)" has '^Type=simple$' "$UNIT"
check "unit: no ConditionFirstBoot=" sh -c "! grep -q '^ConditionFirstBoot=' $UNIT"
check "unit: ConditionPathExists=! the disabled marker ($(value disabled-marker "$T/facts"))" \
	has "^ConditionPathExists=!$(value disabled-marker "$T/facts")\$" "$UNIT"
check "unit: StateDirectory= is the agent's state dir" \
	test "/var/lib/$(value StateDirectory "$UNIT")" = "$(value state-dir "$T/facts")"
check "unit: RuntimeDirectory= is the agent's run dir" \
	test "/run/$(value RuntimeDirectory "$UNIT")" = "$(value run-dir "$T/facts")"
check "unit: network-online.target wanted and ordered" sh -c \
	"grep -q '^Wants=network-online.target' $UNIT && grep -q '^After=network-online.target' $UNIT"
check "unit: ExecStart runs '$bin run \$SZTP_AGENT_FLAGS'" test "$exec_start" = "$bin run \$SZTP_AGENT_FLAGS"
check "unit: Restart=on-failure" has '^Restart=on-failure$' "$UNIT"
prevent=" $(value RestartPreventExitStatus "$UNIT") "
for c in ExitUsage ExitDisabled; do
	check "unit: no restart on $c ($(value $c "$T/facts"))" sh -c "echo '$prevent' | grep -q ' $(value $c "$T/facts") '"
done
for c in ExitFailed ExitEnvironment ExitBusy; do
	check "unit: restart on $c ($(value $c "$T/facts"))" sh -c "! echo '$prevent' | grep -q ' $(value $c "$T/facts") '"
done
check "unit: SuccessExitStatus has ExitInterrupted ($(value ExitInterrupted "$T/facts"))" \
	sh -c "echo ' $(value SuccessExitStatus "$UNIT") ' | grep -q ' $(value ExitInterrupted "$T/facts") '"
check "unit: StandardOutput=journal+console" has '^StandardOutput=journal\+console$' "$UNIT"
check "unit: no ProtectSystem= (hooks must write the system)" sh -c "! grep -q '^ProtectSystem=' $UNIT"

check "nfpm: binary installed at the unit's ExecStart ($bin)" has "dst: $bin\$" "$NFPM"
check "nfpm: unit installed in /lib/systemd/system" has "dst: /lib/systemd/system/sztp-agent.service\$" "$NFPM"
check "nfpm: defaults file at the unit's EnvironmentFile ($envfile), config|noreplace" \
	sh -c "grep -A1 'dst: $envfile\$' $NFPM | grep -q 'type: config|noreplace'"
check "nfpm: man page in /usr/share/man/man8, gzipped" has 'dst: /usr/share/man/man8/sztp-agent.8.gz$' "$NFPM"
check "nfpm: config example in /usr/share/doc" has 'dst: /usr/share/doc/sztp-agent/config.yaml.example$' "$NFPM"

check "yocto: inherit go-mod systemd" has '^inherit go-mod systemd$' "$BB"
check "yocto: GO_IMPORT is the module ($MODULE)" has "^GO_IMPORT = \"$MODULE\"\$" "$BB"
check "yocto: GO_INSTALL builds cmd/sztp-agent" sh -c \
	"grep -q '^GO_INSTALL = \"\${GO_IMPORT}/cmd/sztp-agent\"\$' $BB && test -d cmd/sztp-agent"
check "yocto: CGO_ENABLED = \"0\"" has '^CGO_ENABLED = "0"$' "$BB"
check "yocto: SYSTEMD_SERVICE is the unit's name" has "^SYSTEMD_SERVICE:\\\$\\{PN\\} = \"$(basename "$UNIT")\"\$" "$BB"
check "yocto: unit installed into \${systemd_system_unitdir}" has "\\\$\\{D\\}\\\$\\{systemd_system_unitdir\\}/$(basename "$UNIT")" "$BB"
check "yocto: defaults file installed at the unit's EnvironmentFile" has "\\\$\\{D\\}\\\$\\{sysconfdir\\}${envfile#/etc}\$" "$BB"
check "yocto: defaults file is a CONFFILE" has "^CONFFILES:\\\$\\{PN\\} = \"\\\$\\{sysconfdir\\}${envfile#/etc}\"" "$BB"
check "yocto: man page installed into \${mandir}/man8" has '\$\{D\}\$\{mandir\}/man8/sztp-agent\.8$' "$BB"
check "yocto: SRC_URI placeholder is commented" has '^# Placeholder: point SRC_URI' "$BB"

check "buildroot: Config.in symbol matches the .mk prefix" sh -c \
	"grep -q '^config BR2_PACKAGE_SZTP_AGENT\$' $CFGIN && grep -q '^SZTP_AGENT_VERSION = ' $MK"
check "buildroot: golang-package" has '^\$\(eval \$\(golang-package\)\)$' "$MK"
check "buildroot: GOMOD is the module ($MODULE)" has "^SZTP_AGENT_GOMOD = $MODULE\$" "$MK"
check "buildroot: builds cmd/sztp-agent" sh -c "grep -q '^SZTP_AGENT_BUILD_TARGETS = cmd/sztp-agent\$' $MK && test -d cmd/sztp-agent"
check "buildroot: vendored, offline, static (GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=0)" sh -c \
	"grep '^SZTP_AGENT_GO_ENV = ' $MK | grep -q 'GOFLAGS=-mod=vendor' && grep '^SZTP_AGENT_GO_ENV = ' $MK | grep -q 'GOPROXY=off' && grep '^SZTP_AGENT_GO_ENV = ' $MK | grep -q 'CGO_ENABLED=0'"
check "buildroot: installs the binary the unit runs ($(basename "$bin"))" has "^SZTP_AGENT_INSTALL_BINS = $(basename "$bin")\$" "$MK"
check "buildroot: systemd unit install hook" sh -c \
	"grep -q '^define SZTP_AGENT_INSTALL_INIT_SYSTEMD' $MK && grep -q 'TARGET_DIR)/usr/lib/systemd/system/$(basename "$UNIT")' $MK"
check "buildroot: defaults file at the unit's EnvironmentFile" has "TARGET_DIR\\)$envfile\$" "$MK"
check "buildroot: Config.in depends on Go target support" has 'depends on BR2_PACKAGE_HOST_GO_TARGET_ARCH_SUPPORTS' "$CFGIN"
# Every packaging/ or tools/ path the recipes name must exist.
for f in $(grep -ohE '(packaging|tools)/[A-Za-z0-9_./-]+' "$BB" "$MK" "$NFPM" | sort -u); do
	check "referenced file exists: $f" test -e "$f"
done

# ---------------------------------------------------------------------------
step "systemd-analyze verify (unit copy with ExecStart pointed at the built binary)"
mkdir -p "$T/unit"
sed "s|^ExecStart=$bin |ExecStart=$T/dist/amd64/sztp-agent |" "$UNIT" >"$T/unit/sztp-agent.service"
# --man=no: the manual page is not installed yet (the installed unit below
# is verified with it). Any line about our unit counts, warnings included:
# systemd-analyze exits 0 on some of them.
if out=$(systemd-analyze verify --man=no "$T/unit/sztp-agent.service" 2>&1); then rc=0; else rc=$?; fi
ours=$(echo "$out" | grep 'sztp-agent' || true)
if [ $rc = 0 ] && [ -z "$ours" ]; then ok "systemd-analyze verify: clean"; else bad "systemd-analyze verify (rc $rc): $out"; fi

# ---------------------------------------------------------------------------
step "install the .deb"
if [ "$(id -u)" = 0 ] && ! dpkg -s sztp-agent >/dev/null 2>&1; then
	INSTALLED=1
	dpkg -i "$DEB" 2>&1 | sed 's/^/   /'
	PREFIX=
	ok "dpkg -i $(basename "$DEB")"
else
	# Not root, or an sztp-agent package this script did not install is
	# present: do not touch the host, look at the unpacked package instead.
	PREFIX=$T/root
	dpkg-deb -x "$DEB" "$PREFIX"
	skip "dpkg -i (not root, or sztp-agent already installed): unpacked into $PREFIX"
fi
got=$("$PREFIX/usr/bin/sztp-agent" version)
check "sztp-agent version prints $VERSION (got $got)" test "$got" = "$VERSION"
for f in /usr/bin/sztp-agent /lib/systemd/system/sztp-agent.service /etc/default/sztp-agent \
	/usr/share/man/man8/sztp-agent.8.gz /usr/share/doc/sztp-agent/config.yaml.example; do
	check "installed $f" test -f "$PREFIX$f"
done
check "installed /etc/sztp-agent/ directory" test -d "$PREFIX/etc/sztp-agent"
if [ -n "$INSTALLED" ]; then
	check "/etc/default/sztp-agent is a conffile" sh -c \
		"dpkg-query -W -f='\${Conffiles}' sztp-agent | grep -q '/etc/default/sztp-agent'"
	check "man -w finds sztp-agent(8)" man -w 8 sztp-agent
	if out=$(systemd-analyze verify /lib/systemd/system/sztp-agent.service 2>&1); then rc=0; else rc=$?; fi
	ours=$(echo "$out" | grep 'sztp-agent' || true)
	if [ $rc = 0 ] && [ -z "$ours" ]; then ok "systemd-analyze verify of the installed unit (with man page): clean"; else bad "installed unit (rc $rc): $out"; fi
fi
# The config example (as shipped, and with every commented key enabled)
# must use only known keys: an unknown key is a usage error (exit 2). The
# run stops at the missing IDevID with exit 3 (environment) before it
# touches any state; the flags keep it away from the real directories.
sed -e 's/^# \([a-z-]*:\)/\1/' -e 's/^#   -/  -/' "$PREFIX/usr/share/doc/sztp-agent/config.yaml.example" >"$T/all-keys.yaml"
for cfg in "$PREFIX/usr/share/doc/sztp-agent/config.yaml.example" "$T/all-keys.yaml"; do
	if "$PREFIX/usr/bin/sztp-agent" run --config "$cfg" --once --dry-run --idevid-cert "$T/none.pem" \
		--state-dir "$T/state" --run-dir "$T/run" >"$T/run.out" 2>&1; then rc=0; else rc=$?; fi
	check "config example $(basename "$cfg"): keys known (exit $rc is ExitEnvironment)" \
		test "$rc" = "$(value ExitEnvironment "$T/facts")"
done
if [ -n "$INSTALLED" ]; then
	dpkg -r sztp-agent 2>&1 | sed 's/^/   /'
	check "dpkg -r removed the binary" test ! -e /usr/bin/sztp-agent
	check "dpkg -r kept the conffile" test -e /etc/default/sztp-agent
	dpkg -P sztp-agent 2>&1 | sed 's/^/   /'
	check "dpkg -P removed the conffile" test ! -e /etc/default/sztp-agent
	INSTALLED=
fi

# ---------------------------------------------------------------------------
step "the .rpm packages"
if command -v rpm >/dev/null; then
	for r in "$T"/dist/*.rpm; do
		rpm -qpl "$r" >"$T/rpm.list" 2>/dev/null
		want="/etc/default/sztp-agent /etc/sztp-agent /lib/systemd/system/sztp-agent.service /usr/bin/sztp-agent /usr/share/doc/sztp-agent/config.yaml.example /usr/share/man/man8/sztp-agent.8.gz"
		missing=
		for f in $want; do grep -qx "$f" "$T/rpm.list" || missing="$missing $f"; done
		if [ -z "$missing" ]; then ok "rpm -qpl $(basename "$r"): $(wc -l <"$T/rpm.list") files"; else bad "$(basename "$r") lacks$missing"; fi
		check "$(basename "$r"): /etc/default/sztp-agent is %config(noreplace)" sh -c \
			"rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' '$r' 2>/dev/null | grep -q '^cn /etc/default/sztp-agent\$'"
		check "$(basename "$r"): has %post, %preun, %postun" sh -c \
			"rpm -qp --scripts '$r' 2>/dev/null | grep -c -E '^(postinstall|preuninstall|postuninstall) scriptlet' | grep -qx 3"
	done
else
	skip "rpm not available: the .rpm contents are not checked"
fi

# ---------------------------------------------------------------------------
step "go.mod and go.sum unchanged"
if [ "$(cat go.mod go.sum | sha256sum)" = "$MODSUM" ]; then ok "go.mod/go.sum unchanged"; else bad "go.mod or go.sum changed during the check"; fi

now=$(date +%s)
echo "   ($((now - STEP_START)) s)"
echo "== total $((now - START)) s"
if [ "$FAILS" -gt 0 ]; then
	echo "check-packaging: $FAILS check(s) failed"
	exit 1
fi
echo "check-packaging: all checks passed"
