# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_storectl_global_optspecs
    string join \n h/help V/version
end

function __fish_storectl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_storectl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_storectl_using_subcommand
    set -l cmd (__fish_storectl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c storectl -n "__fish_storectl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c storectl -n "__fish_storectl_needs_command" -s V -l version -d 'Print version'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "demo" -d 'Start a cluster in a temporary directory, drive clients, crash the leader, check, stop'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "serve" -d 'Run one service in the foreground'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "up" -d 'Start three catalog replicas, three order replicas and the front ends in the background'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "down" -d 'Stop every service of the cluster (data files stay)'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "status" -d 'Show each service: pid, address, alive, role, last order number, cache counters'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "kill" -d 'Kill one service (SIGKILL by default) to simulate a crash'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "restart" -d 'Start a killed (or running) service again with the arguments `up` gave it'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "query" -d 'Look at one toy: its price and how many are in stock'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "buy" -d 'Order a toy: one unit unless told, placed once even if retried with the same --key'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "order" -d 'Look at one order by its number'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "top" -d 'A live view: every service, the leader, orders and queries per second, latencies, events'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "dashboard" -d 'The live view in a browser: services, leaders, charts of the traffic, events'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "logs" -d 'Show a service\'s log; -f keeps following it'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "client" -d 'Run the buy loop against the front end, then check every order it made'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "chaos" -d 'Kill, pause or slow replicas of either group (leaders among them) under client load, restart them, and check that nothing was lost'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "bench" -d 'Measure the store: latency against p with the cache on and off, or throughput (--load)'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "verify-logs" -d 'Compare the replicas\' orders (files here, or over the network); exit 1 on any difference'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "member" -d 'List, add, remove or replace the members of a replica group'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "certs" -d 'Make the cluster\'s CA and its services\' certificates, for mutual TLS between them'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "lossy-disk" -d 'Serve a disk that loses what was not fsynced when told to: a FUSE file system over a directory, for power-cut tests'
complete -c storectl -n "__fish_storectl_needs_command" -f -a "generate" -d 'Write the man pages or shell completions from the CLI definitions'
complete -c storectl -n "__fish_storectl_using_subcommand demo" -l clients -d 'Concurrent client sessions' -r
complete -c storectl -n "__fish_storectl_using_subcommand demo" -l iterations -d 'Iterations of each session' -r
complete -c storectl -n "__fish_storectl_using_subcommand demo" -l p -d 'Probability of ordering a toy that is in stock' -r
complete -c storectl -n "__fish_storectl_using_subcommand demo" -l keep -d 'Keep the cluster\'s directory (its files and logs) instead of deleting it'
complete -c storectl -n "__fish_storectl_using_subcommand demo" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and not __fish_seen_subcommand_from catalog frontend order" -l cluster-secret -d 'The cluster\'s shared secret, which internal endpoints require and calls to other services present (at least 16 characters). `storectl up` makes one and passes it in the environment; prefer the environment to the flag, which `ps` shows' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and not __fish_seen_subcommand_from catalog frontend order" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and not __fish_seen_subcommand_from catalog frontend order" -f -a "catalog" -d 'One catalog replica: the stock, buys, restocks, cache invalidations'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and not __fish_seen_subcommand_from catalog frontend order" -f -a "frontend" -d 'The front end: the public API, the product cache, following the order leader'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and not __fish_seen_subcommand_from catalog frontend order" -f -a "order" -d 'One order replica, with its own orders-N.csv'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -l id -d 'This replica\'s [[catalog]] entry in the cluster file (needed when it has several; 1, 2 or 3 in a cluster `up` starts); the highest id that can win an election leads' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -l cluster -d 'The cluster file that names every service\'s address, the same on every host (default: one host, 127.0.0.1, the front end on 8000, the catalog on 8001, replicas on 8010-8012)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -l listen -d 'Listen on this address instead of this service\'s own in the cluster file (e.g. 0.0.0.0:8010 to listen on every interface)' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -l data-dir -d 'Directory of the replica\'s files: catalog-raft-ID.log, catalog-snapshot-ID.json, catalog-ID.csv (a catalog.csv there is the stock a new catalog starts from)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -l restock-interval -d 'How often sold-out toys are restocked to 100 (e.g. 10s, 500ms)' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -l initial-stock -d 'Units of each toy in a new catalog (default: the seed\'s, 100 in the built-in stock)' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -l cluster-secret -d 'The cluster\'s shared secret, which internal endpoints require and calls to other services present (at least 16 characters). `storectl up` makes one and passes it in the environment; prefer the environment to the flag, which `ps` shows' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -l init -d 'First start of a new cluster: with an empty data directory, make the group with every replica of the cluster file as a member (`up` passes this for a new state directory)'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -l join -d 'A new member of a running group: with an empty data directory, wait to be added by `storectl member add` or `member replace`'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from catalog" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l id -d 'Which [[frontend]] entry of the cluster file this is (needed when it has several)' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l cluster -d 'The cluster file that names every service\'s address, the same on every host (default: one host, 127.0.0.1, the front end on 8000, the catalog on 8001, replicas on 8010-8012)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l listen -d 'Listen on this address instead of this service\'s own in the cluster file (e.g. 0.0.0.0:8010 to listen on every interface)' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l cache-size -d 'Product replies the LRU cache holds (0 to 1000000); 0 turns the cache off' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l health-interval -d 'How often every order replica is asked who leads' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l failover-timeout -d 'How long an order is retried on new leaders before the client gets 503 (at least 10s: longer than the front end waits for one order)' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l header-read-timeout -d 'How long a client may take to send a request\'s headers before its connection is closed (also how long an idle keep-alive connection stays open)' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l public-tls-cert -d 'Serve the public API over HTTPS with this certificate (PEM, from any CA, e.g. one the shoppers\' browsers trust); plain HTTP to this front end is then refused' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l public-tls-key -d 'The key of --public-tls-cert (PEM)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -l cluster-secret -d 'The cluster\'s shared secret, which internal endpoints require and calls to other services present (at least 16 characters). `storectl up` makes one and passes it in the environment; prefer the environment to the flag, which `ps` shows' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from frontend" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from order" -l id -d 'This replica\'s [[order]] entry in the cluster file (1 to 255; 1, 2 or 3 in a cluster `up` starts); the highest id that can win an election leads' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from order" -l cluster -d 'The cluster file that names every service\'s address, the same on every host (default: one host, 127.0.0.1, the front end on 8000, the catalog on 8001, replicas on 8010-8012)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from order" -l listen -d 'Listen on this address instead of this service\'s own in the cluster file (e.g. 0.0.0.0:8010 to listen on every interface)' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from order" -l data-dir -d 'Directory of the replica\'s files: raft-ID.log, snapshot-ID.json, orders-ID.csv, identity-ID.json' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from order" -l cluster-secret -d 'The cluster\'s shared secret, which internal endpoints require and calls to other services present (at least 16 characters). `storectl up` makes one and passes it in the environment; prefer the environment to the flag, which `ps` shows' -r
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from order" -l init -d 'First start of a new cluster: with an empty data directory, make the group with every replica of the cluster file as a member (`up` passes this for a new state directory)'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from order" -l join -d 'A new member of a running group: with an empty data directory, wait to be added by `storectl member add` or `member replace`'
complete -c storectl -n "__fish_storectl_using_subcommand serve; and __fish_seen_subcommand_from order" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand up" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand up" -l port-base -d 'Front end on N (front end i on N+2(i-1)), catalog on N+1, order replica i on N+9+i (1 to 65523)' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l host -d 'Address every service listens on' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l replicas -d 'Order replicas of a new cluster: 1, 3, 5 or 7 (default 3). A cluster that has its files keeps its members; change them with `storectl member add|remove`' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l catalog-replicas -d 'Catalog replicas of a new cluster: 1, 3, 5 or 7 (default 3)' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l frontends -d 'Front ends to start (1 to 5); with more than one they are frontend-1, frontend-2, …' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l cache-size -d 'Product replies the front end\'s LRU cache holds (0 to 1000000); 0 turns it off' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l restock-interval -d 'How often sold-out toys are restocked' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l initial-stock -d 'Units of each toy in a new catalog (default: the built-in 100; restocks still refill to 100)' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l health-interval -d 'How often the front end asks every order replica who leads' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l header-read-timeout -d 'How long a client may take to send its request headers to the front end' -r
complete -c storectl -n "__fish_storectl_using_subcommand up" -l fault-hooks -d 'Give each service a fault directory under STATE_DIR/faults/ (for tests and `chaos --fault slow-disk`): a file slow-fsync there holding milliseconds slows that replica\'s every fsync until it is removed'
complete -c storectl -n "__fish_storectl_using_subcommand up" -l lossy-disk -d 'Keep every replica\'s files on a lossy disk (STATE_DIR/disk, one directory per replica, a FUSE file system; needs root): `chaos --fault power` then loses whatever a replica had not fsynced, as a real power cut would'
complete -c storectl -n "__fish_storectl_using_subcommand up" -l tls -d 'Mutual TLS between the services (and the tools): a CA and a certificate per service in STATE_DIR/tls, made once, named by the cluster file\'s [tls] table. The front end\'s public API speaks both HTTP and HTTPS'
complete -c storectl -n "__fish_storectl_using_subcommand up" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand down" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand down" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand status" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand status" -l cluster -d 'Ask the services of this cluster file over the network instead (from any host)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand status" -l json -d 'Print JSON instead of a table'
complete -c storectl -n "__fish_storectl_using_subcommand status" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand kill" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand kill" -l signal -d 'Signal to send' -r -f -a "kill\t'SIGKILL: a crash, nothing flushed'
term\t'SIGTERM: a graceful stop'
stop\t'SIGSTOP: a pause; the process holds its sockets and answers nothing'
cont\t'SIGCONT: resumes a paused process'"
complete -c storectl -n "__fish_storectl_using_subcommand kill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c storectl -n "__fish_storectl_using_subcommand restart" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand restart" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand query" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand query" -l frontend -d 'Front end to talk to (default: the first of the cluster in the state directory)' -r
complete -c storectl -n "__fish_storectl_using_subcommand query" -l json -d 'Print the reply\'s data as JSON'
complete -c storectl -n "__fish_storectl_using_subcommand query" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand buy" -l key -d 'Idempotency key: the same key places the order once however often it is sent' -r
complete -c storectl -n "__fish_storectl_using_subcommand buy" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand buy" -l frontend -d 'Front end to talk to (default: the first of the cluster in the state directory)' -r
complete -c storectl -n "__fish_storectl_using_subcommand buy" -l json -d 'Print the reply\'s data as JSON'
complete -c storectl -n "__fish_storectl_using_subcommand buy" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand order" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand order" -l frontend -d 'Front end to talk to (default: the first of the cluster in the state directory)' -r
complete -c storectl -n "__fish_storectl_using_subcommand order" -l json -d 'Print the reply\'s data as JSON'
complete -c storectl -n "__fish_storectl_using_subcommand order" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand top" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand top" -l cluster -d 'Watch the services of this cluster file instead, over the network' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand top" -l interval -d 'How often every service is read' -r
complete -c storectl -n "__fish_storectl_using_subcommand top" -l window -d 'How far back rates and latencies reach' -r
complete -c storectl -n "__fish_storectl_using_subcommand top" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand dashboard" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand dashboard" -l cluster -d 'Watch the services of this cluster file instead, over the network' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand dashboard" -l listen -d 'Where the page is served (port 0 picks a free one)' -r
complete -c storectl -n "__fish_storectl_using_subcommand dashboard" -l interval -d 'How often every service is read' -r
complete -c storectl -n "__fish_storectl_using_subcommand dashboard" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand logs" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand logs" -s n -l lines -d 'Lines to show from the end' -r
complete -c storectl -n "__fish_storectl_using_subcommand logs" -s f -l follow -d 'Keep printing lines as the service writes them, until Ctrl-C'
complete -c storectl -n "__fish_storectl_using_subcommand logs" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand client" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand client" -l frontend -d 'Front end to talk to (default: the cluster in the state directory)' -r
complete -c storectl -n "__fish_storectl_using_subcommand client" -l p -d 'Probability of ordering a toy that is in stock' -r
complete -c storectl -n "__fish_storectl_using_subcommand client" -l iterations -d 'Iterations of each session' -r
complete -c storectl -n "__fish_storectl_using_subcommand client" -l clients -d 'Concurrent sessions' -r
complete -c storectl -n "__fish_storectl_using_subcommand client" -l seed -d 'Seed of the random choices, to repeat a run (default: random, printed)' -r
complete -c storectl -n "__fish_storectl_using_subcommand client" -l json -d 'Print the summary as JSON'
complete -c storectl -n "__fish_storectl_using_subcommand client" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l clients -d 'Concurrent client sessions' -r
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l p -d 'Probability of ordering a toy that is in stock' -r
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l rounds -d 'Rounds: one fault each, one after another' -r
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l interval -d 'Pause before each round\'s fault' -r
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l down-for -d 'How long a fault lasts: a killed replica stays down, a disk stays slow' -r
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l leader-share -d 'Share of the faults aimed at the group\'s leader' -r
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l fault -d 'Faults to choose from, one at random each round, comma-separated' -r -f -a "kill\t'SIGKILL one replica (the leader at --leader-share), restart it after --down-for'
stop\t'SIGSTOP one replica for a random time up to twice --down-for, then SIGCONT'
two\t'Pause one replica so it lags, SIGKILL the other two, resume it, restart the two'
power\t'SIGKILL every replica of the group at once, restart them one by one'
slow-disk\t'Every fsync of one replica takes 2 s for --down-for (starts its own cluster with fault hooks, or needs `up --fault-hooks`)'"
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l group -d 'The replica group the faults are aimed at' -r -f -a "order\t'The order replicas'
catalog\t'The catalog replicas'
any\t'Either, at random each round'"
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l seed -d 'Seed of the victims and the clients\' choices (default: random, printed)' -r
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -l json -d 'Print the report as JSON'
complete -c storectl -n "__fish_storectl_using_subcommand chaos" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l out -d 'Directory for the results (created if missing; files in it are replaced)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l clients -d 'Concurrent client sessions at each point' -r
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l p -d 'Order probabilities to measure, comma-separated' -r
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l cache -d 'Cache modes to measure, comma-separated [default: on,off; with --state-dir, the mode the running cluster has]' -r -f -a "on\t'The front end\'s LRU cache on (--cache-size entries)'
off\t'No cache: every product query goes to the catalog'"
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l iterations -d 'Iterations of the buy loop per session at each point' -r
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l duration -d 'Run each point for this long instead of a number of iterations; with --load, how long each phase is measured [default with --load: 5s]' -r
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l seed -d 'Seed of the clients\' choices, to repeat a study (default: random, printed)' -r
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l cache-size -d 'Entries of the front end\'s cache when it is on, in clusters the bench starts' -r
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l state-dir -d 'Measure the running cluster in this state directory instead of starting clusters' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l connections -d 'Connections of the throughput mode\'s concurrent phases' -r
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l load -d 'Throughput mode: many connections per request type for a fixed time, then one'
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l etcd -d 'With --load, also measure puts into three etcd members on loopback (etcd from the PATH or STORECTL_ETCD) with the same load generator, and compare orders with them'
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l tls -d 'With --load, also measure orders on a cluster whose services speak mutual TLS (up --tls), and compare them with the orders without it'
complete -c storectl -n "__fish_storectl_using_subcommand bench" -l json -d 'Print the results as JSON on stdout (the files are written too)'
complete -c storectl -n "__fish_storectl_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c storectl -n "__fish_storectl_using_subcommand verify-logs" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand verify-logs" -l cluster -d 'Ask the replicas (and, with --stock, the catalog) of this cluster file over the network instead of reading the state directory\'s files; needs the cluster\'s secret' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand verify-logs" -l cluster-secret -d 'The cluster\'s shared secret, which internal endpoints require and calls to other services present (at least 16 characters). `storectl up` makes one and passes it in the environment; prefer the environment to the flag, which `ps` shows' -r
complete -c storectl -n "__fish_storectl_using_subcommand verify-logs" -l stock -d 'Also check that stock was conserved: for every toy, seed + restocked − ordered = stock, and every unit the catalog sold belongs to an order in the log (run it with no client running, or orders in flight count as differences)'
complete -c storectl -n "__fish_storectl_using_subcommand verify-logs" -l json -d 'Print the result as JSON'
complete -c storectl -n "__fish_storectl_using_subcommand verify-logs" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand member; and not __fish_seen_subcommand_from list add remove replace" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand member; and not __fish_seen_subcommand_from list add remove replace" -f -a "list" -d 'List each group\'s members: id, address, voter or learner, leader, how far behind, answers'
complete -c storectl -n "__fish_storectl_using_subcommand member; and not __fish_seen_subcommand_from list add remove replace" -f -a "add" -d 'Add a replica to a group: a learner until it has the log, then a voter'
complete -c storectl -n "__fish_storectl_using_subcommand member; and not __fish_seen_subcommand_from list add remove replace" -f -a "remove" -d 'Remove a replica from a group (the leader too: the others elect a new one)'
complete -c storectl -n "__fish_storectl_using_subcommand member; and not __fish_seen_subcommand_from list add remove replace" -f -a "replace" -d 'Put a new replica in the place of one that is gone for good (a lost disk, a dead host)'
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from list" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from list" -l cluster -d 'Ask the services of this cluster file over the network instead (from any host)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from list" -l group -d 'Only this group (default: both)' -r -f -a "order\t''
catalog\t''"
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of a table'
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from add" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from add" -l cluster -d 'Change the cluster of this cluster file over the network instead (from any host); the file is updated when the change is committed' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from add" -l cluster-secret -d 'The cluster\'s shared secret, which internal endpoints require and calls to other services present (at least 16 characters). `storectl up` makes one and passes it in the environment; prefer the environment to the flag, which `ps` shows' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from add" -l group -d 'The replica group' -r -f -a "order\t''
catalog\t''"
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from add" -l catch-up-timeout -d 'How long a new member may take to receive the log' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from add" -l id -d 'The new replica\'s id (one no member has)' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from add" -l address -d 'Where it listens, HOST:PORT (a local cluster: its port in the layout by default)' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from remove" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from remove" -l cluster -d 'Change the cluster of this cluster file over the network instead (from any host); the file is updated when the change is committed' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from remove" -l cluster-secret -d 'The cluster\'s shared secret, which internal endpoints require and calls to other services present (at least 16 characters). `storectl up` makes one and passes it in the environment; prefer the environment to the flag, which `ps` shows' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from remove" -l group -d 'The replica group' -r -f -a "order\t''
catalog\t''"
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from remove" -l catch-up-timeout -d 'How long a new member may take to receive the log' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from remove" -l id -d 'The replica to remove' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from replace" -l state-dir -d 'The cluster\'s state directory: data files, pid files, logs, addresses' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from replace" -l cluster -d 'Change the cluster of this cluster file over the network instead (from any host); the file is updated when the change is committed' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from replace" -l cluster-secret -d 'The cluster\'s shared secret, which internal endpoints require and calls to other services present (at least 16 characters). `storectl up` makes one and passes it in the environment; prefer the environment to the flag, which `ps` shows' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from replace" -l group -d 'The replica group' -r -f -a "order\t''
catalog\t''"
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from replace" -l catch-up-timeout -d 'How long a new member may take to receive the log' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from replace" -l id -d 'The replica that is gone' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from replace" -l with -d 'The new replica\'s id (one no member has)' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from replace" -l address -d 'Where the new replica listens, HOST:PORT (a local cluster: its port in the layout by default)' -r
complete -c storectl -n "__fish_storectl_using_subcommand member; and __fish_seen_subcommand_from replace" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand certs; and not __fish_seen_subcommand_from init add" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand certs; and not __fish_seen_subcommand_from init add" -f -a "init" -d 'Make a new CA and a certificate for every service of the cluster file and the tools'
complete -c storectl -n "__fish_storectl_using_subcommand certs; and not __fish_seen_subcommand_from init add" -f -a "add" -d 'Make a certificate for one service with the cluster\'s CA: a new member, a renewal'
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from init" -l cluster -d 'The cluster file: every service in it gets a certificate, and a [tls] table' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from init" -l out -d 'The directory to write the CA, certificates and keys to (made if missing)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from init" -l days -d 'How long each service\'s certificate is valid, in days (the CA: ten years)' -r
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from init" -l force -d 'Replace files that are already there (a new CA: every certificate must be replaced)'
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from add" -l cluster -d 'The cluster file whose [tls] table says where the CA is' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from add" -l address -d 'The service\'s address, when the cluster file does not have it yet' -r
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from add" -l days -d 'How long the certificate is valid, in days' -r
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from add" -l force -d 'Replace the service\'s certificate and key if they are there (renewal, rotation)'
complete -c storectl -n "__fish_storectl_using_subcommand certs; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand lossy-disk" -l backing -d 'The real directory behind it (created if missing); what it holds when the disk mounts counts as durable' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand lossy-disk" -s h -l help -d 'Print help'
complete -c storectl -n "__fish_storectl_using_subcommand generate" -l out -d 'Directory to write into (default: man/ or completions/)' -r -F
complete -c storectl -n "__fish_storectl_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'

# Positional values (services and targets), which the generator leaves out.
complete -c storectl -n "__fish_storectl_using_subcommand kill" -f -a "leader catalog-leader catalog-1 catalog-2 catalog-3 frontend frontend-1 frontend-2 frontend-3 order-1 order-2 order-3"
complete -c storectl -n "__fish_storectl_using_subcommand restart" -f -a "leader catalog-leader catalog-1 catalog-2 catalog-3 frontend frontend-1 frontend-2 frontend-3 order-1 order-2 order-3"
complete -c storectl -n "__fish_storectl_using_subcommand logs" -f -a "catalog-1 catalog-2 catalog-3 frontend frontend-1 frontend-2 frontend-3 order-1 order-2 order-3"
complete -c storectl -n "__fish_storectl_using_subcommand generate" -f -a "man completions"
