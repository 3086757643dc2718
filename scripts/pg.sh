#!/usr/bin/env bash
# pg.sh - a throwaway PostgreSQL cluster for the local stack and the tests.
#   pg.sh start DATADIR PORT    initdb if needed (as user postgres when run as root: initdb refuses root),
#                               start on 127.0.0.1:PORT with the socket in DATADIR, create database botjobs
#   pg.sh stop DATADIR          fast shutdown; harmless when not running
#   pg.sh destroy DATADIR       stop and delete the cluster
#   pg.sh uri PORT              the connection URI
# Durability settings stay PostgreSQL's defaults (fsync on, synchronous_commit on).
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop|uri ...}

bindir=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bindir/pg_ctl" ] || { echo "pg.sh: PostgreSQL server binaries not found (make deps)" >&2; exit 1; }

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# initdb runs as postgres: if it cannot reach DATADIR (a clone under /root, say), keep the data in
# /var/tmp and leave a symlink where it was asked for.
prepare_dir() {
	local dir=$1
	if [ -L "$dir" ] || [ -f "$dir/PG_VERSION" ]; then return; fi
	mkdir -p "$dir"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$dir"
		chmod 700 "$dir"
		if ! runuser -u postgres -- test -w "$dir"; then
			local alt
			alt=/var/tmp/botjobs-pg-$(echo "$dir" | sha256sum | cut -c1-12)
			rmdir "$dir"
			mkdir -p "$alt"
			chown postgres: "$alt"
			chmod 700 "$alt"
			ln -s "$alt" "$dir"
		fi
	fi
}

case $cmd in
start)
	dir=${2:?DATADIR}
	port=${3:?PORT}
	dir=$(realpath -m "$dir")
	prepare_dir "$dir"
	data=$(realpath "$dir")
	if [ ! -f "$data/PG_VERSION" ]; then
		as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$data.initdb.log" 2>&1 ||
			{ cat "$data.initdb.log" >&2; exit 1; }
		rm -f "$data.initdb.log"
	fi
	if as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		echo "pg.sh: already running ($data)"
	else
		as_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start \
			-o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null ||
			{ tail -n 20 "$data/server.log" >&2; exit 1; }
	fi
	psql="$bindir/psql -X -q -h 127.0.0.1 -p $port -U postgres"
	if ! $psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'botjobs'" | grep -q 1; then
		$psql -d postgres -c "CREATE DATABASE botjobs"
	fi
	echo "pg.sh: PostgreSQL $("$bindir/postgres" -V | awk '{print $3}') on 127.0.0.1:$port ($data)"
	;;
stop)
	dir=${2:?DATADIR}
	[ -e "$dir" ] || exit 0
	data=$(realpath "$dir")
	if [ -f "$data/postmaster.pid" ]; then
		as_pg "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	fi
	;;
destroy)
	dir=${2:?DATADIR}
	"$0" stop "$dir"
	[ -e "$dir" ] || exit 0
	rm -rf "$(realpath "$dir")"
	rm -rf "$dir"
	;;
uri)
	echo "postgresql://postgres@127.0.0.1:${2:?PORT}/botjobs"
	;;
*)
	echo "usage: pg.sh start DATADIR PORT | stop DATADIR | destroy DATADIR | uri PORT" >&2
	exit 2
	;;
esac
