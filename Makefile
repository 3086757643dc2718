# botjobs - build, test and run.
#
#   make            build bin/botjobs-producer, bin/botjobs-worker, bin/botjobs-sandbox, bin/botjobsctl
#   make deps       install what is missing (Debian packages, Kafka jars, Python test env)
#   make test       deps -> build -> unit tests -> integration tests (real PostgreSQL + Kafka)
#   make chaos      fault injection under load (docs/chaos.md); make chaos-short is CI's short run
#   make run        local stack in the foreground (Ctrl-C stops it); make up / make down
#   make docs       build/docs: the OpenAPI document, JSON Schemas and Swagger UI the producer serves at /api/docs
#   make SANITIZE=1 ...   the same with ASan + UBSan (objects and binaries under build/san)
#   make WERROR=1   warnings are errors (the default when CI is set)
#   make fuzz       libFuzzer targets (tests/fuzz/), FUZZ_SECONDS (60) each; FUZZ_TARGETS=request to pick
#   make valgrind   every unit test under valgrind memcheck (errors and definite/indirect leaks fail it)

CC       ?= cc
SANITIZE ?= 0
ifdef CI
WERROR   ?= 1
endif
WERROR   ?= 0

# FUZZ=1: the fuzz variant (build/fuzz): clang, ASan + UBSan and libFuzzer's coverage; `make fuzz` uses it.
FUZZ     ?= 0
FUZZ_CC  ?= clang
ifeq ($(FUZZ),1)
VARIANT  := fuzz
CC       := $(FUZZ_CC)
else ifeq ($(SANITIZE),1)
VARIANT  := san
else
VARIANT  := rel
endif
B        := build/$(VARIANT)
BINDIR   := $(if $(filter 1,$(SANITIZE)),$(B)/bin,bin)

PKGS     := rdkafka jansson mujs libpq libmicrohttpd libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
            -Wvla -Wwrite-strings -Werror=implicit-function-declaration
HARDEN   := -fstack-protector-strong -D_FORTIFY_SOURCE=2
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c17 $(WARN) $(HARDEN) -pthread -Icommon -I$(B)/gen $(PKG_CFLAGS)
CPPFLAGS += -D_POSIX_C_SOURCE=200809L
LDFLAGS  += -pthread -Wl,-z,relro,-z,now
LDLIBS   += $(PKG_LIBS) -lm
ifeq ($(WERROR),1)
CFLAGS   += -Werror
endif
ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1
LDFLAGS  += -fsanitize=address,undefined
endif
ifeq ($(FUZZ),1)
# (clang's -Wpedantic also flags the GNU statement expressions of librdkafka's RD_KAFKA_V_* macros)
CFLAGS   += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 \
            -Wno-gnu-statement-expression
LDFLAGS  += -fsanitize=address,undefined
endif

COMMON_SRC := $(wildcard common/*.c)
PROD_SRC   := $(wildcard producer/*.c)
WORK_SRC   := $(wildcard worker/*.c)
CTL_SRC    := $(wildcard ctl/*.c)
SB_SRC     := $(wildcard sandbox/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
MIGRATIONS := $(sort $(wildcard schemas/sql/*.sql))

obj = $(patsubst %.c,$(B)/%.o,$(1))
LIBCOMMON  := $(B)/libcommon.a
LIBWORKER  := $(B)/libworker.a
LIBPRODUCER := $(B)/libproducer.a
LIBCTL     := $(B)/libctl.a
GEN_MIGR   := $(B)/gen/cm_migrations_data.c

PROGS := $(BINDIR)/botjobs-producer $(BINDIR)/botjobs-worker $(BINDIR)/botjobs-sandbox $(BINDIR)/botjobsctl
UNITS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))

.SECONDARY:
.PHONY: all deps deps-lint docs test unit integration chaos chaos-short fuzz fuzz-build valgrind up down run logs clean format format-check lint bench help
all: $(PROGS)

help:
	@sed -n '3,12p' Makefile

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(GEN_MIGR): $(MIGRATIONS) schemas/sql tools/embed-sql.sh
	@mkdir -p $(dir $@)
	sh tools/embed-sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(B)/gen/cm_migrations_data.o: $(GEN_MIGR)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(call obj,$(COMMON_SRC)) $(B)/gen/cm_migrations_data.o
	@$(AR) rcs $@ $^

# Everything of the worker but main(), so unit tests can link its modules.
$(LIBWORKER): $(call obj,$(filter-out worker/main.c,$(WORK_SRC)))
	@$(AR) rcs $@ $^

# Everything of the producer but main(), for the same reason.
$(LIBPRODUCER): $(call obj,$(filter-out producer/main.c,$(PROD_SRC)))
	@$(AR) rcs $@ $^

# Everything of botjobsctl but main(), for the same reason.
$(LIBCTL): $(call obj,$(filter-out ctl/main.c,$(CTL_SRC)))
	@$(AR) rcs $@ $^

$(BINDIR)/botjobs-producer: $(B)/producer/main.o $(LIBPRODUCER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/botjobs-worker: $(B)/worker/main.o $(LIBWORKER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The sandbox child (worker/wk_sandbox.h): MuJS and the frame loop, linked without the Kafka,
# PostgreSQL and HTTP libraries.
SB_LIBS := $(shell pkg-config --libs jansson mujs libseccomp 2>/dev/null) -lm
$(B)/sandbox/%.o: CFLAGS += -Iworker $(shell pkg-config --cflags libseccomp 2>/dev/null)

$(BINDIR)/botjobs-sandbox: $(call obj,$(SB_SRC)) $(call obj,worker/wk_js.c worker/wk_js_api.c worker/wk_js_script.c) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(SB_LIBS)

# bench/bench_sandbox: what the sandbox costs, without a database or Kafka (bench.py w7).
$(B)/bench/%.o: CFLAGS += -Iworker
$(B)/bench/bench_sandbox: $(B)/bench/bench_sandbox.o $(LIBWORKER) $(LIBCOMMON) | $(BINDIR)/botjobs-sandbox
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# bench/loadgen: the open-loop HTTP load generator of bench.py w3 and w4 (no library).
$(B)/bench/loadgen: $(B)/bench/loadgen.o
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^

BENCH_TOOLS := $(B)/bench/bench_sandbox $(B)/bench/loadgen

$(BINDIR)/botjobsctl: $(B)/ctl/main.o $(LIBCTL) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests look into the modules they test.
$(B)/tests/unit/%.o: CFLAGS += -Iworker -Iproducer -Ictl -Wno-write-strings

# The sandbox tests start the sandbox binary of the same build.
$(B)/tests/unit/test_sandbox.o: CPPFLAGS += -DBOTJOBS_SANDBOX_BIN='"$(abspath $(BINDIR))/botjobs-sandbox"'
$(B)/tests/test_sandbox: | $(BINDIR)/botjobs-sandbox

$(B)/tests/test_%: $(B)/tests/unit/test_%.o $(LIBWORKER) $(LIBPRODUCER) $(LIBCTL) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# Fuzz targets (FUZZ=1 only): libFuzzer's main; a target may stub a module it does not link (fuzz_api).
$(B)/tests/fuzz/%.o: CFLAGS += -Iworker -Iproducer -Isandbox
$(B)/tests/fuzz_%: $(B)/tests/fuzz/fuzz_%.o $(LIBWORKER) $(LIBPRODUCER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

-include $(shell find build -name '*.d' 2>/dev/null)

deps:
	@bash scripts/deps.sh

deps-lint:
	@BOTJOBS_DEPS_LINT=1 bash scripts/deps.sh

# The API documentation the producer serves (/api/docs, /api/openapi.json; --docs-dir, by default build/docs
# next to bin/): schemas/openapi.json and the JSON Schemas, web/, and Swagger UI's static files (fetched from
# npm once, at a pinned version: scripts/swagger-ui.sh), in one flat directory.
docs:
	@bash scripts/docs.sh build/docs

# Unit tests: Criterion binaries, each test in its own process.
# A leak LeakSanitizer reports from a test's process does not fail that test: the output is checked.
unit: $(UNITS)
	@set -e; for t in $(UNITS); do echo "== $$t"; rc=0; $$t --jobs=2 >$(B)/unit.out 2>&1 || rc=$$?; \
		cat $(B)/unit.out; [ $$rc = 0 ] || exit $$rc; \
		if grep -q "ERROR: LeakSanitizer" $(B)/unit.out; then echo "$$t: LeakSanitizer found a leak"; exit 1; fi; \
	done

# Fuzzing (tests/fuzz/, README "Testing"): each target runs FUZZ_SECONDS on its committed seeds
# (tests/fuzz/corpus/<name>/, read-only) plus what it finds (build/fuzz/corpus/<name>/); a crash
# leaves its input in build/fuzz/artifacts/ and fails the run.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_ARGS    ?=
fuzz: deps
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus/$$t build/fuzz/artifacts; \
		echo "== fuzz_$$t: $(FUZZ_SECONDS) s"; \
		build/fuzz/tests/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/$$t- $(FUZZ_ARGS) \
			build/fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>build/fuzz/$$t.log || { tail -60 build/fuzz/$$t.log; exit 1; }; \
		grep -E "^#[0-9]+[[:space:]]+(DONE|INITED)|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" build/fuzz/$$t.log; \
	done

# Unit tests under valgrind memcheck, on the plain build. Criterion runs each test in a child it
# re-executes, so children are traced; not the sandbox binaries some tests start (seccomp refuses
# valgrind's syscalls, and the 300 ms watchdog tests would time out). One log per process in
# build/rel/valgrind/; a process with an error or a definite/indirect leak fails the target.
# Every test process pays valgrind's start-up (~1 s on one core): all suites take ~8 min on 2 cores, so
# CI runs the suites that parse hostile input (VALGRIND_TESTS="job time ..."; empty = all).
VALGRIND_TESTS ?=
VALGRIND_UNITS  = $(if $(strip $(VALGRIND_TESTS)),$(patsubst %,$(B)/tests/test_%,$(VALGRIND_TESTS)),$(UNITS))
VALGRIND_JOBS  ?= 2
VALGRIND_FLAGS ?= --trace-children=yes --trace-children-skip='*botjobs-sandbox*,*fake-sandbox*,/bin/*,/usr/bin/*' \
		  --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
		  --error-exitcode=99 --read-inline-info=no
valgrind: $(VALGRIND_UNITS)
	@[ "$(VARIANT)" = rel ] || { echo "make valgrind runs the plain build: no SANITIZE=1 or FUZZ=1"; exit 2; }
	@rm -rf $(B)/valgrind && mkdir -p $(B)/valgrind
	@fail=0; for t in $(VALGRIND_UNITS); do n=$$(basename $$t); \
		valgrind $(VALGRIND_FLAGS) --log-file=$(B)/valgrind/$$n.%p.log $$t --jobs=$(VALGRIND_JOBS) \
			>$(B)/valgrind/$$n.out 2>&1 || { cat $(B)/valgrind/$$n.out; fail=1; }; \
		echo "== $$n: $$(grep -ho 'Tested: .*' $(B)/valgrind/$$n.out)"; \
	done; \
	bad=$$(grep -lE "ERROR SUMMARY: [1-9]" $(B)/valgrind/*.log); \
	for f in $$bad; do echo "--- $$f"; cat $$f; done; \
	echo "valgrind: $$(ls $(B)/valgrind/*.log | wc -l) processes, $$(echo $$bad | wc -w) with errors or leaks"; \
	[ $$fail = 0 ] && [ -z "$$bad" ]

fuzz-build: $(patsubst %,$(B)/tests/fuzz_%,$(FUZZ_TARGETS))

# Integration tests: pytest starts its own PostgreSQL and Kafka on free ports.
integration: $(PROGS) docs
	BOTJOBS_BIN_DIR=$(abspath $(BINDIR)) .local/venv/bin/python -m pytest -v -p no:cacheprovider tests/integration $(PYTEST_ARGS)

# Fault injection (issue 8, docs/chaos.md): every scenario under load while a nemesis kills, stops,
# pauses and slows the producer, the workers, Kafka and PostgreSQL; then a checker compares what the
# clients were told with PostgreSQL and the topics. Exit 1 on anything lost, duplicated or out of order.
# chaos-short is what CI runs (every scenario, 10 s of load each); CHAOS_ARGS adds chaos.py flags.
CHAOS_DURATION ?= 60
chaos: $(PROGS)
	BOTJOBS_BIN_DIR=$(abspath $(BINDIR)) .local/venv/bin/python tests/chaos/chaos.py --duration $(CHAOS_DURATION) $(CHAOS_ARGS)

chaos-short: $(PROGS)
	BOTJOBS_BIN_DIR=$(abspath $(BINDIR)) .local/venv/bin/python tests/chaos/chaos.py --duration 10 --drain 90 $(CHAOS_ARGS)

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

up: deps all docs
	@bash scripts/stack.sh up

down:
	@bash scripts/stack.sh down

logs:
	@bash scripts/stack.sh logs

run: deps all docs
	@bash scripts/stack.sh run

# Benchmarks (bench/run --help): deps with gnuplot for the plots, the binaries and the bench tools, then every
# workload 3 times; make bench BENCH_ARGS="--quick" for a smoke run.
bench:
	@BOTJOBS_DEPS_BENCH=1 bash scripts/deps.sh
	@$(MAKE) --no-print-directory all $(BENCH_TOOLS)
	@bash bench/run $(BENCH_ARGS)

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find common producer worker ctl tests -name '*.[ch]')

format:
	clang-format -i $(C_FILES)

format-check: deps-lint
	clang-format --dry-run --Werror $(C_FILES)

lint: deps-lint $(GEN_MIGR)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --inline-suppr \
		--std=c11 -Icommon --include=/usr/include/jansson.h --suppress=missingIncludeSystem \
		--suppress=ctuuninitvar common producer worker ctl sandbox
	clang-tidy --quiet $(filter %.c,$(C_FILES)) -- $(CPPFLAGS) -std=c17 -Icommon -Iworker -Iproducer -Ictl -I$(B)/gen \
		$(PKG_CFLAGS)

clean:
	rm -rf build bin
