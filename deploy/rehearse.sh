#!/usr/bin/env bash
# Rehearses docs/deploy.md on one Linux machine: six hosts made of network namespaces (A to E as
# in the guide, F to replace one), the guide's cluster file and commands run on them step by step,
# a host failure, and a host replaced. Everything it makes is removed when it ends.
#
# Needs root and `ip` (iproute2). Usage, from the repository:
#   cargo build --release --locked && sudo deploy/rehearse.sh [path/to/storectl]
set -euo pipefail

storectl=$(realpath "${1:-target/release/storectl}")
[[ -x $storectl ]] || { echo "rehearse: no storectl at $storectl; build it or pass its path" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "rehearse: network namespaces need root; run it with sudo" >&2; exit 2; }
command -v ip >/dev/null || { echo "rehearse: needs ip (iproute2)" >&2; exit 2; }

work=$(mktemp -d /tmp/storectl-rehearse-XXXXXX)
ns=rh$$
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for h in A B C D E F sw; do ip netns del "$ns-$h" 2>/dev/null || true; done
    [[ ${KEEP:-} ]] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# on HOST CMD…: runs CMD on HOST, where /etc/storectl and /var/lib are that host's own.
on() {
    local host=$1; shift
    ip netns exec "$ns-$host" env ETC="$work/$host/etc/storectl" LIB="$work/$host/var/lib" "$@"
}
# serve_on HOST NAME CMD…: starts service NAME on HOST in the background, as the guide's
# "without systemd" commands do; its pid goes to $work/HOST/NAME.pid, its output to NAME.log.
serve_on() {
    local host=$1 name=$2; shift 2
    # ip, env and bash each exec the next, so $! is the service's own pid.
    ip netns exec "$ns-$host" env ETC="$work/$host/etc/storectl" \
        bash -c 'set -a; . "$ETC/secret.env"; set +a; exec "$@"' _ "$@" \
        >>"$work/$host/$name.log" 2>&1 &
    pids+=($!)
    echo "$!" >"$work/$host/$name.pid"
    echo "$*" >"$work/$host/$name.cmd"
}
# restart HOST NAME: stops service NAME on HOST by its pid (SIGTERM), starts it again with the
# same command, and waits until the cluster is whole again.
restart() {
    local host=$1 name=$2 pid
    pid=$(cat "$work/$host/$name.pid")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    read -r -a cmd <"$work/$host/$name.cmd"
    serve_on "$host" "$name" "${cmd[@]}"
    healthy
    echo "restarted $name on host $host"
}
# The replica that leads, as `storectl status --cluster` says.
leader() {
    check status --cluster "$work/A/etc/storectl/cluster.toml" --json | tr -d ' \n' |
        grep -o '"name":"order-[0-9]"[^}]*"role":"leader"' | grep -o 'order-[0-9]' | head -1
}
check() {
    on A bash -c 'set -a; . "$ETC/secret.env"; set +a; exec "$@"' _ "$storectl" "$@"
}
# Waits until `storectl status` from host A exits 0: every service answers and a replica leads.
healthy() {
    for _ in $(seq 100); do
        on A "$storectl" status --cluster "$work/A/etc/storectl/cluster.toml" >/dev/null && return 0
        sleep 0.2
    done
    on A "$storectl" status --cluster "$work/A/etc/storectl/cluster.toml" || true
    echo "rehearse: the cluster did not become healthy" >&2
    return 1
}

step "1. hosts A-F as network namespaces on one bridge, addresses 10.0.0.1-6"
ip netns add "$ns-sw"
ip -n "$ns-sw" link add br0 type bridge && ip -n "$ns-sw" link set br0 up
i=0
for h in A B C D E F; do
    i=$((i + 1))
    ip netns add "$ns-$h"
    ip link add "p$h" netns "$ns-sw" type veth peer name eth0 netns "$ns-$h"
    ip -n "$ns-sw" link set "p$h" master br0 up
    ip -n "$ns-$h" addr add "10.0.0.$i/24" dev eth0
    ip -n "$ns-$h" link set eth0 up && ip -n "$ns-$h" link set lo up
    mkdir -p "$work/$h/etc/storectl" "$work/$h/var/lib"
done
echo "ok"

step "2. storectl on every host"
on A "$storectl" --version

step "3. the cluster file, the same on every host"
# The guide's own cluster file, as a user would copy it.
guide="$(dirname "$0")/../docs/deploy.md"
sed -n '/^```toml$/,/^```$/p' "$guide" | sed '1d;$d' >"$work/cluster.toml"
for h in A B C D E F; do cp "$work/cluster.toml" "$work/$h/etc/storectl/cluster.toml"; done
cat "$work/cluster.toml"

step "4. the secret, the same on every host"
on A bash -c 'echo "STORECTL_CLUSTER_SECRET=$(head -c 24 /dev/urandom | base64 | tr -d "/+=")" > "$ETC/secret.env"; chmod 600 "$ETC/secret.env"'
for h in B C D E F; do cp "$work/A/etc/storectl/secret.env" "$work/$h/etc/storectl/"; done

step "5. the services, without systemd"
serve_on B order-1 "$storectl" serve order --cluster "$work/B/etc/storectl/cluster.toml" --id 1 --data-dir "$work/B/var/lib/storectl-order-1"
serve_on C order-2 "$storectl" serve order --cluster "$work/C/etc/storectl/cluster.toml" --id 2 --data-dir "$work/C/var/lib/storectl-order-2"
serve_on D order-3 "$storectl" serve order --cluster "$work/D/etc/storectl/cluster.toml" --id 3 --data-dir "$work/D/var/lib/storectl-order-3"
serve_on A catalog "$storectl" serve catalog --cluster "$work/A/etc/storectl/cluster.toml" --data-dir "$work/A/var/lib/storectl-catalog"
serve_on A frontend-1 "$storectl" serve frontend --cluster "$work/A/etc/storectl/cluster.toml" --id 1
serve_on E frontend-2 "$storectl" serve frontend --cluster "$work/E/etc/storectl/cluster.toml" --id 2
healthy

step "   a service on the wrong host refuses to start (replica 3 on host B)"
if on B bash -c 'set -a; . "$ETC/secret.env"; set +a; exec "$@"' _ \
    "$storectl" serve order --cluster "$work/B/etc/storectl/cluster.toml" --id 3 --data-dir "$work/B/var/lib/wrong"; then
    echo "rehearse: it started" >&2; exit 1
fi

step "6. check the cluster from host A"
check status --cluster "$work/A/etc/storectl/cluster.toml"
on A curl -s http://10.0.0.5:8000/products/tux && echo
on A "$storectl" client --frontend 10.0.0.1:8000 --p 0.5 --iterations 100 --clients 4
on A "$storectl" client --frontend 10.0.0.5:8000 --p 0.5 --iterations 100 --clients 4
check verify-logs --cluster "$work/A/etc/storectl/cluster.toml" --stock

step "7. the leader's host fails: its cable is pulled, clients go on"
leader=$(leader)
host=$(case $leader in order-1) echo B ;; order-2) echo C ;; order-3) echo D ;; esac)
echo "$leader leads, on host $host"
ip -n "$ns-sw" link set "p$host" down
on A "$storectl" client --frontend 10.0.0.5:8000 --p 1 --iterations 50 --clients 2
check status --cluster "$work/A/etc/storectl/cluster.toml" || true
ip -n "$ns-sw" link set "p$host" up
healthy
check verify-logs --cluster "$work/A/etc/storectl/cluster.toml" --stock

step "8. replace host C (replica 2) with host F, its data directory moved"
pid=$(cat "$work/C/order-2.pid")
kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
cp -a "$work/C/var/lib/storectl-order-2" "$work/F/var/lib/"
sed -i 's/10.0.0.3:8010/10.0.0.6:8010/' "$work/cluster.toml"
for h in A B C D E F; do cp "$work/cluster.toml" "$work/$h/etc/storectl/cluster.toml"; done
serve_on F order-2 "$storectl" serve order --cluster "$work/F/etc/storectl/cluster.toml" --id 2 --data-dir "$work/F/var/lib/storectl-order-2"
healthy
leader=$(leader)
echo "restarting every other service one at a time: front ends, catalog, followers, $leader last"
restart E frontend-2
restart A frontend-1
restart A catalog
for replica in order-1 order-3 order-2; do
    [[ $replica == "$leader" ]] && continue
    case $replica in order-1) restart B order-1 ;; order-3) restart D order-3 ;; esac
done
case $leader in order-1) restart B order-1 ;; order-3) restart D order-3 ;; order-2) restart F order-2 ;; esac
on A "$storectl" client --frontend 10.0.0.1:8000 --p 1 --iterations 50 --clients 2
for _ in $(seq 50); do
    check verify-logs --cluster "$work/A/etc/storectl/cluster.toml" --stock >/dev/null && break
    sleep 0.2
done
check status --cluster "$work/A/etc/storectl/cluster.toml"
check verify-logs --cluster "$work/A/etc/storectl/cluster.toml" --stock

step "done: every step of docs/deploy.md ran on six namespaced hosts"
