#!/usr/bin/env bash
# Side by side: ipfix-balancer (Recording, UDP) and Debian's nfcapd (nfdump) record the
# same UDP traffic at the same time: two replays of one generated file (the same
# datagrams), one per recorder, started together. Loss is read from the drops column of
# /proc/net/udp, CPU from /proc/PID/stat, our counts from /metrics, nfcapd's from nfdump.
# usage: bench/compare/nfcapd.sh [RATE_MSGS_PER_S] [LOOPS]   (needs nfdump; bin/ from make build)
set -euo pipefail
RATE=${1:-50000}; LOOPS=${2:-1}
cd "$(dirname "$0")/../.."
BIN=${BIN:-$PWD/bin}; OUT=${OUT:-/dev/shm/ipfix-compare}
rm -rf "$OUT"; mkdir -p "$OUT/nf" "$OUT/balancer"
cat > "$OUT/balancer.toml" <<TOML
[metrics]
listen = "127.0.0.1:9741"
[balancer]
control_socket = ""
[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:2055"
proto = "udp"
mode = "Recording"
udp_read_buffer_bytes = 4194304
  [receiver.recording]
  dir = "$OUT/balancer"
  rotate_every = "10s"
TOML
[ -f "$OUT/../ipfix-compare-ff.ipfix" ] || "$BIN/ipfix-gen" -stream fullflow -records 3000000 -out "$OUT/../ipfix-compare-ff.ipfix" >/dev/null
FILE="$OUT/../ipfix-compare-ff.ipfix"
udp_drops() { awk -v p=$(printf '%04X' $1) '$2 ~ ":"p"$" {print $NF}' /proc/net/udp; }
cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }
nfcapd -b 127.0.0.1 -p 2056 -w $OUT/nf -t 10 -B 4194304 -I cmp >$OUT/nfcapd.log 2>&1 &
NF=$!
"$BIN"/ipfix-balancer -config "$OUT/balancer.toml" >$OUT/balancer.log 2>&1 &
BAL=$!
sleep 1
t0n=$(cpu_ticks $NF); t0b=$(cpu_ticks $BAL)
"$BIN"/ipfix-gen -replay "$FILE" -loops $LOOPS -rate $RATE -to udp://127.0.0.1:2055 -progress-every 0 >$OUT/gen-bal.json 2>/dev/null &
G1=$!
"$BIN"/ipfix-gen -replay "$FILE" -loops $LOOPS -rate $RATE -to udp://127.0.0.1:2056 -progress-every 0 >$OUT/gen-nf.json 2>/dev/null &
G2=$!
wait $G1 $G2
sleep 2
t1n=$(cpu_ticks $NF); t1b=$(cpu_ticks $BAL)
dn=$(udp_drops 2056); db=$(udp_drops 2055)
curl -s 127.0.0.1:9741/metrics > $OUT/metrics.txt
kill -TERM $BAL $NF; wait $BAL $NF 2>/dev/null || true
sent=$(grep -o '"messages":[0-9]*' $OUT/gen-bal.json | cut -d: -f2)
sec=$(grep -o '"seconds":[0-9.]*' $OUT/gen-bal.json | cut -d: -f2)
srec=$(grep -o '"records":[0-9]*' $OUT/gen-bal.json | cut -d: -f2)
bmsg=$(grep '^ipfix_balancer_dump_written_messages_total' $OUT/metrics.txt | awk '{print $2}')
brec=$(grep '^ipfix_balancer_dump_written_records_total' $OUT/metrics.txt | awk '{print $2}')
bfiles=$(ls $OUT/balancer/fullflow/*.ipfix | wc -l)
nflows=$(nfdump -R $OUT/nf -I 2>/dev/null | awk '/^Flows:/ {print $2}')
nfiles=$(ls $OUT/nf/nfcapd.2* 2>/dev/null | wc -l)
hz=$(getconf CLK_TCK)
echo "rate=$RATE msg/s sent=$sent msgs ($srec records) in ${sec}s"
echo "ipfix-balancer: written $bmsg msgs / $brec records in $bfiles files; socket drops $db; cpu $(( (t1b-t0b)*1000/hz )) ms"
echo "nfcapd:         stored $nflows flows in $nfiles files; socket drops $dn; cpu $(( (t1n-t0n)*1000/hz )) ms"
