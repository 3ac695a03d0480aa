#!/usr/bin/env bash
# Local Kafka (KRaft, single node) + Redis for stream-risk, without Docker.
#
#   docker/services.sh start [kafka|redis|all]   start (or reuse) the services
#   docker/services.sh start --fresh [...]       same, but a broker started here begins
#                                                with empty storage (old topics dropped)
#   docker/services.sh stop  [kafka|redis|all]   stop what this script started
#   docker/services.sh status                    print state (exit 1 if one is down)
#   docker/services.sh env                       print the app's env exports
#   docker/services.sh restart-kafka             stop + start Kafka only
#
# Kafka jars come from Maven Central through Maven (docker/kafka/pom.xml pins
# org.apache.kafka:kafka_2.13:3.9.1); Redis comes from the Debian package
# redis-server (installed with apt-get when missing and running as root).
#
# Environment knobs (all optional):
#   STREAM_RISK_SERVICES_DIR  cache/state dir (default ~/.cache/stream-risk/services)
#   KAFKA_PORT                broker port            (default 9092)
#   KAFKA_CONTROLLER_PORT     KRaft controller port  (default 9093)
#   KAFKA_HEAP_OPTS           JVM heap               (default "-Xms128m -Xmx512m")
#   KAFKA_NUM_PARTITIONS      default partitions of auto-created topics (default 1)
#   KAFKA_START_TIMEOUT       seconds without startup progress before giving up (default 90)
#   KAFKA_START_MAX           seconds to wait for the broker in any case (default 900)
#   REDIS_PORT                redis port             (default 6379)
#   PYTHON                    python used for the broker probe (default python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_VERSION="3.9.1"

STATE="${STREAM_RISK_SERVICES_DIR:-${HOME:-/tmp}/.cache/stream-risk/services}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-1}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_START_MAX="${KAFKA_START_MAX:-900}"
FRESH=0
REDIS_PORT="${REDIS_PORT:-6379}"
PYTHON="${PYTHON:-python3}"
HOST="127.0.0.1"

LIBS="$STATE/kafka-libs"
KDIR="$STATE/kafka-$KAFKA_PORT"
KPID="$KDIR/kafka.pid"
KLOG="$KDIR/kafka.log"
RDIR="$STATE/redis-$REDIS_PORT"
RPID="$RDIR/redis.pid"
RLOG="$RDIR/redis.log"

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- helpers

port_open() { # port -> 0 when something accepts TCP connections on HOST:port
    timeout 2 bash -c ": </dev/tcp/$HOST/$1" 2>/dev/null
}

# pid from a pid file, only if that process is alive and its command line
# contains the given pattern (guards against recycled pids).
live_pid() { # pidfile pattern
    local pidfile="$1" pattern="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    printf '%s\n' "$pid"
}

kill_pid() { # pid name
    local pid="$1" name="$2" i
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 60; i++)); do # up to 30s for a clean shutdown
        kill -0 "$pid" 2>/dev/null || { log "$name stopped (pid $pid)"; return 0; }
        sleep 0.5
    done
    log "$name (pid $pid) did not exit after 30s, sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    die "could not kill $name (pid $pid)"
}

with_lock() { # serialise concurrent start/stop calls on one state dir
    mkdir -p "$STATE"
    command -v flock >/dev/null 2>&1 || return 0
    # fd 9 is closed for every daemon started below, so they never hold it.
    exec 9>"$STATE/.services.lock"
    if ! flock -n 9; then
        log "another services.sh holds $STATE/.services.lock, waiting (max 300s)"
        flock -w 300 9 || die "timed out waiting for $STATE/.services.lock"
    fi
}

# ---------------------------------------------------------------- kafka

kafka_fetch_jars() {
    if [[ -f "$LIBS/.complete" ]] && [[ "$(cat "$LIBS/.complete")" == "$KAFKA_VERSION" ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found: Maven is needed once to fetch the Kafka $KAFKA_VERSION jars"
    command -v java >/dev/null 2>&1 || die "java not found: Kafka needs a JRE (17+)"
    log "fetching Kafka $KAFKA_VERSION jars with Maven into $LIBS (one time)"
    local tmp="$LIBS.tmp.$$" t0=$SECONDS
    rm -rf "$tmp"
    mkdir -p "$STATE"
    if ! mvn -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$STATE/mvn.log" 2>&1; then
        tail -n 30 "$STATE/mvn.log" >&2 || true
        rm -rf "$tmp"
        die "mvn dependency:copy-dependencies failed for $POM (log: $STATE/mvn.log)"
    fi
    ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"; }
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    printf '%s\n' "$KAFKA_VERSION" >"$LIBS/.complete"
    log "Kafka jars ready ($(find "$LIBS" -name '*.jar' | wc -l) jars, $((SECONDS - t0))s)"
}

kafka_write_config() {
    mkdir -p "$KDIR/data" "$KDIR/logs"
    cat >"$KDIR/server.properties" <<EOF
# Generated by docker/services.sh: single-node KRaft broker for local dev/tests.
node.id=1
process.roles=broker,controller
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KDIR/data
num.partitions=$KAFKA_NUM_PARTITIONS
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=24
EOF
    cat >"$KDIR/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.kafka.log=WARN
# One line per partition loaded at startup: the progress services.sh waits on.
log4j.logger.kafka.log.LogManager=INFO
log4j.logger.org.apache.kafka.clients=WARN
EOF
}

kafka_jvm() { # prints nothing; fills JVM array with the java command line prefix
    # shellcheck disable=SC2206  # KAFKA_HEAP_OPTS is a list of JVM flags on purpose
    JVM=(java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
        "-Dlog4j.configuration=file:$KDIR/log4j.properties" "-Dkafka.logs.dir=$KDIR/logs"
        -cp "$LIBS/*")
}

kafka_java() { # main-class args...
    local JVM
    kafka_jvm
    "${JVM[@]}" "$@"
}

kafka_format() {
    if [[ -f "$KDIR/data/meta.properties" ]]; then
        return 0
    fi
    local cid
    if [[ -s "$KDIR/cluster.id" ]]; then
        cid="$(cat "$KDIR/cluster.id")"
    else
        cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 | tr -d '[:space:]')"
        [[ -n "$cid" ]] || die "kafka-storage random-uuid produced nothing"
        printf '%s\n' "$cid" >"$KDIR/cluster.id"
    fi
    log "formatting KRaft storage in $KDIR/data (cluster id $cid)"
    kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$cid" -c "$KDIR/server.properties" \
        >"$KDIR/format.log" 2>&1 || { cat "$KDIR/format.log" >&2; die "kafka storage format failed"; }
}

kafka_probe() { # 0 when the broker answers a metadata request
    if "$PYTHON" -c 'import kafka' 2>/dev/null; then
        "$PYTHON" - "$HOST:$KAFKA_PORT" <<'EOF' >"$KDIR/probe.err" 2>&1
import sys
from kafka import KafkaAdminClient
c = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000,
                     client_id="services-probe")
try:
    c.list_topics()
finally:
    c.close()
EOF
    else
        grep -q 'Kafka Server started' "$KLOG" 2>/dev/null
    fi
}

kafka_wait() { # pid -> wait until the port is open and the broker answers
    # A broker with many partitions on disk loads them one by one before it
    # listens; that is progress, so the timeout counts from the last log line.
    local pid="$1" t0=$SECONDS last=$SECONDS size=-1 now_size said=$SECONDS
    while :; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            log "Kafka process $pid exited during startup; last log lines:"
            tail -n 40 "$KLOG" >&2 || true
            die "Kafka failed to start (log: $KLOG)"
        fi
        if port_open "$KAFKA_PORT" && kafka_probe; then
            log "Kafka ready on $HOST:$KAFKA_PORT ($((SECONDS - t0))s)"
            return 0
        fi
        now_size="$(stat -c %s "$KLOG" 2>/dev/null || echo 0)"
        if [[ "$now_size" != "$size" ]]; then
            size="$now_size"
            last=$SECONDS
        fi
        if ((SECONDS - said >= 15)); then
            said=$SECONDS
            log "waiting for Kafka ($((SECONDS - t0))s; $(grep -c 'Completed load of' "$KLOG" 2>/dev/null || true) partition logs loaded so far)"
        fi
        if ((SECONDS - last >= KAFKA_START_TIMEOUT || SECONDS - t0 >= KAFKA_START_MAX)); then
            log "Kafka not ready after $((SECONDS - t0))s ($((SECONDS - last))s without progress); last log lines:"
            tail -n 40 "$KLOG" >&2 || true
            if [[ -s "$KDIR/probe.err" ]]; then
                log "last broker probe error:"
                tail -n 5 "$KDIR/probe.err" >&2 || true
            fi
            die "Kafka start timed out (log: $KLOG); 'docker/services.sh start --fresh' starts with empty storage"
        fi
        sleep 1
    done
}

kafka_start() {
    local pid
    if pid="$(live_pid "$KPID" kafka.Kafka)"; then
        if port_open "$KAFKA_PORT"; then
            log "Kafka already running (pid $pid) on $HOST:$KAFKA_PORT, reusing"
        else
            log "Kafka (pid $pid) is starting, waiting for it"
        fi
        kafka_wait "$pid"
        return 0
    fi
    if port_open "$KAFKA_PORT"; then
        log "something already listens on $HOST:$KAFKA_PORT (not started by this script), reusing it as Kafka"
        return 0
    fi
    if port_open "$KAFKA_CONTROLLER_PORT"; then
        die "controller port $HOST:$KAFKA_CONTROLLER_PORT is taken by another process; set KAFKA_CONTROLLER_PORT"
    fi
    kafka_fetch_jars
    if ((FRESH)) && [[ -d "$KDIR/data" ]]; then
        log "--fresh: dropping the stored topics in $KDIR/data"
        rm -rf "$KDIR/data"
    fi
    kafka_write_config
    kafka_format
    [[ -f "$KLOG" ]] && mv -f "$KLOG" "$KLOG.1"
    log "starting Kafka $KAFKA_VERSION (KRaft) on $HOST:$KAFKA_PORT, log $KLOG"
    # setsid: own session, so the broker outlives the calling shell/job.
    local JVM
    kafka_jvm
    setsid nohup "${JVM[@]}" kafka.Kafka "$KDIR/server.properties" >"$KLOG" 2>&1 </dev/null 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$KPID"
    kafka_wait "$pid"
}

kafka_stop() {
    local pid
    if pid="$(live_pid "$KPID" kafka.Kafka)"; then
        log "stopping Kafka (pid $pid)"
        kill_pid "$pid" Kafka
    elif port_open "$KAFKA_PORT"; then
        log "Kafka on $HOST:$KAFKA_PORT was not started by this script, leaving it alone"
    else
        log "Kafka not running"
    fi
    rm -f "$KPID"
}

kafka_status() {
    local pid
    if pid="$(live_pid "$KPID" kafka.Kafka)"; then
        if port_open "$KAFKA_PORT"; then
            echo "kafka: running (pid $pid) on $HOST:$KAFKA_PORT, data $KDIR/data"
        else
            echo "kafka: starting (pid $pid), port $KAFKA_PORT not open yet"; return 1
        fi
    elif port_open "$KAFKA_PORT"; then
        echo "kafka: something external listens on $HOST:$KAFKA_PORT (not managed here)"
    else
        echo "kafka: stopped"; return 1
    fi
}

# ---------------------------------------------------------------- redis

redis_ping() {
    if command -v redis-cli >/dev/null 2>&1; then
        [[ "$(timeout 3 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
    else
        local reply
        reply="$(timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/$REDIS_PORT; printf 'PING\r\n' >&3; head -c 7 <&3" 2>/dev/null)" || return 1
        [[ "$reply" == +PONG* ]]
    fi
}

apt_wait() { # wait for another apt/dpkg run (e.g. a background install) to finish
    local i
    for ((i = 0; i < 600; i++)); do
        pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1 || return 0
        ((i % 15 == 0)) && log "waiting for a running apt/dpkg to finish"
        sleep 1
    done
    die "apt/dpkg still busy after 10 minutes"
}

redis_install() {
    command -v redis-server >/dev/null 2>&1 && return 0
    [[ "$(id -u)" == 0 ]] || die "redis-server not found; install it (e.g. 'sudo apt-get install -y redis-server') or run as root"
    command -v apt-get >/dev/null 2>&1 || die "redis-server not found and apt-get is not available"
    apt_wait
    command -v redis-server >/dev/null 2>&1 && return 0 # the other apt run may have installed it
    log "installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends redis-server >&2 \
        || die "apt-get install redis-server failed"
    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after apt-get install"
}

redis_start() {
    local pid i
    if pid="$(live_pid "$RPID" redis-server)" && redis_ping; then
        log "Redis already running (pid $pid) on $HOST:$REDIS_PORT, reusing"
        return 0
    fi
    if redis_ping; then
        log "Redis already answers on $HOST:$REDIS_PORT (not started by this script), reusing"
        return 0
    fi
    if port_open "$REDIS_PORT"; then
        die "port $HOST:$REDIS_PORT is taken by something that does not answer Redis PING; set REDIS_PORT"
    fi
    redis_install
    mkdir -p "$RDIR"
    rm -f "$RPID"
    log "starting Redis on $HOST:$REDIS_PORT, log $RLOG"
    # The Debian package may have started its own instance on 6379; that one
    # is caught by the redis_ping above and reused. The append-only file in
    # $RDIR (fsync every second) keeps the warnings stream and the
    # de-duplication keys across a restart of Redis.
    redis-server --port "$REDIS_PORT" --bind "$HOST" --daemonize yes \
        --save "" --appendonly yes --appendfsync everysec --protected-mode yes \
        --pidfile "$RPID" --logfile "$RLOG" --dir "$RDIR" >&2 9>&-
    for ((i = 0; i < 60; i++)); do
        if redis_ping; then
            log "Redis ready on $HOST:$REDIS_PORT"
            return 0
        fi
        sleep 0.5
    done
    tail -n 20 "$RLOG" >&2 || true
    die "Redis did not answer PING within 30s (log: $RLOG)"
}

redis_stop() {
    local pid
    if pid="$(live_pid "$RPID" redis-server)"; then
        log "stopping Redis (pid $pid)"
        kill_pid "$pid" Redis
    elif redis_ping; then
        log "Redis on $HOST:$REDIS_PORT was not started by this script, leaving it alone"
    else
        log "Redis not running"
    fi
    rm -f "$RPID"
}

redis_status() {
    local pid
    if pid="$(live_pid "$RPID" redis-server)" && redis_ping; then
        echo "redis: running (pid $pid) on $HOST:$REDIS_PORT"
    elif redis_ping; then
        echo "redis: something external answers on $HOST:$REDIS_PORT (not managed here)"
    else
        echo "redis: stopped"; return 1
    fi
}

# ---------------------------------------------------------------- main

print_env() {
    echo "export STREAM_RISK_KAFKA_BOOTSTRAP=$HOST:$KAFKA_PORT"
    echo "export STREAM_RISK_REDIS_URL=redis://$HOST:$REDIS_PORT/0"
}

usage() { # exit-code
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

main() {
    local verb="${1:-}" rc=0
    shift || true
    if [[ "$verb" == start && "${1:-}" == --fresh ]]; then
        FRESH=1
        shift
    fi
    local what="${1:-all}"
    case "$what" in kafka|redis|all) ;; *) usage ;; esac
    case "$verb" in
        start)
            with_lock
            local t0=$SECONDS
            [[ "$what" == redis ]] || kafka_start
            [[ "$what" == kafka ]] || redis_start
            log "services up ($((SECONDS - t0))s); use: eval \"\$($0 env)\""
            ;;
        stop)
            with_lock
            [[ "$what" == redis ]] || kafka_stop
            [[ "$what" == kafka ]] || redis_stop
            ;;
        restart-kafka)
            with_lock
            live_pid "$KPID" kafka.Kafka >/dev/null || ! port_open "$KAFKA_PORT" \
                || die "Kafka on $HOST:$KAFKA_PORT was not started by this script; cannot restart it"
            kafka_stop
            kafka_start
            ;;
        status)
            kafka_status || rc=1
            redis_status || rc=1
            return "$rc"
            ;;
        env) print_env ;;
        -h|--help|help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
