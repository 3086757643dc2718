#!/bin/sh
# docker-entrypoint.sh - the image's entrypoint (installed as /usr/local/bin/botjobs-entrypoint): one
# container-specific default, then exec the command, so the binary is PID 1 and gets SIGTERM itself.
#
# A worker's lease-owner name must differ between two starts of the process. The worker's own default,
# hostname-pid, does not in a container: a restarted container keeps its hostname and the binary is
# pid 1 again. A restarted worker with its predecessor's name would keep renewing the leases of the
# runs the predecessor died holding (the heartbeat renews every lease of that owner), so no worker
# would ever take them over and those leads would wait for good. BOTJOBS_WORKER_ID, when set, wins.
set -eu
case "${1:-}" in
*botjobs-worker)
	if [ -z "${BOTJOBS_WORKER_ID:-}" ]; then
		BOTJOBS_WORKER_ID="$(hostname)-$(cut -c1-8 /proc/sys/kernel/random/uuid)"
		export BOTJOBS_WORKER_ID
	fi
	;;
esac
exec "$@"
