#!/usr/bin/env bash
# Boot-image download benchmark: the real agent against references, in one
# run, alternating.
#
#   tools/bench.sh [SIZE...]        SIZE as head -c takes it; default 64M 1G 2G
#
# Environment: BENCH_RUNS (default 5) runs of each command per size;
# BENCH_DIR (default a fresh directory under /tmp) for images, state and
# tee copies, removed at the end; BENCH_ADDR (default 127.0.0.1:18443).
#
# Server: the project's own lab bootstrap server (Go, cmd/sztp-lab), which
# serves the boot image file over HTTPS (TLS 1.3, client certificate
# required, Range supported via net/http ServeContent) on loopback. All four
# commands fetch the same URL from it, presenting the same IDevID:
#   (a)  curl -s URL | openssl dgst -sha256                  network + hash
#   (a') curl -s URL | tee FILE | openssl dgst -sha256       + write (no fsync)
#   (b)  sztp-agent run --dry-run                            bootstrap + download + hash + stage
#   (b') sztp-agent run --once, hooks `true`                 the same, up to the install command
# (b) and (b') are whole agent runs, bootstrap exchange included, and end
# with the one fsync the agent needs before renaming a verified image; the
# references pay neither. The fsync time is printed separately (from the
# agent's log). Peak RSS is the agent's, from /usr/bin/time.
#
# Then a resume: the agent is killed (SIGKILL) mid-download, run again,
# and the server's sent-byte count (wchar in /proc/PID/io) for that second
# run is compared with the bytes that were missing.
#
# Finally the CPU time of a whole bootstrap without an image with signed
# data (voucher, owner certificate, CMS verification) against the same
# bootstrap with unsigned data from a trusted server, alternating.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-5}
addr=${BENCH_ADDR:-127.0.0.1:18443}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(64M 1G 2G)

for tool in curl openssl /usr/bin/time go; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 1; }
done

bytes_of() { numfmt --from=iec "${1%B}"; }

own_dir=
if [ -n "${BENCH_DIR:-}" ]; then
  dir=$BENCH_DIR; mkdir -p "$dir"
else
  dir=$(mktemp -d /tmp/sztp-bench.XXXXXX); own_dir=1
fi
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$dir/images" "$dir/state" "$dir/tee.img" "$dir/lab" "$dir/bin" "$dir"/*.txt "$dir"/*.log "$dir"/*.out "$dir"/*.yaml "$dir"/ready.env
  if [ -n "$own_dir" ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT

# Free space: the served image, the agent's staged copy (or the tee copy)
# and a partial from the resume test exist at once at worst.
largest=0
for s in "${sizes[@]}"; do b=$(bytes_of "$s"); [ "$b" -gt "$largest" ] && largest=$b; done
need=$((3 * largest + (256 << 20)))
avail=$(df --output=avail -B1 "$dir" | tail -1 | tr -d ' ')
if [ "$avail" -lt "$need" ]; then
  echo "bench: $dir has $(numfmt --to=iec "$avail") free, needs $(numfmt --to=iec "$need")" >&2
  exit 1
fi

echo "== building (CGO_ENABLED=0, -trimpath -ldflags '-s -w', as make build)"
mkdir -p "$dir/bin" "$dir/images"
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$dir/bin/sztp-agent" ./cmd/sztp-agent
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$dir/bin/sztp-lab" ./cmd/sztp-lab
agent=$dir/bin/sztp-agent
binsize=$(stat -c %s "$agent")
echo "stripped sztp-agent: $binsize bytes ($(numfmt --to=iec --format=%.1f "$binsize"))"
echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3), $(openssl version | cut -d' ' -f1-2), $(curl --version | head -1 | cut -d' ' -f1-2)"
echo "runs per command and size: $runs"

# now_us prints the wall clock in microseconds.
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }

start_server() { # image path
  cat >"$dir/def.yaml" <<EOF
reporting-level: verbose
content-type: json
onboarding:
  boot-image:
    os-name: BenchOS
    os-version: "2.0"
    image: $1
EOF
  rm -f "$dir/ready.env"
  "$dir/bin/sztp-lab" --dir "$dir/lab" --addr "$addr" --serial-number SN-BENCH \
    --definition "$dir/def.yaml" --ready-file "$dir/ready.env" >"$dir/server.out" 2>"$dir/server.log" &
  server=$!
  for _ in $(seq 1 300); do [ -s "$dir/ready.env" ] && break; sleep 0.1; done
  [ -s "$dir/ready.env" ] || { echo "bench: lab server did not start" >&2; cat "$dir/server.log" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$dir/ready.env"
}

stop_server() {
  kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=
}

server_wchar() { awk '/^wchar:/ {print $2}' "/proc/$server/io"; }

agent_args() { # state dir
  echo --bootstrap-url "$URL" --trust-anchor "$TRUST_ANCHOR" \
    --idevid-cert "$IDEVID_CERT" --idevid-key "$IDEVID_KEY" \
    --os-name BenchOS --os-version 1.0 --state-dir "$1" --ssh-host-key-dir "$dir/no-ssh-keys" \
    --image-install-command true --config-apply-command true --reboot-command true
}

# run_ref KIND: (a) or (a'); prints the wall time in µs.
run_ref() {
  local t0 t1 out tee=cat
  [ "$1" = aa ] && tee="tee $dir/tee.img"
  sync
  t0=$(now_us)
  out=$(curl -sS --cacert "$TRUST_ANCHOR" --cert "$IDEVID_CERT" --key "$IDEVID_KEY" "$image_url" | $tee | openssl dgst -sha256 -r)
  t1=$(now_us)
  [ "${out%% *}" = "$sum" ] || { echo "bench: ($1) got digest ${out%% *}, want $sum" >&2; exit 1; }
  rm -f "$dir/tee.img"
  echo $((t1 - t0))
}

# run_agent KIND: (b) dry run or (b') real run; prints "µs rssKiB fsync".
run_agent() {
  local t0 t1 mode=(run --dry-run) rc state=$dir/state
  [ "$1" = bb ] && mode=(run --once)
  rm -rf "$state"
  sync
  t0=$(now_us)
  set +e
  # shellcheck disable=SC2046
  /usr/bin/time -f %M -o "$dir/rss.txt" "$agent" "${mode[@]}" $(agent_args "$state") >"$dir/agent.out" 2>"$dir/agent.log"
  rc=$?
  set -e
  t1=$(now_us)
  if [ $rc -ne 0 ] || ! grep -q "sha-256 .* verified" "$dir/agent.out"; then
    echo "bench: agent ($1) failed, exit $rc" >&2; cat "$dir/agent.out" "$dir/agent.log" >&2; exit 1
  fi
  local fsync
  fsync=$(grep -o 'msg="boot image verified and staged".* fsync=[^ ]*' "$dir/agent.log" | sed 's/.*fsync=//')
  rm -rf "$state"
  echo "$((t1 - t0)) $(tail -1 "$dir/rss.txt") ${fsync:-?}"
}

median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# to_ms converts a Go duration (1.5s, 120.3ms, 900µs) to milliseconds.
to_ms() { awk '{d=$1; if (d ~ /ms$/) {sub(/ms$/,"",d); print d} else if (d ~ /µs$/) {sub(/µs$/,"",d); print d/1000} else if (d ~ /s$/) {sub(/s$/,"",d); print d*1000} else print "nan"}'; }

summary=()
for size in "${sizes[@]}"; do
  n=$(bytes_of "$size")
  img=$dir/images/bench-$size.img
  echo
  echo "== $size ($n bytes): creating the image"
  head -c "$n" /dev/urandom >"$img"
  sum=$(sha256sum "$img" | cut -d' ' -f1)
  start_server "$img"
  image_url=$URL/images/$(basename "$img")
  run_ref a >/dev/null # warm-up: the served file in the page cache, TLS code paths hot
  : >"$dir/a.txt"; : >"$dir/aa.txt"; : >"$dir/b.txt"; : >"$dir/bb.txt"; : >"$dir/fsync.txt"; : >"$dir/rss.txt.all"
  for i in $(seq 1 "$runs"); do
    # Alternate the order so drift (page cache, thermal, noise) hits both sides.
    if [ $((i % 2)) -eq 1 ]; then order=(a b aa bb); else order=(b a bb aa); fi
    line="run $i:"
    for k in "${order[@]}"; do
      case $k in
        a | aa) us=$(run_ref "$k"); echo "$us" >>"$dir/$k.txt"; line+=" $k=$(awk -v u="$us" 'BEGIN{printf "%.3fs", u/1e6}')" ;;
        b | bb)
          read -r us rss fs < <(run_agent "$k")
          echo "$us" >>"$dir/$k.txt"; echo "$k $rss" >>"$dir/rss.txt.all"; echo "$fs" | to_ms >>"$dir/fsync.txt"
          line+=" $k=$(awk -v u="$us" 'BEGIN{printf "%.3fs", u/1e6}')(rss ${rss}KiB fsync $fs)" ;;
      esac
    done
    echo "$line" | sed "s/ aa=/ a'=/; s/ bb=/ b'=/"
  done
  ma=$(median <"$dir/a.txt"); maa=$(median <"$dir/aa.txt"); mb=$(median <"$dir/b.txt"); mbb=$(median <"$dir/bb.txt")
  mfs=$(median <"$dir/fsync.txt")
  rss_b=$(awk '$1=="b" {print $2}' "$dir/rss.txt.all" | sort -n | tail -1)
  rss_bb=$(awk '$1=="bb" {print $2}' "$dir/rss.txt.all" | sort -n | tail -1)
  res=$(awk -v s="$size" -v a="$ma" -v aa="$maa" -v b="$mb" -v bb="$mbb" -v f="$mfs" -v r1="$rss_b" -v r2="$rss_bb" -v n="$n" 'BEGIN {
    printf "%-5s (a) %7.3fs  (b) %7.3fs  (b)/(a) %.3f   (a\x27) %7.3fs  (b\x27) %7.3fs  (b\x27)/(a\x27) %.3f   agent %4.0f MB/s  fsync %6.1fms (%.1f%% of b\x27)  peak RSS b %5.1f MiB, b\x27 %5.1f MiB",
      s, a/1e6, b/1e6, b/a, aa/1e6, bb/1e6, bb/aa, n/(b/1e6)/1e6, f, f*1000/bb*100, r1/1024, r2/1024 }')
  echo "median: $res"
  summary+=("$res")

  if [ "$n" -eq "$largest" ]; then
    echo
    echo "== resume at $size: kill -9 the agent mid-download, run it again"
    state=$dir/state; rm -rf "$state"
    # shellcheck disable=SC2046
    "$agent" run --once $(agent_args "$state") >"$dir/agent.out" 2>"$dir/agent.log" &
    victim=$!
    partial=0
    for _ in $(seq 1 3000); do
      partial=$(stat -c %s "$state"/images/.partial-???????????????? 2>/dev/null || echo 0)
      [ "$partial" -ge $((n * 2 / 5)) ] && break
      sleep 0.01
    done
    kill -9 "$victim"; wait "$victim" 2>/dev/null || true
    partial=$(stat -c %s "$state"/images/.partial-???????????????? 2>/dev/null || echo 0)
    echo "killed the agent with $partial of $n bytes in the partial file"
    before=$(server_wchar)
    # shellcheck disable=SC2046
    "$agent" run --once $(agent_args "$state") >"$dir/agent.out" 2>"$dir/agent.log" || { cat "$dir/agent.log"; exit 1; }
    after=$(server_wchar)
    grep -q "sha-256 .* verified" "$dir/agent.out" || { echo "bench: resumed run did not verify" >&2; exit 1; }
    grep -o 'msg="resuming partial download".*' "$dir/agent.log" | sed 's/^/agent log: /'
    grep 'msg="image served"' "$dir/server.log" | tail -1 | sed 's/.*msg=/server log: /'
    sent=$((after - before)) missing=$((n - partial))
    echo "server sent $sent bytes (TLS records, bootstrap exchange and reports included) for the resumed run; $missing bytes were missing; overhead $((sent - missing)) bytes; a full image would be $n"
    rm -rf "$state"
  fi
  stop_server
  rm -f "$img"
done

# Signed bootstrap without an image: the CPU the agent spends on a whole
# bootstrap when the data is signed (voucher, owner certificate, CMS
# signatures, nonce) against the same bootstrap with unsigned data from a
# trusted server, measured in the same run, alternating.
echo
echo "== signed bootstrap, no image: agent CPU time (user+sys), signed vs unsigned"
bootstrap_cpu() { # signed|unsigned; prints CPU µs per bootstrap
  # /usr/bin/time counts in 10 ms steps, so each sample is a batch of
  # bootstraps (a fresh state dir each) timed together.
  local batch=20
  cat >"$dir/batch.sh" <<EOS
#!/bin/sh
set -e
i=0
while [ \$i -lt $batch ]; do
  rm -rf "$dir/state"
  "$agent" run --once --bootstrap-url "$URL" --trust-anchor "$TRUST_ANCHOR" \\
    --voucher-trust-anchor "$VOUCHER_TRUST_ANCHOR" --idevid-cert "$IDEVID_CERT" --idevid-key "$IDEVID_KEY" \\
    --os-name BenchOS --os-version 2.0 --state-dir "$dir/state" --run-dir "$dir/run" --ssh-host-key-dir "$dir/no-ssh-keys" \\
    --config-apply-command true >"$dir/agent.out" 2>"$dir/agent.log"
  i=\$((i + 1))
done
EOS
  chmod +x "$dir/batch.sh"
  /usr/bin/time -f "%U %S" -o "$dir/cpu.txt" "$dir/batch.sh" || { echo "bench: $1 bootstrap failed" >&2; cat "$dir/agent.log" >&2; exit 1; }
  if [ "$1" = signed ] && ! grep -q "signed by the owner certificate: signature verified" "$dir/agent.out"; then
    echo "bench: the signed bootstrap did not verify signed data" >&2; exit 1
  fi
  rm -rf "$dir/state"
  awk -v n=$batch '{printf "%d\n", ($1 + $2) * 1000000 / n}' "$dir/cpu.txt"
}
start_cfg_server() { # signed|unsigned
  printf 'reporting-level: minimal\nonboarding:\n  configuration: cfg.txt\n  configuration-handling: merge\n' >"$dir/def.yaml"
  [ "$1" = signed ] && printf 'signed:\n  content-type: json\n' >>"$dir/def.yaml"
  echo "hostname bench" >"$dir/cfg.txt"
  rm -f "$dir/ready.env"
  "$dir/bin/sztp-lab" --dir "$dir/lab" --addr "$addr" --serial-number SN-BENCH \
    --definition "$dir/def.yaml" --ready-file "$dir/ready.env" >"$dir/server.out" 2>"$dir/server.log" &
  server=$!
  for _ in $(seq 1 300); do [ -s "$dir/ready.env" ] && break; sleep 0.1; done
  # shellcheck disable=SC1091
  . "$dir/ready.env"
}
sig=() uns=()
for _ in $(seq 1 $((runs * 2))); do
  for kind in signed unsigned; do
    start_cfg_server "$kind"
    v=$(bootstrap_cpu "$kind")
    stop_server
    if [ "$kind" = signed ]; then sig+=("$v"); else uns+=("$v"); fi
  done
done
ms=$(printf '%s\n' "${sig[@]}" | median) mu=$(printf '%s\n' "${uns[@]}" | median)
line=$(awk -v s="$ms" -v u="$mu" 'BEGIN {printf "bootstrap without image, agent CPU per run: signed %.1f ms, unsigned %.1f ms, signed/unsigned %.2f (medians of %d batches of 20)", s/1000, u/1000, (u > 0 ? s / u : 0), '$((runs * 2))'}')
echo "$line"
summary+=("$line")

echo
echo "== summary (medians of $runs; stripped binary $binsize bytes)"
for s in "${summary[@]}"; do echo "$s"; done
