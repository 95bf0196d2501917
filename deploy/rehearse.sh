#!/usr/bin/env bash
# Rehearses docs/deploy.md on one Linux machine: six hosts made of network namespaces (A to E as
# in the guide, F to replace one), the guide's cluster file and commands run on them step by step,
# a host failure, and a host replaced. Everything it makes is removed when it ends.
#
# Every service runs as the systemd units in deploy/systemd/ run it: root reads the secret into
# its environment (EnvironmentFile=), its data directory is made for or given to its user
# (StateDirectory=), and it runs as that user, an unprivileged one of its own (DynamicUser=): a
# uid that no user or group has, from the range systemd picks from, so no user is made. The
# service reads the cluster file itself, as that user. The guide's own commands that make
# /etc/storectl and install the cluster file and the secret (steps 3 and 4) are taken from
# docs/deploy.md and run as root under umask 077: a mode the guide gets wrong, or leaves to the
# umask, stops the services and fails the rehearsal.
#
# Needs root, `ip` (iproute2) and `setpriv` (util-linux). Usage, from the repository:
#   cargo build --release --locked && sudo deploy/rehearse.sh [path/to/storectl]
set -euo pipefail
# The hosts' own directories (/, /etc, /var/lib) are 755, as on any host.
umask 022

built=$(realpath "${1:-target/release/storectl}")
[[ -x $built ]] || { echo "rehearse: no storectl at $built; build it or pass its path" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "rehearse: network namespaces need root; run it with sudo" >&2; exit 2; }
command -v ip >/dev/null || { echo "rehearse: needs ip (iproute2)" >&2; exit 2; }
command -v setpriv >/dev/null || { echo "rehearse: needs setpriv (util-linux)" >&2; exit 2; }
guide=$(realpath "$(dirname "$0")/../docs/deploy.md")

work=$(mktemp -d /tmp/storectl-rehearse-XXXXXX)
# mktemp makes it root's only; the services' users go through it as they go through /.
chmod 755 "$work"
# Installed as the guide's step 2 installs it, where every user may run it.
storectl=$work/usr/local/bin/storectl
ns=rh$$
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for h in A B C D E F sw; do ip netns del "$ns-$h" 2>/dev/null || true; done
    if [[ ${KEEP:-} ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# on HOST CMD…: runs CMD on HOST, where /etc/storectl and /var/lib are that host's own.
on() {
    local host=$1; shift
    ip netns exec "$ns-$host" env ETC="$work/$host/etc/storectl" LIB="$work/$host/var/lib" "$@"
}
# guide_block N K: the K-th sh block of section "## N." of the guide, with /etc/storectl as each
# host's own ($ETC).
guide_block() {
    local block
    block=$(awk -v section="## $1." -v k="$2" '
        index($0, "## ") == 1 { in_section = index($0, section) == 1 }
        in_section && $0 == "```sh" { if (++n == k) { inside = 1; next } }
        inside && $0 == "```" { exit }
        inside { print }
    ' "$guide" | sed 's|/etc/storectl|"$ETC"|g')
    [[ $block ]] || { echo "rehearse: no sh block $2 in section $1 of $guide" >&2; return 1; }
    printf '%s\n' "$block"
}
# guide_run HOST BLOCK: runs the guide's commands BLOCK as root on HOST, in the directory where
# the cluster file and the secret were written, under a umask that leaves every mode to them.
guide_run() {
    on "$1" env WORK="$work" bash -euc 'umask 077; cd "$WORK"; eval "$1"' _ "$2"
}
# As the unit: root reads the secret into the environment; the service runs as its user ($1).
as_unit='set -a; . "$ETC/secret.env"; set +a; cd /; as=$1; shift
exec setpriv --reuid="$as" --regid="$as" --clear-groups --no-new-privs "$@"'
# unit HOST NAME CMD…: readies service NAME on HOST as systemd readies its unit, and sets $uid
# to the user it runs as: one of its own, picked at its first start (a uid no user or group has,
# from DynamicUser='s range), and the --data-dir in CMD made for that user, or given to it if
# another owns it (a copy from another host), as StateDirectory= does.
next_uid=61184
unit() {
    local host=$1 name=$2 file=$work/$1/$2.uid dir=
    shift 2
    if [[ ! -s $file ]]; then
        while getent passwd "$next_uid" >/dev/null || getent group "$next_uid" >/dev/null; do
            next_uid=$((next_uid + 1))
        done
        echo "$next_uid" >"$file"
        next_uid=$((next_uid + 1))
    fi
    uid=$(cat "$file")
    while (($#)); do [[ $1 == --data-dir ]] && dir=$2; shift; done
    if [[ $dir && ! -d $dir ]]; then
        install -d -o "$uid" -g "$uid" -m 755 "$dir"
    elif [[ $dir && $(stat -c %u:%g "$dir") != "$uid:$uid" ]]; then
        chown -R "$uid:$uid" "$dir"
    fi
}
# serve_on HOST NAME CMD…: starts service NAME on HOST in the background, as its unit would; its
# pid goes to $work/HOST/NAME.pid, its output to NAME.log.
serve_on() {
    local host=$1 name=$2; shift 2
    unit "$host" "$name" "$@"
    # ip, env, bash and setpriv each exec the next, so $! is the service's own pid.
    ip netns exec "$ns-$host" env ETC="$work/$host/etc/storectl" bash -c "$as_unit" _ "$uid" "$@" \
        >>"$work/$host/$name.log" 2>&1 &
    pids+=($!)
    echo "$!" >"$work/$host/$name.pid"
    echo "$*" >"$work/$host/$name.cmd"
    echo "$name on host $host: uid $uid"
}
# stop HOST NAME: stops service NAME on HOST by its pid (SIGTERM) and waits until it has gone.
stop() {
    local pid
    pid=$(cat "$work/$1/$2.pid")
    rm "$work/$1/$2.pid"
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
# restart HOST NAME: stops service NAME on HOST, starts it again with the same command, and
# waits until the cluster is whole again.
restart() {
    local host=$1 name=$2
    stop "$host" "$name"
    read -r -a cmd <"$work/$host/$name.cmd"
    serve_on "$host" "$name" "${cmd[@]}"
    healthy
    echo "restarted $name on host $host"
}
# Fails, showing its log, if a service that should run has exited: where systemd would start it
# again and again, the rehearsal stops.
running() {
    local file pid host
    for file in "$work"/*/*.pid; do
        [[ -e $file ]] || continue
        pid=$(cat "$file")
        kill -0 "$pid" 2>/dev/null && continue
        host=${file%/*}
        echo "rehearse: $(basename "$file" .pid) on host ${host##*/} exited; the end of its log:" >&2
        tail -n 5 "${file%.pid}.log" >&2
        return 1
    done
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
        running || return 1
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
install -D -m 755 "$built" "$storectl"
on A "$storectl" --version

step "3. the cluster file, the same on every host"
# The guide's own cluster file, as a user would write it (with a umask that leaves it theirs).
(umask 077 && sed -n '/^```toml$/,/^```$/p' "$guide" | sed '1d;$d' >"$work/cluster.toml")
cat "$work/cluster.toml"
install_cluster_file=$(guide_block 3 1)
echo "on every host, as the guide says:"
echo "$install_cluster_file"
for h in A B C D E F; do guide_run "$h" "$install_cluster_file"; done

step "4. the secret, the same on every host"
make_secret=$(guide_block 4 1)
install_secret=$(guide_block 4 2)
echo "once, as the guide says:"
echo "$make_secret"
guide_run A "$make_secret"
echo "on every host, as the guide says:"
echo "$install_secret"
for h in A B C D E F; do guide_run "$h" "$install_secret"; done
ls -ld "$work/A/etc/storectl" "$work/A/etc/storectl/"*

step "5. the services, as the units in deploy/systemd/ run them"
serve_on B order-1 "$storectl" serve order --cluster "$work/B/etc/storectl/cluster.toml" --id 1 --data-dir "$work/B/var/lib/storectl-order-1"
serve_on C order-2 "$storectl" serve order --cluster "$work/C/etc/storectl/cluster.toml" --id 2 --data-dir "$work/C/var/lib/storectl-order-2"
serve_on D order-3 "$storectl" serve order --cluster "$work/D/etc/storectl/cluster.toml" --id 3 --data-dir "$work/D/var/lib/storectl-order-3"
serve_on A catalog "$storectl" serve catalog --cluster "$work/A/etc/storectl/cluster.toml" --data-dir "$work/A/var/lib/storectl-catalog"
serve_on A frontend-1 "$storectl" serve frontend --cluster "$work/A/etc/storectl/cluster.toml" --id 1
serve_on E frontend-2 "$storectl" serve frontend --cluster "$work/E/etc/storectl/cluster.toml" --id 2
healthy

step "   a service on the wrong host refuses to start (replica 3 on host B)"
wrong=(serve order --cluster "$work/B/etc/storectl/cluster.toml" --id 3 --data-dir "$work/B/var/lib/storectl-wrong")
unit B wrong "$storectl" "${wrong[@]}"
if on B bash -c "$as_unit" _ "$uid" "$storectl" "${wrong[@]}"; then
    echo "rehearse: it started" >&2; exit 1
fi

step "   the secret is root's: a service's user may not read it"
if on A setpriv --reuid="$(cat "$work/A/catalog.uid")" --regid="$(cat "$work/A/catalog.uid")" \
    --clear-groups --no-new-privs cat "$work/A/etc/storectl/secret.env"; then
    echo "rehearse: the catalog's user read the secret" >&2; exit 1
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
stop C order-2
cp -a "$work/C/var/lib/storectl-order-2" "$work/F/var/lib/"
sed -i 's/10.0.0.3:8010/10.0.0.6:8010/' "$work/cluster.toml"
for h in A B C D E F; do guide_run "$h" "$install_cluster_file"; done
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
