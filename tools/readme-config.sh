#!/bin/sh
# readme-config.sh - rewrites the configuration tables of README.md from the binaries' own
# --help-markdown, so the README always says what the code does. tests/integration/test_docs.py
# fails when README.md and the binaries disagree.
#   tools/readme-config.sh [BINDIR]      (default: bin)
set -eu
bindir=${1:-bin}
readme=README.md
tmp=$(mktemp)
cp "$readme" "$tmp"
for pair in producer:botjobs-producer worker:botjobs-worker ctl:botjobsctl; do
	name=${pair%%:*}
	bin=${pair#*:}
	table=$(mktemp)
	"$bindir/$bin" --help-markdown >"$table"
	awk -v start="<!-- config:$name:start -->" -v end="<!-- config:$name:end -->" -v table="$table" '
		$0 == start { print; while ((getline line < table) > 0) print line; skip = 1; next }
		$0 == end { skip = 0 }
		!skip { print }
	' "$tmp" >"$tmp.new"
	mv "$tmp.new" "$tmp"
	rm -f "$table"
done
mv "$tmp" "$readme"
