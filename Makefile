# mod_openaikey: build with apxs, test with Check and Apache::Test.
APXS       ?= apxs
CC         ?= cc
comma      := ,
PKGS        = libcurl jansson cjose hiredis
LIB_SRC     = src/okey.c src/json.c src/config.c src/http.c src/state.c src/jose.c src/oidc.c src/reaper.c \
              src/reap_run.c src/policy.c src/openai.c src/keys.c src/name.c src/page.c src/query.c \
              src/lifetime.c src/session.c src/cli.c src/terms.c src/lease.c src/spend.c src/figures.c src/usage.c src/admin.c \
              src/ledger.c src/ledger_memory.c src/ledger_shm.c src/ledger_redis.c
LIB_HDR     = $(filter-out src/json.h src/ledger_memory.h src/ledger_shm.h,$(LIB_SRC:.c=.h)) src/okey.h
WARN        = -Wall -Wextra -Wno-missing-field-initializers
WERROR     ?= $(if $(CI),-Werror,)
# Before make test has installed them (scripts/deps), these tools may be
# missing: that is not worth a message.
have        = command -v $(1) >/dev/null &&
PKG_CFLAGS := $(shell $(call have,pkg-config) pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell $(call have,pkg-config) pkg-config --libs $(PKGS)) -lcrypto
APR_CFLAGS := $(shell $(call have,apr-1-config) apr-1-config --includes --cppflags --cflags)
APR_LIBS   := $(shell $(call have,apr-1-config) apr-1-config --link-ld) \
              $(shell apu-1-config --link-ld 2>/dev/null)
SANITIZE    = -fsanitize=address,undefined -fno-omit-frame-pointer
# The version has one place, debian/changelog's first line, read here without
# dpkg-dev so that every build, Debian or not, carries it.
VERSION    := ${shell sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog 2>/dev/null}
ifeq ($(VERSION),)
$(error cannot read the version from the first line of debian/changelog)
endif
VERSION_DEF = -DOKEY_VERSION='"$(VERSION)"'

.PHONY: all version deb install-test install run screenshot test unit unit-sanitize apache-test run-test readme-test browser-test check-sanitize clean bench fuzz \
        test-run check-sanitize-run fuzz-run bench-run deps-test includes-test soak

all: mod_openaikey.so openaikey

version:
	@echo $(VERSION)

GLUE        = mod_openaikey.c mod_openaikey_signin.c mod_openaikey_keys.c mod_openaikey_admin.c \
              mod_openaikey_ops.c \
              mod_openaikey_shm.c mod_openaikey_ledger.c mod_openaikey_reaper.c

mod_openaikey.so: $(GLUE) mod_openaikey.h $(LIB_SRC) $(LIB_HDR) debian/changelog
	$(APXS) -c -o mod_openaikey.la \
	  -Wc,-std=c99 $(addprefix -Wc$(comma),$(WARN) $(WERROR) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS)) \
	  '-Wc,-DOKEY_VERSION=\"$(VERSION)\"' $(addprefix -Wl$(comma),$(LDFLAGS)) \
	  $(GLUE) $(LIB_SRC) $(PKG_LIBS)
	cp .libs/mod_openaikey.so $@

install: mod_openaikey.so openaikey
	$(APXS) -i -n openaikey mod_openaikey.la
	if [ -d /etc/apache2/mods-available ]; then \
	  install -m 644 conf/openaikey.load conf/openaikey.conf /etc/apache2/mods-available/; \
	fi
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 openaikey $(DESTDIR)$(PREFIX)/bin/openaikey

# --- openaikey, the command-line helper, from the same library --------------
PREFIX     ?= /usr/local
CLI_SRC     = cli/openaikey.c cli/listener.c cli/cache.c cli/fetch.c cli/rotate.c
CLI_CFLAGS  = -std=c99 -D_GNU_SOURCE -g -O2 $(WARN) $(WERROR) $(APR_CFLAGS) $(PKG_CFLAGS)

openaikey: $(CLI_SRC) cli/openaikey.h $(LIB_SRC) $(LIB_HDR) debian/changelog
	$(CC) $(CLI_CFLAGS) $(VERSION_DEF) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(CLI_SRC) $(LIB_SRC) $(APR_LIBS) $(PKG_LIBS)

openaikey-sanitize: $(CLI_SRC) cli/openaikey.h $(LIB_SRC) $(LIB_HDR)
	$(CC) $(CLI_CFLAGS) $(VERSION_DEF) $(SANITIZE) -o $@ $(CLI_SRC) $(LIB_SRC) $(APR_LIBS) $(PKG_LIBS)

run:
	scripts/run

screenshot: mod_openaikey.so
	scripts/screenshot

# --- unit tests of the library (Check), no httpd ---------------------------
UNIT_SRC   = $(wildcard t/unit/test_*.c) t/unit/ledger_conformance.c t/unit/redis_fixture.c
UNIT_HDR   = t/unit/testutil.h t/unit/ledger_conformance.h t/unit/redis_fixture.h
UNIT_CFLAGS = -std=c99 -g $(WARN) $(WERROR) $(VERSION_DEF) $(APR_CFLAGS) $(PKG_CFLAGS) \
              $(shell pkg-config --cflags check) -Isrc
UNIT_LIBS  = $(APR_LIBS) $(PKG_LIBS) $(shell pkg-config --libs check)

t/unit/run: $(UNIT_SRC) t/unit/main.c $(UNIT_HDR) $(LIB_SRC) $(LIB_HDR)
	$(CC) $(UNIT_CFLAGS) -o $@ t/unit/main.c $(UNIT_SRC) $(LIB_SRC) $(UNIT_LIBS)

t/unit/run-sanitize: $(UNIT_SRC) t/unit/main.c $(UNIT_HDR) $(LIB_SRC) $(LIB_HDR)
	$(CC) $(UNIT_CFLAGS) $(SANITIZE) -o $@ t/unit/main.c $(UNIT_SRC) $(LIB_SRC) $(UNIT_LIBS)

unit: t/unit/run
	CK_FORK=yes t/unit/run

unit-sanitize: t/unit/run-sanitize
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  CK_FORK=no t/unit/run-sanitize

# --- Apache::Test suite against the built module ---------------------------
apache-test: mod_openaikey.so openaikey
	OKEY_MPM=event t/run-apache-test
	OKEY_MPM=worker t/run-apache-test
	OKEY_MPM=prefork t/run-apache-test

# The randomized model test alone, longer: make soak SEEDS=1,2,3 STEPS=500
# (MPM=prefork or worker to run it under another MPM).
SEEDS ?= 1,2,3,4,5,6,7,8
STEPS ?= 200
MPM   ?= event
soak: mod_openaikey.so openaikey
	OKEY_MPM=$(MPM) OKEY_MODEL_SEEDS=$(SEEDS) OKEY_MODEL_STEPS=$(STEPS) t/run-apache-test t/95-model.t

# The module under valgrind in a real httpd, then the library under ASan/UBSan.
# The helper, built with ASan/UBSan, is driven by the suite meanwhile.
check-sanitize-run: unit-sanitize openaikey-sanitize
	OKEY_VALGRIND=1 OKEY_CLI=$(CURDIR)/openaikey-sanitize \
	  t/run-apache-test t/20-signin.t t/30-state.t t/40-upstream.t t/80-keys.t \
	  t/90-secrets.t t/92-cli.t t/99-rotate.t

# make run's configuration, its demo and its stop; README against the code.
run-test: mod_openaikey.so
	t/run-make-run-test

# README's directives, packages and log ids against the code.
readme-test:
	t/check-readme
	t/check-logids

# My keys in headless Chromium, against make run's demo.
browser-test: mod_openaikey.so openaikey
	t/run-browser-test

# scripts/deps: its lists, and the install step a no-op where all is there.
deps-test:
	t/check-deps

# The library's files include one another without a cycle.
includes-test:
	t/check-includes

test-run: unit readme-test deps-test includes-test apache-test run-test browser-test

# These install what they lack first (scripts/deps, as make run does), then
# run in a second make, whose pkg-config and apr-1-config see what was
# installed.
test check-sanitize fuzz bench:
	scripts/deps $@
	$(MAKE) --no-print-directory $@-run

# The Debian packages into dist/, checked with lintian (scripts/deb); then,
# as root, installed, used, purged (t/run-install-test).
deb:
	scripts/deps $@
	scripts/deb

install-test:
	scripts/deps $@
	t/run-install-test

# --- fuzzing (clang's libFuzzer) ----------------------------------------------
FUZZ_TARGETS = state discovery id_token openai_page query cli json
FUZZ_BINS    = $(FUZZ_TARGETS:%=fuzz/%.bin)
FUZZ_CFLAGS  = -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined $(VERSION_DEF) $(APR_CFLAGS) $(PKG_CFLAGS) -Isrc

fuzz/%.bin: fuzz/%.c fuzz/fuzz.h $(LIB_SRC) $(LIB_HDR)
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(APR_LIBS) $(PKG_LIBS)

fuzz-run: $(FUZZ_BINS)
	scripts/fuzz $(FUZZ_BINS)

bench-run: mod_openaikey.so
	bench/cost
	bench/redirect
	bench/reap
	bench/memory
	bench/scale

clean:
	rm -rf .libs *.la *.lo *.slo *.o src/*.lo src/*.slo src/*.o src/.libs \
	  mod_openaikey.so openaikey openaikey-sanitize t/unit/run t/unit/run-sanitize \
	  fuzz/*.bin dist
	if [ -f t/TEST ]; then t/TEST -clean >/dev/null 2>&1 || true; fi
