#!/usr/bin/env bash
# kafka.sh - a single-node Apache Kafka broker (KRaft: broker and controller in one JVM) from the jars
# that scripts/deps.sh fetched into .local/kafka/libs, on loopback.
#   kafka.sh start DATADIR PORT CONTROLLER_PORT   format the storage if needed, start in the background,
#                                                  wait until it serves; harmless when already running
#   kafka.sh stop DATADIR                          SIGTERM, then SIGKILL after 30 s
#   kafka.sh version                               the broker version the jars hold
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
libs=${KAFKA_LIBS:-$here/.local/kafka/libs}
cmd=${1:?usage: kafka.sh start|stop|version ...}

version() {
	local jar
	jar=$(ls "$libs"/kafka_2.13-*.jar 2>/dev/null | head -n 1)
	[ -n "$jar" ] || { echo "kafka.sh: no Kafka jars in $libs (make deps)" >&2; exit 1; }
	basename "$jar" .jar | sed 's/^kafka_2.13-//'
}

running() { [ -f "$1/kafka.pid" ] && kill -0 "$(cat "$1/kafka.pid")" 2>/dev/null; }

case $cmd in
version) version ;;
start)
	dir=$(realpath -m "${2:?DATADIR}")
	port=${3:?PORT}
	cport=${4:?CONTROLLER_PORT}
	ver=$(version)
	mkdir -p "$dir/data"
	if running "$dir"; then
		echo "kafka.sh: already running (pid $(cat "$dir/kafka.pid"))"
		exit 0
	fi
	cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=6
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
	cp="$libs/*"
	# The JVM's heap and collector: KAFKA_GC_OPTS replaces them (a list of options, split on spaces). Every
	# collection is logged to $dir/gc.log: under W3's load the serial collector stops the broker for 10-33 ms
	# about every 1.6 s (docs/benchmarks.md, "The broker's garbage collector").
	jopts=(${KAFKA_GC_OPTS:--Xms256m -Xmx${KAFKA_HEAP:-768m} -XX:+UseSerialGC} -Djava.awt.headless=true "-Xlog:gc:file=$dir/gc.log:uptime"
	       "-Dlog4j.configuration=file:$here/kafka/log4j.properties")
	if [ ! -f "$dir/data/meta.properties" ]; then
		cid=$(java -cp "$cp" "${jopts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
		java -cp "$cp" "${jopts[@]}" kafka.tools.StorageTool format --cluster-id "$cid" \
			--config "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; exit 1; }
	fi
	# The log is appended to across restarts: only the lines of this start count.
	seen=$(wc -l <"$dir/kafka.log" 2>/dev/null || echo 0)
	setsid nohup java -cp "$cp" "${jopts[@]}" kafka.Kafka "$dir/server.properties" >>"$dir/kafka.log" 2>&1 </dev/null &
	echo $! >"$dir/kafka.pid"
	for _ in $(seq 1 600); do
		if tail -n +"$((seen + 1))" "$dir/kafka.log" 2>/dev/null | grep -q "Kafka Server started"; then
			echo "kafka.sh: Apache Kafka $ver (KRaft) on 127.0.0.1:$port (pid $(cat "$dir/kafka.pid"))"
			exit 0
		fi
		running "$dir" || { tail -n 30 "$dir/kafka.log" >&2; echo "kafka.sh: broker exited" >&2; exit 1; }
		sleep 0.1
	done
	echo "kafka.sh: broker did not start within 60 s" >&2
	tail -n 30 "$dir/kafka.log" >&2
	exit 1
	;;
stop)
	dir=$(realpath -m "${2:?DATADIR}")
	running "$dir" || { rm -f "$dir/kafka.pid"; exit 0; }
	pid=$(cat "$dir/kafka.pid")
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$dir/kafka.pid"
	;;
*)
	echo "usage: kafka.sh start DATADIR PORT CONTROLLER_PORT | stop DATADIR | version" >&2
	exit 2
	;;
esac
