#!/usr/bin/env bash
# stack.sh - the local botjobs stack under .local/, no Docker:
#   up     PostgreSQL + a Kafka broker + migrations + topics + the demo bot + producer + worker,
#          in the background; writes .local/env (source it) and prints how to try it
#   down   stops everything up started (by pid); harmless when nothing runs
#   run    up, then follow the logs until Ctrl-C, then down
#   logs   follow the logs
# Ports (environment): BOTJOBS_PG_PORT=55432 BOTJOBS_KAFKA_PORT=19092 BOTJOBS_KAFKA_CONTROLLER_PORT=19093
#                      BOTJOBS_HTTP_PORT=8080 BOTJOBS_WORKER_HTTP_PORT=9091
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
L=$root/.local
pg_port=${BOTJOBS_PG_PORT:-55432}
k_port=${BOTJOBS_KAFKA_PORT:-19092}
k_cport=${BOTJOBS_KAFKA_CONTROLLER_PORT:-19093}
http_port=${BOTJOBS_HTTP_PORT:-8080}
whttp_port=${BOTJOBS_WORKER_HTTP_PORT:-9091}
pg_uri=$(bash scripts/pg.sh uri "$pg_port")
brokers=127.0.0.1:$k_port

alive() { [ -f "$L/run/$1.pid" ] && kill -0 "$(cat "$L/run/$1.pid")" 2>/dev/null; }

stop_proc() {
	local name=$1 pid
	alive "$name" || { rm -f "$L/run/$name.pid"; return 0; }
	pid=$(cat "$L/run/$name.pid")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		echo "stack: $name did not stop in 30 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$L/run/$name.pid"
	echo "stack: $name stopped"
}

start_proc() {
	local name=$1
	shift
	if alive "$name"; then
		echo "stack: $name already running (pid $(cat "$L/run/$name.pid"))"
		return
	fi
	# Own session: a Ctrl-C on `make run` must not reach it; `down` stops it gracefully with SIGTERM.
	BOTJOBS_PG_URI=$pg_uri BOTJOBS_KAFKA_BROKERS=$brokers setsid nohup "$@" >>"$L/log/$name.log" 2>&1 </dev/null &
	echo $! >"$L/run/$name.pid"
}

wait_ready() {
	local name=$1 url=$2
	for _ in $(seq 1 300); do
		if curl -fsS "$url" >/dev/null 2>&1; then return 0; fi
		alive "$name" || { tail -n 20 "$L/log/$name.log" >&2; echo "stack: $name exited" >&2; exit 1; }
		sleep 0.1
	done
	echo "stack: $name not ready after 30 s ($url)" >&2
	tail -n 20 "$L/log/$name.log" >&2
	exit 1
}

token_valid() {
	local token=$1 hash
	hash=$(printf '%s' "$token" | sha256sum | cut -c1-64)
	psql -X -q -tA "$pg_uri" -c "SELECT 1 FROM api_tokens WHERE token_hash = '$hash' AND revoked_at IS NULL" |
		grep -q 1
}

up() {
	mkdir -p "$L/run" "$L/log"
	[ -x bin/botjobs-worker ] || { echo "stack: build first (make up does)" >&2; exit 1; }
	bash scripts/pg.sh start "$L/pg" "$pg_port"
	bash scripts/kafka.sh start "$L/kafka" "$k_port" "$k_cport"
	export BOTJOBS_PG_URI=$pg_uri BOTJOBS_KAFKA_BROKERS=$brokers
	bin/botjobsctl migrate
	bin/botjobsctl topics
	bin/botjobsctl load examples/demo-bot

	# The demo token: reuse the one in .local/env while it is valid (tokens are stored hashed: a lost one
	# cannot be shown again, so a new one is made).
	local token=""
	if [ -f "$L/env" ]; then
		token=$(sed -n 's/^export BOTJOBS_TOKEN=//p' "$L/env")
		[ -n "$token" ] && ! token_valid "$token" && token=""
	fi
	[ -n "$token" ] || token=$(bin/botjobsctl token create "Demo Inc" demo 2>/dev/null)

	start_proc worker bin/botjobs-worker --log-format=text --http-port="$whttp_port"
	start_proc producer bin/botjobs-producer --log-format=text --http-port="$http_port"
	wait_ready worker "http://127.0.0.1:$whttp_port/readyz"
	wait_ready producer "http://127.0.0.1:$http_port/readyz"

	cat >"$L/env" <<ENV
# botjobs local stack - source it: . .local/env
export BOTJOBS_URL=http://127.0.0.1:$http_port
export BOTJOBS_TOKEN=$token
export BOTJOBS_BOT_ID=1
export BOTJOBS_LEAD_ID=1
export KAFKA_BROKERS=$brokers
export PGURI=$pg_uri
export BOTJOBS_KAFKA_BROKERS=$brokers
export BOTJOBS_PG_URI=$pg_uri
ENV
	cat <<MSG

botjobs is up: producer http://127.0.0.1:$http_port, worker metrics http://127.0.0.1:$whttp_port/metrics
Kafka $(bash scripts/kafka.sh version) on $brokers, PostgreSQL on $pg_uri, logs in .local/log/

Try it:
  . .local/env
  curl -s -X POST \$BOTJOBS_URL/api/v1/bots/\$BOTJOBS_BOT_ID/jobs/schedule \\
       -H "Authorization: Bearer \$BOTJOBS_TOKEN" -H 'Content-Type: application/json' \\
       -d '{"trigger_code":"demo_echo","lead_id":1,"run_after_sec":2,"script_request_params":{"text":"hello"}}'
  sleep 3; bin/botjobsctl lead show 1 1          # attributes.echo = "hello"
  bin/botjobsctl tail outbound                   # {"type":"message","text":"echo: hello",...}
Stop it with: make down
MSG
}

down() {
	stop_proc producer
	stop_proc worker
	bash scripts/kafka.sh stop "$L/kafka"
	bash scripts/pg.sh stop "$L/pg"
	echo "stack: down"
}

logs() {
	mkdir -p "$L/log"
	touch "$L/log/worker.log" "$L/log/producer.log"
	exec tail -n 20 -F "$L/log/worker.log" "$L/log/producer.log"
}

case ${1:-} in
up) up ;;
down) down ;;
logs) logs ;;
run)
	up
	trap 'echo; down; exit 0' INT TERM
	tail -n 0 -F "$L/log/worker.log" "$L/log/producer.log" &
	wait $! || true
	;;
*)
	echo "usage: stack.sh up|down|run|logs" >&2
	exit 2
	;;
esac
