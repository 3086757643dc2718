#!/usr/bin/env bash
# deps.sh - installs what botjobs needs and is missing (idempotent, quick when all is there):
#   Debian packages (compilers, libraries, PostgreSQL, a JDK, Maven), a real Apache Kafka broker as jars from
#   Maven Central into .local/kafka/libs, and a Python virtualenv with the test packages in .local/venv.
#   Also Swagger UI's static files for the API documentation page (npm, pinned: scripts/swagger-ui.sh).
# Set BOTJOBS_DEPS_LINT=1 to add clang-format, clang-tidy and cppcheck (make lint / format-check do).
# Set BOTJOBS_DEPS_BROWSER=1 to add Chromium for the docs page test (test_docs_ui.py); CI gets it unless
# BOTJOBS_DEPS_BROWSER=0. It is large, so a plain `make deps` does not install it.
# Set BOTJOBS_DEPS_DEPLOY=1 to add the offline checks of deploy/ (tests/integration/test_deploy.py): pinned
#   kubeconform and kustomize built with Go from the Go module proxy, the Kubernetes JSON schemas from the PyPI
#   package kubernetes-validate (made standalone for kubeconform) and the Compose schema from the PyPI package
#   docker-compose (data only, hash-pinned), all under .local/deploy (needs Go >= 1.21).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

pkgs=(build-essential pkg-config librdkafka-dev libjansson-dev libmujs-dev libpq-dev libmicrohttpd-dev
      libcurl4-openssl-dev libseccomp-dev libcriterion-dev postgresql postgresql-contrib curl ca-certificates procps)
# Test tools, not libraries the image builds with: clang + libclang-rt-dev (libFuzzer and its sanitizers)
# for `make fuzz`, valgrind for `make valgrind`.
pkgs+=(clang libclang-rt-dev valgrind)
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

# Offline checks of deploy/ and docker-compose.yml (BOTJOBS_DEPS_DEPLOY=1; .ci/run sets it).
if [ "${BOTJOBS_DEPS_DEPLOY:-0}" = 1 ]; then
	kubeconform_version=v0.7.0 # go 1.24 (a Go >= 1.21 fetches that toolchain itself, as a module)
	kustomize_version=v5.5.0   # the kustomize of kubectl 1.32
	k8s_versions="1.30.0 1.34.0" # what the manifests are validated against (test_deploy.py reads .local/deploy/k8s-versions)
	dep=$root/.local/deploy
	mkdir -p "$dep/bin"
	gobin=$(command -v go || true)
	[ -n "$gobin" ] || { [ -x /usr/local/go/bin/go ] && gobin=/usr/local/go/bin/go; }
	tool_stamp=$dep/bin/.tools-$kubeconform_version-$kustomize_version
	if [ ! -f "$tool_stamp" ]; then
		if [ -z "$gobin" ]; then
			echo "deps: BOTJOBS_DEPS_DEPLOY=1 needs Go >= 1.21 (Debian 12's golang-go is 1.19): install it from go.dev/dl" >&2
			exit 1
		fi
		echo "deps: building kubeconform $kubeconform_version and kustomize $kustomize_version (Go module proxy)"
		GOBIN=$dep/bin GOTOOLCHAIN=auto GOFLAGS=-mod=mod "$gobin" install "github.com/yannh/kubeconform/cmd/kubeconform@$kubeconform_version"
		GOBIN=$dep/bin GOTOOLCHAIN=auto GOFLAGS=-mod=mod "$gobin" install "sigs.k8s.io/kustomize/kustomize/v5@$kustomize_version"
		rm -f "$dep"/bin/.tools-*
		touch "$tool_stamp"
	fi
	schema_stamp=$dep/schemas/.$(sha256sum tests/integration/requirements-deploy.txt | cut -c1-16)-$(echo "$k8s_versions" | tr ' ' '_')
	if [ ! -f "$schema_stamp" ]; then
		echo "deps: Kubernetes JSON schemas ($k8s_versions) and the Compose schema (PyPI: tests/integration/requirements-deploy.txt)"
		rm -rf "$dep/dl" "$dep/schemas.tmp"
		"$venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
			--require-hashes -r tests/integration/requirements-deploy.txt -d "$dep/dl"
		"$venv/bin/python" - "$dep/dl" "$dep/dl/x" $k8s_versions <<'PY'
import pathlib, sys, zipfile
dl, out, versions = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
(wheel,) = dl.glob("kubernetes_validate-*.whl")
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if any(f"/v{v}-local" in n for v in versions):
            z.extract(n, out)
(wheel,) = dl.glob("docker_compose-*.whl")
with zipfile.ZipFile(wheel) as z:
    (out / "compose-spec.json").write_bytes(z.read("compose/config/compose_spec.json"))
PY
		"$venv/bin/python" scripts/k8s-schemas.py "$dep/dl/x/kubernetes_validate/kubernetes-json-schema" "$dep/schemas.tmp" $k8s_versions
		mv "$dep/dl/x/compose-spec.json" "$dep/schemas.tmp/compose-spec.json"
		rm -rf "$dep/schemas" "$dep/dl"
		mv "$dep/schemas.tmp" "$dep/schemas"
		echo "$k8s_versions" >"$dep/k8s-versions"
		touch "$schema_stamp"
	fi
fi

# Swagger UI for the API documentation page (make docs); quick when it is there.
bash scripts/swagger-ui.sh >/dev/null
