#!/usr/bin/env bash
# npm run test:cluster — statistics shards on a real Slurm: starts munged, slurmctld and slurmd on this machine with a
# generated slurm.conf (everything under a temporary folder, removed at the end), runs the example recipe once on
# this machine, then submits the emitted `merge-studio stats --emit slurm` job array for 4 shards plus its dependent
# reduce job, waits, and checks that the reduced run equals the single-machine run: the same permutations, merged
# weights within 1e-6. Needs root (slurmd) and Debian's slurm-wlm and munge (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

for bin in munged slurmctld slurmd sbatch squeue sinfo; do
  command -v "$bin" >/dev/null || { echo "test:cluster needs Slurm and munge: apt-get install -y slurm-wlm munge ($bin not found)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "test:cluster starts slurmd, which runs as root: run it as root (CI does)" >&2; exit 1; }

T=$(mktemp -d /tmp/merge-studio-slurm.XXXXXX)
chmod 755 "$T"
cleanup() {
  for pid in "$T/slurmd.pid" "$T/slurmctld.pid" "$T/munge/munged.pid"; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  sleep 1
  if [ "${KEEP:-}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
fail() {
  echo "test:cluster FAILED: $*" >&2
  for log in "$T"/slurmctld.log "$T"/slurmd.log "$T"/work/stats/logs/*; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }
  done
  exit 1
}

node scripts/build.mjs >/dev/null

# munge: a fresh key and socket of our own, so that nothing of the machine's is used or changed.
mkdir -m 700 "$T/munge"
head -c 1024 /dev/urandom > "$T/munge/munge.key"
chmod 400 "$T/munge/munge.key"
munged --force --key-file="$T/munge/munge.key" --socket="$T/munge/munge.sock" --pid-file="$T/munge/munged.pid" \
  --log-file="$T/munge/munged.log" --seed-file="$T/munge/munged.seed" 2>/dev/null || fail "munged did not start"

# slurm.conf: this machine is the controller and the only node; free ports chosen by the OS.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {print int($2/1024) - 512}' /proc/meminfo)
mkdir -p "$T/state" "$T/spool"
cat > "$T/slurm.conf" <<EOF
ClusterName=mergestudio
SlurmctldHost=$HOST
SlurmctldPort=$(port)
SlurmdPort=$(port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"
slurmctld || fail "slurmctld did not start"
slurmd || fail "slurmd did not start"
for _ in $(seq 60); do
  sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix)' && break
  sleep 1
done
sinfo -h -o %t | grep -qE '^(idle|mix)' || fail "the node did not come up: $(sinfo -h 2>&1)"

# The example recipe with absolute paths and no evaluation (the check is on statistics, permutations and weights).
mkdir -p "$T/work"
EX="$REPO/examples"
cat > "$T/work/cluster.merge.yaml" <<EOF
version: 1
models:
  anchor: $EX/models/speech-encoder
  other: $EX/models/music-encoder
probe:
  audio: [$EX/probe/speech, $EX/probe/music]
  max_seconds: 20
  segment_seconds: 1
align:
  method: correlation
  permute: [cnn, attention, ffn]
  heads: reorder
merge:
  method: linear
  lambda: 0.5
output: ./out
runtime: { device: cpu, seed: 0 }
EOF
export MERGE_STUDIO_CACHE="$T/cache"
node bin/merge-studio.js run "$T/work/cluster.merge.yaml" --progress plain 2>/dev/null || fail "the single-machine run failed"
mv "$T/work/out" "$T/single"

node bin/merge-studio.js stats "$T/work/cluster.merge.yaml" --emit slurm --shards 4 --cpus 1 --out "$T/work/stats.sbatch"
(cd "$T/work" && bash stats.sbatch) || fail "submitting the emitted script failed"
started=$(date +%s)
while [ -n "$(squeue -h -o %i 2>/dev/null)" ]; do
  [ $(($(date +%s) - started)) -lt 900 ] || fail "jobs still queued after 15 minutes: $(squeue 2>&1)"
  sleep 3
done
[ -f "$T/work/out/model.safetensors" ] || fail "the reduce job wrote no output"
for i in 0 1 2 3; do [ -f "$T/work/stats/shard-$i/manifest.json" ] || fail "shard $i has no manifest"; done

cmp -s "$T/single/permutations.json" "$T/work/out/permutations.json" || fail "permutations differ from the single-machine run"
node -e '
const fs = require("fs");
function read(f) {
  const b = fs.readFileSync(f); const n = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + n).toString()); const out = new Map();
  for (const [k, v] of Object.entries(h)) if (k !== "__metadata__") {
    const [s, e] = v.data_offsets; const bytes = b.subarray(8 + n + s, 8 + n + e);
    out.set(k, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)));
  }
  return out;
}
const a = read(process.argv[1]); const b = read(process.argv[2]); let worst = 0;
for (const [k, x] of a) { const y = b.get(k); if (!y || y.length !== x.length) { console.error("tensor " + k + " differs in shape"); process.exit(1); }
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i])); }
if (a.size !== b.size || worst > 1e-6) { console.error("merged weights differ: max |Δ| " + worst); process.exit(1); }
console.log("merged weights: " + a.size + " tensors, max |Δ| " + worst);
' "$T/single/model.safetensors" "$T/work/out/model.safetensors" || fail "merged weights differ"
echo "test:cluster passed: 4 Slurm array tasks + reduce job = the single-machine run (permutations equal, weights within 1e-6)"
