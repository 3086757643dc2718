#!/usr/bin/env bash
# deps.sh - installs what botjobs needs and is missing (idempotent, quick when all is there):
#   Debian packages (compilers, libraries, PostgreSQL, a JDK, Maven), a real Apache Kafka broker as jars from
#   Maven Central into .local/kafka/libs, and a Python virtualenv with the test packages in .local/venv.
#   Also Swagger UI's static files for the API documentation page (npm, pinned: scripts/swagger-ui.sh).
# Set BOTJOBS_DEPS_LINT=1 to add clang-format, clang-tidy and cppcheck (make lint / format-check do).
# Set BOTJOBS_DEPS_BROWSER=1 to add Chromium for the docs page test (test_docs_ui.py); CI gets it unless
# BOTJOBS_DEPS_BROWSER=0. It is large, so a plain `make deps` does not install it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

pkgs=(build-essential pkg-config librdkafka-dev libjansson-dev libmujs-dev libpq-dev libmicrohttpd-dev
      libcurl4-openssl-dev libseccomp-dev libcriterion-dev postgresql postgresql-contrib curl ca-certificates procps)
[ "${BOTJOBS_DEPS_LINT:-0}" = 1 ] && pkgs+=(clang-format clang-tidy cppcheck)
command -v java >/dev/null 2>&1 || pkgs+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
command -v python3 >/dev/null 2>&1 || pkgs+=(python3 python3-venv)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
if [ "${BOTJOBS_DEPS_BROWSER:-}" = 1 ] || { [ -n "${CI:-}" ] && [ "${BOTJOBS_DEPS_BROWSER:-}" != 0 ]; }; then
	command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Kafka broker jars (3.9.x; see kafka/pom.xml for why not 4.x).
kver=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' kafka/pom.xml)
libs=$root/.local/kafka/libs
if [ ! -f "$libs/kafka_2.13-$kver.jar" ]; then
	echo "deps: fetching Apache Kafka $kver from Maven Central"
	rm -rf "$libs.tmp"
	mvn -B -q -Dstyle.color=never -f kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.tmp"
	rm -rf "$libs"
	mv "$libs.tmp" "$libs"
fi

# Python test environment.
venv=$root/.local/venv
req=tests/integration/requirements.txt
stamp=$venv/.req-$(sha256sum "$req" | cut -c1-16)
if [ ! -f "$stamp" ]; then
	echo "deps: preparing the Python test environment"
	rm -rf "$venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
	touch "$stamp"
fi

# Swagger UI for the API documentation page (make docs); quick when it is there.
bash scripts/swagger-ui.sh >/dev/null
