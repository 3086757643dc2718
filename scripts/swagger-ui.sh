#!/usr/bin/env bash
# swagger-ui.sh - Swagger UI's static files for the API documentation page: the npm package
# swagger-ui-dist at a pinned version, its tarball checked against a pinned SHA-512, unpacked into
# .local/npm/swagger-ui-dist-<version>/ (or $BOTJOBS_NPM_DIR/...) unless already there. Prints that directory.
# npm is needed only to fetch it (make deps, make docs, the Dockerfile's docs stage); the page is static
# files served by the producer, so nothing of Node runs at run time and the page works offline.
set -euo pipefail
version=5.34.1
sha512=552afc7d77c8f77a1b61a42270b25b2d42864710e88e3fd27d12430cb0a2a064d4063e012bf363e1e13d8c278202727154b8bb892fb4f0f6e264bcab40a06425

cd "$(dirname "$0")/.."
dest=${BOTJOBS_NPM_DIR:-$PWD/.local/npm}/swagger-ui-dist-$version
if [ ! -f "$dest/.complete" ]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "swagger-ui: npm is needed to fetch swagger-ui-dist@$version (make deps installs it)" >&2
		exit 1
	fi
	echo "deps: fetching swagger-ui-dist@$version from the npm registry" >&2
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && npm pack --silent "swagger-ui-dist@$version" >/dev/null)
	tgz=$tmp/swagger-ui-dist-$version.tgz
	got=$(sha512sum "$tgz" | cut -d' ' -f1)
	if [ "$got" != "$sha512" ]; then
		echo "swagger-ui: swagger-ui-dist-$version.tgz has SHA-512 $got, want $sha512" >&2
		exit 1
	fi
	# Unpack beside the destination and move it in whole: a concurrent run (make -j) keeps the first one.
	mkdir -p "$(dirname "$dest")"
	unpacked=$(mktemp -d "$(dirname "$dest")/.swagger-ui.XXXXXX")
	tar -xzf "$tgz" -C "$unpacked" --strip-components=1
	touch "$unpacked/.complete"
	chmod 755 "$unpacked"
	[ -f "$dest/.complete" ] || rm -rf "$dest" # a leftover of an interrupted run
	mv -T "$unpacked" "$dest" 2>/dev/null || rm -rf "$unpacked"
fi
echo "$dest"
