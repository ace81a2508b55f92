# wa-relay
#
#   make            build the nginx module (and the worker, the unit tests)
#   make run        build, start Redis + nginx + a demo sender on loopback
#   make test       install what is missing, build, run every test
#   make test-stress  the tests involving timing, under a CPU hog, pinned
#   make test-matrix NGINX_SOURCES=DIR  t/module against every nginx there
#   make deps       install the Debian packages the project needs (as root)
#   make install    the module, the worker, its man page and unit (DESTDIR,
#                   PREFIX); make deb builds the Debian packages instead
#
# NGINX_SRC names the nginx source tree to build against: by default the one
# Debian's nginx-dev ships, configured with the packaged nginx's own flags so
# that /usr/sbin/nginx loads build/ngx_http_whatsapp_module.so.  For another
# nginx: make module NGINX_SRC=/path/to/its/source NGINX_BIN=/path/to/it
# (the two must be of one version; NGINX_BIN= builds with --with-compat).

SHELL      := /bin/bash
NGINX_SRC  ?= /usr/share/nginx/src
NGINX_BIN  ?= /usr/sbin/nginx
BUILD      := $(CURDIR)/build
NGX_BUILD  := $(BUILD)/nginx
MODULE     := $(BUILD)/ngx_http_whatsapp_module.so
UNIT       := $(BUILD)/unit_tests
WORKER     := $(BUILD)/wa-relayd
FIXTURES   ?= $(CURDIR)/t/fixtures/payloads

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
              procps man-db systemd libnginx-mod-stream openssl \
              python3 python3-redis python3-jsonschema nodejs prometheus \
              libmicrohttpd-dev chromium valgrind libnginx-mod-http-lua \
              libpcre2-dev zlib1g-dev

PROVE_ARGS ?= -r

.PHONY: all module worker unit man deps test test-unit test-t test-acl \
        test-stress test-matrix consumers run \
        bench asan test-asan fuzz fuzz-build test-fuzz clean install \
        install-module install-worker deb test-deb

all: module worker unit

# --- the nginx module ------------------------------------------------------

# $(call ngx_configure,build dir,extra configure args): the nginx source
# tree, configured with NGINX_BIN's flags plus this module.  A module loads
# only into the nginx it was built for: the source must be that of
# NGINX_BIN, whose configure arguments (Debian's conf_flags for its own
# nginx, `nginx -V` for any other) and compiler and linker options are
# taken.  NGINX_BIN= takes none: --with-compat alone, which any binary of
# that version built --with-compat loads.  A release tree of a git
# repository has its configure in auto/.
define ngx_configure
	@test -x $(NGINX_SRC)/configure || test -x $(NGINX_SRC)/auto/configure \
	    || { echo "no nginx source in $(NGINX_SRC): apt-get install" \
	              "nginx-dev, or make NGINX_SRC=/path/to/nginx-x.y.z"; \
	         exit 1; }
	@src=$$(sh tools/nginx-version --source $(NGINX_SRC)); \
	bin=$$(sh tools/nginx-version --binary $(NGINX_BIN)); \
	if [ -n "$(NGINX_BIN)" ] && [ "$$src" != "$$bin" ]; then \
	    echo "$(NGINX_SRC) is $${src:-not an nginx source}, $(NGINX_BIN)" \
	         "is $${bin:-not an nginx}: a module loads only into the" \
	         "nginx it is built for. Build against the source of the" \
	         "nginx that loads it (NGINX_SRC=, NGINX_BIN=), or with" \
	         "NGINX_BIN= for no binary's flags"; exit 1; fi
	rm -rf $(1)
	mkdir -p $(dir $(1))
	cp -a $(NGINX_SRC) $(1)
	test -x $(1)/configure || cp $(1)/auto/configure $(1)/configure
	cd $(1) && \
	if [ -z "$(NGINX_BIN)" ]; then NGX_CONF_FLAGS=(--with-compat); \
	elif [ -f conf_flags ]; then . ./conf_flags; \
	else mapfile -t NGX_CONF_FLAGS < \
	        <(perl $(CURDIR)/tools/nginx-flags $(NGINX_BIN)); fi && \
	./configure "$${NGX_CONF_FLAGS[@]}" $(2) \
	    --add-dynamic-module=$(CURDIR) > $(1).configure.log 2>&1 || \
	    { tail -20 $(1).configure.log; exit 1; }
endef

# the packaged nginx's compiler and linker options, as `nginx -V` prints
# them: the module is compiled as Debian compiled nginx, -O2 included
# (nginx's configure alone would use -O)
NGX_CC_OPT ?= $(if $(NGINX_BIN),$(shell $(NGINX_BIN) -V 2>&1 | \
                sed -n "s/.*--with-cc-opt='\([^']*\)'.*/\1/p"))
NGX_LD_OPT ?= $(if $(NGINX_BIN),$(shell $(NGINX_BIN) -V 2>&1 | \
                sed -n "s/.*--with-ld-opt='\([^']*\)'.*/\1/p"))

$(NGX_BUILD)/objs/Makefile: config redis/wa_ingest.lua tools/lua2c
	$(call ngx_configure,$(NGX_BUILD), \
	    $(if $(NGX_CC_OPT),--with-cc-opt="$(NGX_CC_OPT)") \
	    $(if $(NGX_LD_OPT),--with-ld-opt="$(NGX_LD_OPT)"))

module: $(NGX_BUILD)/objs/Makefile
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_whatsapp_module.so $(MODULE)

# --- the worker ------------------------------------------------------------

WORKER_SRCS := $(wildcard src/worker/*.c) src/core/wa_keyword.c \
               src/core/wa_streams.c src/core/wa_partition.c \
               src/core/wa_outbox.c src/core/wa_graph.c src/core/wa_reply.c \
               src/core/wa_slots.c

$(BUILD)/wa_state_lua.h: redis/wa_state.lua tools/lua2c
	@mkdir -p $(BUILD)
	sh tools/lua2c $< > $@

# the dashboard's page, built into the worker
$(BUILD)/dashboard_html.h: src/worker/dashboard.html tools/lua2c
	@mkdir -p $(BUILD)
	sh tools/lua2c $< > $@

$(WORKER): $(WORKER_SRCS) $(wildcard src/worker/*.h) $(CORE_HDRS) \
           $(BUILD)/wa_state_lua.h $(BUILD)/dashboard_html.h
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Isrc/core -Isrc/worker -I$(BUILD) \
	    $(LDFLAGS) -o $@ $(WORKER_SRCS) -lhiredis -ljansson -lcurl -lcrypto \
	    -lmicrohttpd -lpthread

worker: $(WORKER)

# wa-relayd(8): the prose of docs/wa-relayd.8.in around the OPTIONS that the
# worker prints from its option table
MAN := $(BUILD)/wa-relayd.8

$(MAN): docs/wa-relayd.8.in $(WORKER)
	$(WORKER) --help-man > $@.options
	sed -e '/^@OPTIONS@$$/{r $@.options' -e 'd}' $< > $@
	rm -f $@.options

man: $(MAN)

# --- C unit tests (Check) --------------------------------------------------

$(UNIT).json.o: $(JSON_SRC) src/core/wa_json.h
	@mkdir -p $(dir $@)
	$(CXX) $(CFLAGS) $(WARN) -Isrc/core -c -o $@ $<

# the pure parts: src/core, and the worker's pacing
UNIT_SRCS  := $(CORE_SRCS) src/worker/pace.c

$(UNIT): $(wildcard t/unit/*.c) $(wildcard t/unit/*.h) $(UNIT_SRCS) \
         $(CORE_HDRS) src/worker/pace.h $(UNIT).json.o
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -Isrc/core -Isrc/worker \
	    -DWA_FIXTURES='"$(FIXTURES)"' \
	    -o $@ $(wildcard t/unit/*.c) $(UNIT_SRCS) $(UNIT).json.o \
	    -lhiredis -ljansson $(JSON_LIBS) -lcrypto $(CHECK_LIBS)

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

# what the suites, the demo and the bench run: the binaries built here
RUN_ENV  = WA_MODULE=$(MODULE) WA_NGINX=$(NGINX_BIN) WA_FIXTURES=$(FIXTURES) \
           WA_WORKER=$(WORKER)
TEST_ENV = $(RUN_ENV) WA_NODE_MODULES=$(CONSUMERS_NODE)/node_modules

test-t: module $(UNIT) $(WORKER) consumers
	$(TEST_ENV) prove $(PROVE_ARGS) t/

# the files whose cases involve timing (faults, freezes, a clock): each
# made deterministic, and proven so by make test-stress, which runs them
# STRESS_RUNS times beside a CPU hog and once pinned to a single core
STRESS_FILES := t/worker/w40-recovery.t t/sender/s10-sender.t \
                t/faults/f10-module-faults.t t/faults/f20-worker-faults.t \
                t/module/55-large-values.t t/module/60-dedupe.t \
                t/module/70-redis-down.t \
                t/module/80-redis-slow.t t/module/85-redis-backlog.t \
                t/module/86-redis-pipeline.t t/module/89-redis-preamble.t \
                t/module/90-lifecycle.t t/module/91-redis-wait.t \
                t/module/37-redis-acl.t t/consumers/c10-reference.t \
                t/worker/w70-media.t t/sender/s40-portfolio.t
STRESS_RUNS  ?= 5

test-stress: module $(UNIT) $(WORKER) consumers
	$(TEST_ENV) perl tools/stress --runs $(STRESS_RUNS) \
	    --logs $(BUILD)/stress $(STRESS_FILES)

# the t/module suite against every nginx whose release tarball is in
# NGINX_SOURCES (nginx, freenginx, Angie), each built as nginx.org builds
# its packages, and against Debian's own: a table, also in
# build/matrix/matrix.md (tools/matrix, docs/compatibility.md)
test-matrix: deps module $(WORKER)
	@test -n "$(NGINX_SOURCES)" || \
	    { echo "make test-matrix NGINX_SOURCES=/dir/of/tarballs"; exit 1; }
	$(TEST_ENV) perl tools/matrix --sources $(NGINX_SOURCES) \
	    --build $(BUILD)/matrix

# the Node reference consumer's ioredis, from the lock file, into a
# directory of its own under build/ (examples/consumers/node)
CONSUMERS_NODE := $(BUILD)/consumers-node
NODE_EXAMPLE   := examples/consumers/node

$(CONSUMERS_NODE)/node_modules/ioredis/package.json: \
	    $(NODE_EXAMPLE)/package.json $(NODE_EXAMPLE)/package-lock.json
	rm -rf $(CONSUMERS_NODE) && mkdir -p $(CONSUMERS_NODE)
	cp $^ $(CONSUMERS_NODE)/
	cd $(CONSUMERS_NODE) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

consumers: $(CONSUMERS_NODE)/node_modules/ioredis/package.json

# the suites of the module, the worker, the sender and the faults again,
# the module and the worker logging in as the ACL users of docs/redis.md
# with those permissions only (a test that cannot, says so: acl => 0)
test-acl: module $(WORKER)
	$(RUN_ENV) WA_REDIS_ACL=1 \
	    prove $(PROVE_ARGS) t/module t/worker t/sender t/faults t/cluster

run: deps
	$(MAKE) all
	$(RUN_ENV) perl tools/demo

clean:
	rm -rf $(BUILD)

# --- installing, without packages ---------------------------------------
#
#   make install [DESTDIR=/staging] [PREFIX=/usr/local]
#
# The module goes where the nginx of NGINX_BIN looks for modules, whatever
# PREFIX is; configuration under SYSCONFDIR is written only where there is
# none yet (an administrator's file is never overwritten).

PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/wa-relay
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(if $(filter /usr,$(PREFIX)),/lib,$(PREFIX)/lib)/systemd/system
NGX_MODULES ?= $(or $(shell $(NGINX_BIN) -V 2>&1 | \
                 sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p'), \
                 /usr/lib/nginx/modules)
NGX_AVAILABLE ?= $(PREFIX)/share/nginx/modules-available

install: install-module install-worker

install-module: module
	install -D -m 644 $(MODULE) \
	    $(DESTDIR)$(NGX_MODULES)/ngx_http_whatsapp_module.so
	install -d $(DESTDIR)$(NGX_AVAILABLE)
	echo 'load_module $(NGX_MODULES)/ngx_http_whatsapp_module.so;' \
	    > $(DESTDIR)$(NGX_AVAILABLE)/mod-http-whatsapp.conf
	install -D -m 644 dist/whatsapp-site.conf \
	    $(DESTDIR)$(DOCDIR)/examples/whatsapp-site.conf
	@echo "enable it: ln -s $(NGX_AVAILABLE)/mod-http-whatsapp.conf" \
	      "/etc/nginx/modules-enabled/50-mod-http-whatsapp.conf"

install-worker: worker man
	install -D -m 755 $(WORKER) $(DESTDIR)$(SBINDIR)/wa-relayd
	install -D -m 644 $(MAN) $(DESTDIR)$(MANDIR)/man8/wa-relayd.8
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|@SBINDIR@|$(SBINDIR)|' dist/wa-relayd.service \
	    > $(DESTDIR)$(UNITDIR)/wa-relayd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/wa-relayd.service
	install -D -m 644 dist/wa-relayd.env \
	    $(DESTDIR)$(DOCDIR)/examples/wa-relayd.env
	install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -D -m 644 -t $(DESTDIR)$(DOCDIR)/schema docs/schema/*.json
	install -D -m 644 -t $(DESTDIR)$(DOCDIR)/examples/consumers \
	    examples/consumers/python/wa_consumer.py \
	    examples/consumers/node/wa-consumer.js \
	    examples/consumers/node/package.json \
	    examples/consumers/node/package-lock.json
	test -e $(DESTDIR)$(SYSCONFDIR)/wa-relay/wa-relayd.env || \
	    install -D -m 644 dist/wa-relayd.env \
	        $(DESTDIR)$(SYSCONFDIR)/wa-relay/wa-relayd.env

# --- Debian packages: libnginx-mod-http-whatsapp and wa-relayd, in ../ of a
# copy of the tree (dpkg-buildpackage writes beside the source), collected
# in build/deb/.  make test-deb installs them, uses them, and purges them
# (as root: it changes the machine's packages).

DEB        := $(BUILD)/deb
DEB_DEPS   := debhelper dpkg-dev fakeroot lintian

deb:
	@$(MAKE) --no-print-directory deps PACKAGES="$(PACKAGES) $(DEB_DEPS)"
	rm -rf $(DEB) && mkdir -p $(DEB)/src
	tar -cf - --exclude=./build --exclude=./.git . | tar -xf - -C $(DEB)/src
	cd $(DEB)/src && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	    dpkg-buildpackage -b -us -uc > ../build.log 2>&1 || \
	    { tail -40 $(DEB)/build.log; exit 1; }
	rm -rf $(DEB)/src
	set -o pipefail; cd $(DEB) && \
	    lintian --fail-on error --tag-display-limit 0 *.deb \
	    | tee lintian.log
	cd $(DEB) && for d in *.deb; do echo "$$d:"; dpkg -c $$d; done

test-deb:
	WA_DEBS=$(DEB) WA_NGINX=$(NGINX_BIN) prove t/package/

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

asan: $(ASAN)/nginx/objs/Makefile $(BUILD)/wa_state_lua.h \
	    $(BUILD)/dashboard_html.h
	$(MAKE) -C $(ASAN)/nginx -f objs/Makefile modules
	cp $(ASAN)/nginx/objs/ngx_http_whatsapp_module.so $(ASAN)/
	$(MAKE) WORKER=$(ASAN)/wa-relayd UNIT=$(ASAN)/unit_tests \
	    CFLAGS="-O1 -g $(SANITIZE)" $(ASAN)/wa-relayd $(ASAN)/unit_tests

test-asan: deps
	$(MAKE) asan consumers
	rm -rf $(ASAN)/reports && mkdir -p $(ASAN)/reports && \
	    chmod 1777 $(ASAN)/reports
	WA_MODULE=$(ASAN)/ngx_http_whatsapp_module.so WA_NGINX=$(NGINX_BIN) \
	    WA_NGINX_PRELOAD="$(ASAN_RT)" WA_FIXTURES=$(FIXTURES) \
	    WA_WORKER=$(ASAN)/wa-relayd WA_UNIT=$(ASAN)/unit_tests \
	    WA_NODE_MODULES=$(CONSUMERS_NODE)/node_modules \
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
	$(RUN_ENV) perl tools/bench $(BENCH_ARGS)
