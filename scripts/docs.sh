#!/usr/bin/env bash
# docs.sh DIR - assembles the API documentation the producer serves (--docs-dir; /api/docs,
# /api/openapi.json) into DIR, one flat directory (the producer serves plain file names only):
#   schemas/openapi.json and the JSON Schemas its relative $refs name, web/ (our page and its script),
#   and the Swagger UI files it needs (scripts/swagger-ui.sh fetches them once).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: docs.sh DIR}
ui=$(bash scripts/swagger-ui.sh)

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$(dirname "$out")/.docs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp schemas/openapi.json schemas/*.schema.json web/* "$tmp/"
cp "$ui/swagger-ui-bundle.js" "$ui/swagger-ui.css" "$ui/favicon-32x32.png" "$ui/favicon-16x16.png" "$tmp/"
# Swagger UI is Apache-2.0: its licence, notice and the licences of what its bundle includes go along.
cp "$ui/LICENSE" "$tmp/swagger-ui-LICENSE.txt"
cp "$ui/NOTICE" "$tmp/swagger-ui-NOTICE.txt"
cp "$ui/swagger-ui-bundle.js.LICENSE.txt" "$tmp/"
# The bundle names a source map we do not ship; browsers only ask for it with developer tools open.
chmod 755 "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
echo "docs: $out ($(ls "$out" | wc -l) files, Swagger UI $(basename "$ui" | sed 's/swagger-ui-dist-//'))"
