#!/usr/bin/env bash
# Rehearses docs/deploy.md on one Linux machine: eight hosts made of network namespaces (A to C as
# in the guide, D to replace one, X an operator's machine, E to replace D once its disk is lost,
# F and G to grow the order group to five), the guide's cluster file and commands run on them step
# by step, each host cut off in turn under load, a host moved, a host whose disk was wiped
# replaced, and the order group grown to five while clients order. The services speak mutual TLS
# with certificates made and installed as the guide says. Everything it makes is removed when it
# ends (the group storectl-tls too, if it made it).
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
# The guide makes the group that may read the services' keys; the hosts share this machine's.
group_made=
getent group storectl-tls >/dev/null || group_made=1
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for h in A B C D X E F G sw; do ip netns del "$ns-$h" 2>/dev/null || true; done
    if [[ $group_made ]]; then groupdel storectl-tls 2>/dev/null || true; fi
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
    on "$1" env WORK="$work" PATH="$work/usr/local/bin:$PATH" \
        bash -euc 'umask 077; cd "$WORK"; eval "$1"' _ "$2"
}
# As the unit: root reads the secret into the environment; the service runs as its user ($1),
# in the group that may read the host's keys (SupplementaryGroups=).
as_unit='set -a; . "$ETC/secret.env"; set +a; cd /; as=$1; shift
exec setpriv --reuid="$as" --regid="$as" --groups=storectl-tls --no-new-privs "$@"'
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
    # A new cluster's first start only: a restarted replica starts from its own data.
    local args=() a
    for a in "${cmd[@]}"; do [[ $a == --init ]] || args+=("$a"); done
    serve_on "$host" "$name" "${args[@]}"
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
# The replica of group $1 (order or catalog) that leads, as `storectl status --cluster` says
# (asked again while an election is under way).
leader() {
    local found
    for _ in $(seq 50); do
        found=$( (check status --cluster "$work/X/etc/storectl/cluster.toml" --json || true) |
            tr -d ' \n' | grep -o "\"name\":\"$1-[0-9]\"[^}]*\"role\":\"leader\"" |
            grep -o "$1-[0-9]" | head -1 || true)
        [[ $found ]] && { echo "$found"; return 0; }
        sleep 0.2
    done
    echo "rehearse: no $1 replica leads" >&2
    return 1
}
# The id of the services host $1 runs at first: 1 on A, 2 on B, 3 on C.
host_id() {
    case $1 in A) echo 1 ;; B) echo 2 ;; C) echo 3 ;; esac
}
# The host a replica runs on: replica N of either group on the Nth of A, B, C (or D, once it
# has replaced B).
host_of() {
    local n=${1##*-}
    case $n in 1) echo A ;; 2) echo "${B:-B}" ;; 3) echo C ;; esac
}
# Runs storectl on X, the operator's machine, with the secret in its environment.
check() {
    on X bash -c 'set -a; . "$ETC/secret.env"; set +a; exec "$@"' _ "$storectl" "$@"
}
# Waits until `storectl status` from X exits 0: every service answers and each group leads.
healthy() {
    for _ in $(seq 100); do
        running || return 1
        on X "$storectl" status --cluster "$work/X/etc/storectl/cluster.toml" >/dev/null && return 0
        sleep 0.2
    done
    on X "$storectl" status --cluster "$work/X/etc/storectl/cluster.toml" || true
    echo "rehearse: the cluster did not become healthy" >&2
    return 1
}

step "1. hosts A, B, C, a spare D, an operator's X and spares E, F, G as network namespaces on one bridge"
ip netns add "$ns-sw"
ip -n "$ns-sw" link add br0 type bridge && ip -n "$ns-sw" link set br0 up
i=0
for h in A B C D X E F G; do
    i=$((i + 1))
    ip netns add "$ns-$h"
    ip link add "p$h" netns "$ns-sw" type veth peer name eth0 netns "$ns-$h"
    ip -n "$ns-sw" link set "p$h" master br0 up
    ip -n "$ns-$h" addr add "10.0.0.$i/24" dev eth0
    ip -n "$ns-$h" link set eth0 up && ip -n "$ns-$h" link set lo up
    mkdir -p "$work/$h/etc/storectl" "$work/$h/var/lib"
done
echo "ok: A 10.0.0.1, B .2, C .3, D .4, X .5, E .6, F .7, G .8"

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
for h in A B C D X E F G; do guide_run "$h" "$install_cluster_file"; done

step "4. the secret, the same on every host"
make_secret=$(guide_block 4 1)
install_secret=$(guide_block 4 2)
echo "once, as the guide says:"
echo "$make_secret"
guide_run A "$make_secret"
echo "on every host, as the guide says:"
echo "$install_secret"
for h in A B C D X E F G; do guide_run "$h" "$install_secret"; done
make_certs=$(guide_block 4 3)
install_certs=$(guide_block 4 4)
# install_certs_on HOST N: the guide's installation of the certificates on HOST, which runs the
# services with id N (0: none, only the CA and the tools').
install_certs_on() {
    guide_run "$1" "$(printf '%s\n' "$install_certs" | sed "s/^n=1 /n=$2 /")"
}
# certify NAME…: new certificates for services NAME…, made where the CA is, as the guide says.
certify() {
    local name
    for name in "$@"; do guide_run A "storectl certs add $name --cluster cluster.toml --force"; done
}
echo "the certificates, once, as the guide says:"
echo "$make_certs"
guide_run A "$make_certs"
echo "installed on each host, as the guide says:"
echo "$install_certs"
for h in A B C; do install_certs_on "$h" "$(host_id "$h")"; done
for h in D X E F G; do install_certs_on "$h" 0; done
ls -ld "$work/A/etc/storectl" "$work/A/etc/storectl/"* "$work/A/etc/storectl/tls/"*

# start_host HOST N: the services of host HOST, with id N, as the units in deploy/systemd/ run them.
start_host() {
    local h=$1 n=$2 file=$work/$1/etc/storectl/cluster.toml
    serve_on "$h" "catalog-$n" "$storectl" serve catalog --cluster "$file" --id "$n" --data-dir "$work/$h/var/lib/storectl-catalog-$n" --init
    serve_on "$h" "order-$n" "$storectl" serve order --cluster "$file" --id "$n" --data-dir "$work/$h/var/lib/storectl-order-$n" --init
    serve_on "$h" "frontend-$n" "$storectl" serve frontend --cluster "$file" --id "$n"
}

step "5. the services, as the units in deploy/systemd/ run them"
# A catalog.csv in each catalog's data directory, as the guide allows: the built-in toys with
# enough stock that clients keep ordering, not find them sold out, through every later step.
for n in 1 2 3; do
    dir=$work/$(host_of "$n")/var/lib/storectl-catalog-$n
    install -d "$dir"
    sed '2,$ s/,[0-9]*$/,100000/' "$(dirname "$guide")/../data/catalog.csv" >"$dir/catalog.csv"
done
start_host A 1
start_host B 2
start_host C 3
healthy

step "   a service on the wrong host refuses to start (order replica 3 on host B)"
wrong=(serve order --cluster "$work/B/etc/storectl/cluster.toml" --id 3 --data-dir "$work/B/var/lib/storectl-wrong")
unit B wrong "$storectl" "${wrong[@]}"
if on B bash -c "$as_unit" _ "$uid" "$storectl" "${wrong[@]}"; then
    echo "rehearse: it started" >&2; exit 1
fi

step "   the secret is root's: a service's user may not read it"
if on A setpriv --reuid="$(cat "$work/A/catalog-1.uid")" --regid="$(cat "$work/A/catalog-1.uid")" \
    --clear-groups --no-new-privs cat "$work/A/etc/storectl/secret.env"; then
    echo "rehearse: the catalog's user read the secret" >&2; exit 1
fi

step "6. check the cluster from X"
check status --cluster "$work/X/etc/storectl/cluster.toml"
on X curl -s http://10.0.0.2:8000/products/tux && echo
on X "$storectl" client --frontend 10.0.0.1:8000 --p 0.5 --iterations 100 --clients 4
on X "$storectl" client --frontend 10.0.0.3:8000 --p 0.5 --iterations 100 --clients 4
check verify-logs --cluster "$work/X/etc/storectl/cluster.toml" --stock

step "   a host with a certificate of another CA (and the secret) is refused"
forged=$work/X/forged
mkdir -p "$forged" && cp "$work/cluster.toml" "$forged/cluster.toml"
on X "$storectl" certs init --cluster "$forged/cluster.toml" --out "$forged/tls" >/dev/null
# It even trusts the cluster's CA: only its own certificate is wrong.
cp "$work/tls/ca.pem" "$forged/tls/ca.pem"
if check verify-logs --cluster "$forged/cluster.toml" >"$work/X/forged.log" 2>&1; then
    echo "rehearse: a host with another CA's certificate read the orders" >&2; exit 1
fi
check status --cluster "$work/X/etc/storectl/cluster.toml" | grep "signed by another CA" ||
    { echo "rehearse: status does not show the refusal" >&2; exit 1; }

step "7. each host fails in turn, leaders' hosts first: its cable is pulled, clients go on"
# Clients use a front end on a host that stays up; a client error fails the rehearsal.
order_host=$(host_of "$(leader order)")
catalog_host=$(host_of "$(leader catalog)")
for host in $(printf '%s\n' "$order_host" "$catalog_host" A B C | awk '!seen[$0]++'); do
    echo "-- host $host cut off (the order leader is on $order_host, the catalog leader on $catalog_host)"
    ip -n "$ns-sw" link set "p$host" down
    survivor=$(case $host in A) echo 10.0.0.2 ;; *) echo 10.0.0.1 ;; esac)
    on X "$storectl" client --frontend "$survivor:8000" --p 1 --iterations 40 --clients 2
    ip -n "$ns-sw" link set "p$host" up
    healthy
    order_host=$(host_of "$(leader order)")
    catalog_host=$(host_of "$(leader catalog)")
done
for _ in $(seq 50); do
    check verify-logs --cluster "$work/X/etc/storectl/cluster.toml" --stock >/dev/null && break
    sleep 0.2
done
check verify-logs --cluster "$work/X/etc/storectl/cluster.toml" --stock

step "8. replace host B with host D, its data directories moved (its disk survives)"
for name in frontend-2 order-2 catalog-2; do stop B "$name"; done
cp -a "$work/B/var/lib/storectl-catalog-2" "$work/B/var/lib/storectl-order-2" "$work/D/var/lib/"
sed -i 's/10\.0\.0\.2:/10.0.0.4:/' "$work/cluster.toml"
for h in A B C D X E F G; do guide_run "$h" "$install_cluster_file"; done
# Their certificates named B: new ones name D.
certify catalog-2 order-2 frontend-2
install_certs_on D 2
start_host D 2
B=D
healthy
echo "restarting every other service one at a time: front ends, then each group's followers, its leader last"
restart A frontend-1
restart C frontend-3
for group in catalog order; do
    leader=$(leader "$group")
    for n in 1 3; do
        [[ $group-$n == "$leader" ]] && continue
        restart "$(host_of "$n")" "$group-$n"
    done
    if [[ $leader != "$group-2" ]]; then restart "$(host_of "$leader")" "$leader"; fi
done
on X "$storectl" client --frontend 10.0.0.4:8000 --p 1 --iterations 50 --clients 2
for _ in $(seq 50); do
    check verify-logs --cluster "$work/X/etc/storectl/cluster.toml" --stock >/dev/null && break
    sleep 0.2
done
check status --cluster "$work/X/etc/storectl/cluster.toml"
check verify-logs --cluster "$work/X/etc/storectl/cluster.toml" --stock

# Clients order through host A's front end until told to stop; any client error is recorded.
clients_start() {
    rm -f "$work/clients-stop" "$work/clients-failed"
    (
        while [[ ! -e $work/clients-stop ]]; do
            on X "$storectl" client --frontend 10.0.0.1:8000 --p 1 --iterations 40 --clients 2 \
                >>"$work/X/clients.log" 2>&1 || touch "$work/clients-failed"
        done
    ) &
    clients=$!
    pids+=("$clients")
}
clients_stop() {
    touch "$work/clients-stop"
    wait "$clients"
    if [[ -e $work/clients-failed ]]; then
        grep -i "error" "$work/X/clients.log" | tail -5 >&2
        echo "rehearse: a client saw an error" >&2
        exit 1
    fi
    echo "clients: $(grep -c 'orders:' "$work/X/clients.log") runs, no error"
}
# install_everywhere: the operator's cluster file (the one `storectl member` updated) copied to
# every host and installed as in step 3.
install_everywhere() {
    cp "$work/X/etc/storectl/cluster.toml" "$work/cluster.toml"
    for h in A B C D X E F G; do guide_run "$h" "$install_cluster_file"; done
}
# add_entries GROUP… ID ADDRESS_HOST: [[GROUP]] entries for replica ID on host address
# ADDRESS_HOST, appended to the cluster file and installed everywhere.
add_entries() {
    local id=${*: -2:1} ip=${*: -1} group port
    for group in "${@:1:$#-2}"; do
        case $group in catalog) port=8001 ;; order) port=8010 ;; frontend) port=8000 ;; esac
        printf '\n[[%s]]\nid = %s\naddress = "%s:%s"\n' "$group" "$id" "$ip" "$port" >>"$work/X/etc/storectl/cluster.toml"
    done
    install_everywhere
}

step "8. replace a host whose disk is lost: D's disk is wiped, E takes its place, clients ordering"
clients_start
for name in frontend-2 order-2 catalog-2; do stop D "$name"; done
rm -rf "$work/D/var/lib/storectl-catalog-2" "$work/D/var/lib/storectl-order-2"
# Started again without its data, a replica refuses: it must never rejoin under its old id.
wiped=("$storectl" serve order --cluster "$work/D/etc/storectl/cluster.toml" --id 2 --data-dir "$work/D/var/lib/storectl-order-2")
unit D order-2 "${wiped[@]}"
if on D bash -c "$as_unit" _ "$uid" "${wiped[@]}" 2>"$work/D/wiped.log"; then
    echo "rehearse: a replica whose data was wiped started" >&2; exit 1
fi
grep -q "member replace" "$work/D/wiped.log" || { cat "$work/D/wiped.log" >&2; exit 1; }
echo "refused, as it should: $(cat "$work/D/wiped.log")"
add_entries catalog order frontend 4 10.0.0.6
certify catalog-4 order-4 frontend-4
install_certs_on E 4
file=$work/E/etc/storectl/cluster.toml
serve_on E catalog-4 "$storectl" serve catalog --cluster "$file" --id 4 --data-dir "$work/E/var/lib/storectl-catalog-4" --join
serve_on E order-4 "$storectl" serve order --cluster "$file" --id 4 --data-dir "$work/E/var/lib/storectl-order-4" --join
serve_on E frontend-4 "$storectl" serve frontend --cluster "$file" --id 4
for group in catalog order; do
    check member replace --group "$group" --id 2 --with 4 --cluster "$work/X/etc/storectl/cluster.toml"
done
# D's front end goes too: its entry is the one `member` does not own.
awk 'BEGIN { RS = ""; ORS = "\n\n" } !/^\[\[frontend\]\]\nid = 2\n/' "$work/X/etc/storectl/cluster.toml" >"$work/X/cluster.new"
install -m 644 "$work/X/cluster.new" "$work/X/etc/storectl/cluster.toml"
install_everywhere
healthy
check member list --cluster "$work/X/etc/storectl/cluster.toml"

step "9. grow the order group to five: replicas 5 on F and 6 on G, clients ordering"
add_entries order 5 10.0.0.7
add_entries order 6 10.0.0.8
certify order-5 order-6
install_certs_on F 5
install_certs_on G 6
serve_on F order-5 "$storectl" serve order --cluster "$work/F/etc/storectl/cluster.toml" --id 5 --data-dir "$work/F/var/lib/storectl-order-5" --join
serve_on G order-6 "$storectl" serve order --cluster "$work/G/etc/storectl/cluster.toml" --id 6 --data-dir "$work/G/var/lib/storectl-order-6" --join
for id in 5 6; do
    check member add --group order --id "$id" --cluster "$work/X/etc/storectl/cluster.toml"
done
install_everywhere
healthy
clients_stop
check member list --group order --cluster "$work/X/etc/storectl/cluster.toml"
voters=$(check member list --group order --json --cluster "$work/X/etc/storectl/cluster.toml" | grep -c '"voter": true')
[[ $voters == 5 ]] || { echo "rehearse: the order group has $voters voters, not 5" >&2; exit 1; }
for _ in $(seq 50); do
    check verify-logs --cluster "$work/X/etc/storectl/cluster.toml" --stock >/dev/null && break
    sleep 0.2
done
check verify-logs --cluster "$work/X/etc/storectl/cluster.toml" --stock

step "done: every step of docs/deploy.md ran on namespaced hosts, and no host's loss stopped the store"
