# wa-relay
#
#   make            build the nginx module (and the worker, the unit tests)
#   make run        build, start Redis + nginx + a demo sender on loopback
#   make test       install what is missing, build, run every test
#   make deps       install the Debian packages the project needs (as root)
#
# NGINX_SRC names the nginx source tree to build against: by default the one
# Debian's nginx-dev ships, configured with the packaged nginx's own flags so
# that /usr/sbin/nginx loads build/ngx_http_whatsapp_module.so.

SHELL      := /bin/bash
NGINX_SRC  ?= /usr/share/nginx/src
NGINX_BIN  ?= /usr/sbin/nginx
BUILD      := $(CURDIR)/build
NGX_BUILD  := $(BUILD)/nginx
MODULE     := $(BUILD)/ngx_http_whatsapp_module.so
UNIT       := $(BUILD)/unit_tests
WORKER     := $(BUILD)/wa-relayd
FIXTURES   ?= $(abspath $(CURDIR)/../shared/fixtures/meta-payloads)

CC         ?= cc
CXX        ?= g++
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Werror
CORE_SRCS  := $(wildcard src/core/*.c)
CORE_HDRS  := $(wildcard src/core/*.h)
# the parser's C++ side (simdjson): an object of its own for every build
JSON_SRC   := src/core/wa_json.cpp
JSON_LIBS  := -lsimdjson -lstdc++
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)

# Debian packages: to build, to run, to test
PACKAGES   := nginx nginx-dev libssl-dev libhiredis-dev libjansson-dev \
              libsimdjson-dev g++ redis-server libcurl4-openssl-dev check \
              pkg-config perl curl wrk clang libclang-rt-14-dev gcc make \
              procps

PROVE_ARGS ?= -r

.PHONY: all module worker unit deps test test-unit test-t run bench asan \
        test-asan fuzz fuzz-build test-fuzz clean

all: module worker unit

# --- the nginx module ------------------------------------------------------

# $(call ngx_configure,build dir,extra configure args): the nginx source
# tree, configured with the packaged nginx's flags plus this module
define ngx_configure
	@test -x $(NGINX_SRC)/configure || { \
	    echo "no nginx source in $(NGINX_SRC): apt-get install nginx-dev," \
	         "or make NGINX_SRC=/path/to/nginx-x.y.z"; exit 1; }
	rm -rf $(1)
	mkdir -p $(dir $(1))
	cp -a $(NGINX_SRC) $(1)
	cd $(1) && \
	if [ -f conf_flags ]; then . ./conf_flags; \
	else NGX_CONF_FLAGS=(--with-compat --with-threads); fi && \
	./configure "$${NGX_CONF_FLAGS[@]}" $(2) \
	    --add-dynamic-module=$(CURDIR) > $(1).configure.log 2>&1 || \
	    { tail -20 $(1).configure.log; exit 1; }
endef

# the packaged nginx's compiler and linker options, as `nginx -V` prints
# them: the module is compiled as Debian compiled nginx, -O2 included
# (nginx's configure alone would use -O)
NGX_CC_OPT ?= $(shell $(NGINX_BIN) -V 2>&1 | \
                sed -n "s/.*--with-cc-opt='\([^']*\)'.*/\1/p")
NGX_LD_OPT ?= $(shell $(NGINX_BIN) -V 2>&1 | \
                sed -n "s/.*--with-ld-opt='\([^']*\)'.*/\1/p")

$(NGX_BUILD)/objs/Makefile: config redis/wa_ingest.lua tools/lua2c
	$(call ngx_configure,$(NGX_BUILD),--with-cc-opt="$(NGX_CC_OPT)" \
	    --with-ld-opt="$(NGX_LD_OPT)")

module: $(NGX_BUILD)/objs/Makefile
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_whatsapp_module.so $(MODULE)

# --- the worker ------------------------------------------------------------

WORKER_SRCS := $(wildcard src/worker/*.c) src/core/wa_keyword.c \
               src/core/wa_streams.c \
               src/core/wa_outbox.c src/core/wa_graph.c

$(BUILD)/wa_state_lua.h: redis/wa_state.lua tools/lua2c
	@mkdir -p $(BUILD)
	sh tools/lua2c $< > $@

$(WORKER): $(WORKER_SRCS) $(wildcard src/worker/*.h) $(CORE_HDRS) \
           $(BUILD)/wa_state_lua.h
	$(CC) $(CFLAGS) $(WARN) -Isrc/core -Isrc/worker -I$(BUILD) \
	    -o $@ $(WORKER_SRCS) -lhiredis -ljansson -lcurl -lpthread

worker: $(WORKER)

# --- C unit tests (Check) --------------------------------------------------

$(UNIT).json.o: $(JSON_SRC) src/core/wa_json.h
	@mkdir -p $(dir $@)
	$(CXX) $(CFLAGS) $(WARN) -Isrc/core -c -o $@ $<

$(UNIT): $(wildcard t/unit/*.c) $(wildcard t/unit/*.h) $(CORE_SRCS) \
         $(CORE_HDRS) $(UNIT).json.o
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -Isrc/core \
	    -DWA_FIXTURES='"$(FIXTURES)"' \
	    -o $@ $(wildcard t/unit/*.c) $(CORE_SRCS) $(UNIT).json.o \
	    -ljansson $(JSON_LIBS) -lcrypto $(CHECK_LIBS)

unit: $(UNIT)

# --- dependencies ----------------------------------------------------------

deps:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	        grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; \
	    if [ "$$(id -u)" != 0 ]; then \
	        echo "run as root, or: apt-get install $$missing"; exit 1; fi; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq $$missing; \
	fi

# --- tests and demo --------------------------------------------------------

test: deps
	$(MAKE) all
	$(MAKE) test-unit test-t test-fuzz

test-unit: $(UNIT)
	$(UNIT)

test-t: module $(UNIT) $(WORKER)
	WA_MODULE=$(MODULE) WA_NGINX=$(NGINX_BIN) WA_FIXTURES=$(FIXTURES) \
	    WA_WORKER=$(WORKER) \
	    prove $(PROVE_ARGS) t/

run: deps
	$(MAKE) all
	WA_MODULE=$(MODULE) WA_NGINX=$(NGINX_BIN) WA_FIXTURES=$(FIXTURES) \
	    WA_WORKER=$(WORKER) \
	    perl tools/demo

clean:
	rm -rf $(BUILD)

# --- sanitizers: the module, the worker and the unit tests built with
# AddressSanitizer and UndefinedBehaviorSanitizer, and every test run
# against them; the packaged nginx loads the module with the ASan runtime
# preloaded.  A report anywhere fails the run.

ASAN       := $(BUILD)/asan
SANITIZE   := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
ASAN_RT    := $(shell $(CC) -print-file-name=libasan.so) \
              $(shell $(CC) -print-file-name=libubsan.so)

$(ASAN)/nginx/objs/Makefile: config redis/wa_ingest.lua tools/lua2c
	$(call ngx_configure,$(ASAN)/nginx,--with-cc-opt="$(SANITIZE)" \
	    --with-ld-opt="$(SANITIZE)")

asan: $(ASAN)/nginx/objs/Makefile $(BUILD)/wa_state_lua.h
	$(MAKE) -C $(ASAN)/nginx -f objs/Makefile modules
	cp $(ASAN)/nginx/objs/ngx_http_whatsapp_module.so $(ASAN)/
	$(MAKE) WORKER=$(ASAN)/wa-relayd UNIT=$(ASAN)/unit_tests \
	    CFLAGS="-O1 -g $(SANITIZE)" $(ASAN)/wa-relayd $(ASAN)/unit_tests

test-asan: deps
	$(MAKE) asan
	rm -rf $(ASAN)/reports && mkdir -p $(ASAN)/reports && \
	    chmod 1777 $(ASAN)/reports
	WA_MODULE=$(ASAN)/ngx_http_whatsapp_module.so WA_NGINX=$(NGINX_BIN) \
	    WA_NGINX_PRELOAD="$(ASAN_RT)" WA_FIXTURES=$(FIXTURES) \
	    WA_WORKER=$(ASAN)/wa-relayd WA_UNIT=$(ASAN)/unit_tests \
	    ASAN_OPTIONS=log_path=$(ASAN)/reports/asan:detect_leaks=0 \
	    UBSAN_OPTIONS=log_path=$(ASAN)/reports/ubsan:print_stacktrace=1 \
	    prove $(PROVE_ARGS) t/
	@if ls $(ASAN)/reports/* >/dev/null 2>&1; then \
	    cat $(ASAN)/reports/*; echo "sanitizer reports: see above"; \
	    exit 1; fi
	@echo "sanitizers: no report"

# --- fuzzing (libFuzzer, clang): make fuzz runs each target FUZZ_SECONDS;
# make test runs each for FUZZ_SHORT.  Seeds: the fixtures and
# t/fuzz/<target>/ (kept regression inputs: a crash found is added there).

FUZZ          := $(BUILD)/fuzz
FUZZ_TARGETS  := normalize signature query outbox
FUZZ_SECONDS  ?= 120
FUZZ_SHORT    ?= 12
FUZZ_FLAGS    := -g -O1 -fsanitize=fuzzer,address,undefined \
                 -fno-sanitize-recover=undefined

$(FUZZ)/wa_json.o: $(JSON_SRC) src/core/wa_json.h
	@mkdir -p $(FUZZ)
	clang++ $(FUZZ_FLAGS) -Isrc/core -c -o $@ $<

# linked by clang++, for the sanitizers' C++ runtime; the sources stay C
$(FUZZ)/fuzz_%: t/fuzz/fuzz_%.c $(CORE_SRCS) $(CORE_HDRS) $(FUZZ)/wa_json.o
	@mkdir -p $(FUZZ)
	clang++ $(FUZZ_FLAGS) -Isrc/core -o $@ -x c $< $(CORE_SRCS) \
	    -x none $(FUZZ)/wa_json.o -ljansson $(JSON_LIBS) -lcrypto

$(FUZZ)/seeds: tools/fuzz-seeds $(wildcard $(FIXTURES)/*.json)
	rm -rf $@ && mkdir -p $@
	perl tools/fuzz-seeds $(FIXTURES) $@

fuzz-build: $(addprefix $(FUZZ)/fuzz_,$(FUZZ_TARGETS)) $(FUZZ)/seeds

# $(call fuzz_run,seconds)
define fuzz_run
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ)/corpus/$$t t/fuzz/$$t; \
	    echo "fuzzing $$t for $(1) s"; \
	    $(FUZZ)/fuzz_$$t -max_total_time=$(1) -max_len=65536 \
	        -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
	        -artifact_prefix=t/fuzz/$$t/ \
	        $(FUZZ)/corpus/$$t t/fuzz/$$t $(FUZZ)/seeds/$$t \
	        > $(FUZZ)/$$t.log 2>&1 || \
	        { tail -40 $(FUZZ)/$$t.log; echo "fuzz_$$t failed: the input" \
	          "is in t/fuzz/$$t/"; exit 1; }; \
	    grep -E '^#[0-9]+.*DONE' $(FUZZ)/$$t.log | tail -1; \
	done
endef

fuzz: deps fuzz-build
	$(call fuzz_run,$(FUZZ_SECONDS))

test-fuzz: fuzz-build
	$(call fuzz_run,$(FUZZ_SHORT))

# --- benchmarks (not part of make test) --------------------------------------

bench: deps
	$(MAKE) all
	WA_MODULE=$(MODULE) WA_NGINX=$(NGINX_BIN) WA_FIXTURES=$(FIXTURES) \
	    WA_WORKER=$(WORKER) perl tools/bench $(BENCH_ARGS)
