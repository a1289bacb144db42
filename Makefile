# tokenseal — top-level build. Objects go to $(BUILD) (out of tree).
#
#   make              build everything into build/
#   make check        install missing Debian packages, build, run every test; then build
#                     again with ASan+UBSan (build-asan/) and run the unit and integration
#                     tests against that build: one closing line "N passed, N failed"
#   make check-unit | check-integration | check-fido2 | check-tpm2 | check-pkcs11
#        | check-pam | check-policy | check-hardening | check-security | check-isolation | check-age
#        | check-tang | check-ldap | check-secrets  (one test group each; check-age: the real age with age-plugin-tokenseal;
#                     check-tang: a real tangd, Debian's tang; check-ldap: a real slapd;
#                     check-secrets: secret-tool and python3-secretstorage, side by side with gnome-keyring)
#   make check-fleet  check-tang and check-ldap together
#   make lint         daemon/bus/ layering: no include cycle, no .c above 700 lines (tests/lint/)
#   make check-asan   only the ASan+UBSan pass of make check
#   make demo         run the end-to-end demo on a private bus
#   make bench        benchmarks (tests/bench/run.sh, with the peers gnome-keyring and Clevis TPM2 that
#                     contrib/install-deps.sh --bench installs; tests/bench/fleet.sh: Tang vs TPM unlock, escrow publish)
#   make install      PREFIX=/usr/local DESTDIR=
#   make SAN=1        ASan+UBSan build (into build-asan/ by default)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
LIBDIR     ?= $(PREFIX)/lib
LIBEXECDIR ?= $(PREFIX)/libexec
INCLUDEDIR ?= $(PREFIX)/include
DATADIR    ?= $(PREFIX)/share
SYSCONFDIR ?= /etc
DESTDIR    ?=

SAN ?=
ASAN_BUILD ?= build-asan
ifeq ($(SAN),1)
BUILD ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= cc
PKG_CONFIG ?= pkg-config

# Every dependency through pkg-config. Core: libsodium + libcbor, and libinih for policy/.
CORE_PKGS   := libsodium libcbor inih
# The daemon itself links no token library: those live in tokenseal-helper (docs/ARCHITECTURE.md).
DAEMON_PKGS := $(CORE_PKGS) libsystemd
TOKEN_PKGS  := libfido2 tss2-esys tss2-tctildr tss2-mu tss2-rc p11-kit-1 libcrypto jose libcurl
# libldap: escrow records in a directory (tokenseal escrow publish, recover --from-ldap; and the helper,
# which publishes for the daemon: [escrow] publish).
LDAP_PKGS   := ldap
# libseccomp: the helper's system call filter (daemon/helper/sandbox.c).
HELPER_PKGS := $(CORE_PKGS) $(TOKEN_PKGS) libseccomp $(LDAP_PKGS)
CLIENT_PKGS := libsodium libsystemd
TEST_PKGS   := $(DAEMON_PKGS) $(TOKEN_PKGS) libseccomp cmocka $(LDAP_PKGS)
SOFTFIDO_PKGS := libcbor libcrypto

pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pc_libs   = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

WARN   := -Wall -Wextra -Werror -Wformat=2 -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes -Wvla
HARDEN := -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIC
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(WARN) $(HARDEN) $(SANFLAGS) $(CFLAGS) -Iinclude -Idaemon -MMD -MP \
             $(call pc_cflags,$(TEST_PKGS))
ALL_LDFLAGS = $(SANFLAGS) -Wl,-z,relro,-z,now $(LDFLAGS)

# ---- sources ---------------------------------------------------------------

CORE_SRC     := $(sort $(wildcard daemon/core/*.c policy/*.c))
# The token backends: linked into tokenseal-helper (and the test tools), never into the daemon,
# which reaches them through daemon/protectors/remote.c.
BACKEND_SRC  := $(wildcard daemon/protectors/fido2.c daemon/protectors/tpm2.c daemon/protectors/tpm2_nv.c daemon/protectors/pkcs11.c \
                           daemon/protectors/pkcs11_mech.c daemon/protectors/escrow_rsa.c daemon/protectors/tang.c \
                           daemon/protectors/ldap_record.c)
DAEMON_SRC   := $(sort $(filter-out daemon/main.c $(BACKEND_SRC),$(wildcard daemon/*.c daemon/bus/*.c daemon/protectors/*.c)))
# The recovery backend is in both: the helper runs its Argon2id off the daemon's loop, and the daemon
# keeps it for creating vaults and as the fallback when no helper can run.
HELPER_SRC   := daemon/helper/main.c daemon/helper/publish.c daemon/helper/sandbox.c daemon/protectors/registry.c daemon/protectors/helper_wire.c \
                daemon/protectors/recovery.c $(BACKEND_SRC)
CLIENT_SRC   := $(sort $(wildcard cli/lib/*.c)) daemon/core/error.c daemon/core/buf.c daemon/core/blob.c daemon/core/context.c \
                daemon/core/packed.c daemon/core/text.c daemon/core/age.c daemon/core/bech32.c \
                daemon/core/recovery_shape.c
CLI_SRC      := $(sort $(wildcard cli/*.c))
SOFTFIDO_SRC := $(sort $(wildcard tests/softfido/*.c))
UNIT_SRC     := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRC     := $(sort $(wildcard tests/tools/*.c))
BENCH_SRC    := $(sort $(wildcard tests/bench/*.c))
SECRETS_SRC  := $(sort $(wildcard secrets/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
# The client library is built with hidden visibility; only TS_EXPORT symbols leave the .so.
cobj = $(patsubst %.c,$(BUILD)/cobj/%.o,$(1))

LIBTSCORE   := $(BUILD)/libtscore.a
LIBTSD      := $(BUILD)/libtsd.a
LIBTOKENSEAL_A  := $(BUILD)/libtokenseal.a
LIBTOKENSEAL_SO := $(BUILD)/libtokenseal.so.1
TOKENSEALED := $(BUILD)/tokensealed
TOKENSEAL   := $(BUILD)/tokenseal
HELPER      := $(BUILD)/tokenseal-helper
# The helper with a deliberate "compromised" mode, for tests/integration/isolation-helper.sh only:
# built from the same sources plus tests/helper/compromised.c, never installed.
COMPROMISED_HELPER := $(BUILD)/tests/tokenseal-helper-compromised
SOFTFIDO    := $(BUILD)/softfido
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
TOOL_BINS   := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))
BENCH_BINS  := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(BENCH_SRC))

PROGRAMS := $(TOKENSEALED) $(HELPER) $(TOKENSEAL) $(LIBTOKENSEAL_SO) $(LIBTOKENSEAL_A) $(BUILD)/tokenseal.pc
ifneq ($(SOFTFIDO_SRC),)
PROGRAMS += $(SOFTFIDO)
endif
PAM_TOKENSEAL := $(BUILD)/pam_tokenseal.so
PROGRAMS += $(PAM_TOKENSEAL)
# age's plugin for tokenseal vaults (docs/FORMAT.md, "age recipients"); age finds it on PATH.
AGE_PLUGIN  := $(BUILD)/age-plugin-tokenseal
AGE_PLUGIN_SRC := $(sort $(wildcard cli/age-plugin/*.c))
PROGRAMS += $(AGE_PLUGIN)

# The Secret Service provider (docs/SECRETS.md): a client of tokensealed on the user's session bus.
TOKENSEAL_SECRETS := $(BUILD)/tokenseal-secrets
PROGRAMS += $(TOKENSEAL_SECRETS)

.PHONY: all deps lint check check-asan check-unit check-integration check-fido2 check-tpm2 check-pkcs11 check-pam check-policy check-hardening check-security check-isolation check-tang check-ldap check-fleet check-age check-secrets \
        demo bench install uninstall clean tests

all: $(PROGRAMS) tests

tests: $(UNIT_BINS) $(TOOL_BINS) $(BENCH_BINS) $(COMPROMISED_HELPER)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/cobj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -DTS_BUILDING_CLIENT -c $< -o $@

$(LIBTSCORE): $(call obj,$(CORE_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(LIBTSD): $(call obj,$(DAEMON_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

# --whole-archive: heap_wipe.c replaces free() and realloc(), which nothing calls by that file's name.
$(TOKENSEALED): $(call obj,daemon/main.c) $(LIBTSD) $(LIBTSCORE)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call obj,daemon/main.c) -Wl,--whole-archive $(LIBTSD) -Wl,--no-whole-archive \
		$(LIBTSCORE) $(call pc_libs,$(DAEMON_PKGS))

# The daemon's default helper path; the installed unit and D-Bus service also pass --helper.
$(call obj,daemon/protectors/remote.c): ALL_CFLAGS += -DTS_HELPER_PATH='"$(LIBEXECDIR)/tokenseal-helper"'
$(HELPER): $(call obj,$(HELPER_SRC)) $(LIBTSCORE)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(HELPER_PKGS))

$(BUILD)/obj/daemon/helper/main-compromised.o: daemon/helper/main.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DTS_HELPER_COMPROMISED -c $< -o $@
$(COMPROMISED_HELPER): $(BUILD)/obj/daemon/helper/main-compromised.o $(call obj,tests/helper/compromised.c) \
		$(call obj,$(filter-out daemon/helper/main.c,$(HELPER_SRC))) $(LIBTSCORE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(HELPER_PKGS))

$(LIBTOKENSEAL_A): $(call cobj,$(CLIENT_SRC))
	rm -f $@ && $(AR) rcs $@ $^

$(LIBTOKENSEAL_SO): $(call cobj,$(CLIENT_SRC))
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libtokenseal.so.1 -o $@ $^ $(call pc_libs,$(CLIENT_PKGS))
	ln -sf libtokenseal.so.1 $(BUILD)/libtokenseal.so

$(BUILD)/tokenseal.pc: contrib/tokenseal.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' $< > $@

# The CLI links the client library statically plus the core for offline commands.
# escrow_rsa.c: reading officers' RSA keys and the OAEP check of a raw RSA decryption.
$(TOKENSEAL): $(call obj,$(CLI_SRC) daemon/store.c daemon/protectors/escrow_rsa.c daemon/protectors/pkcs11_mech.c \
		daemon/protectors/ldap_record.c) $(LIBTOKENSEAL_A) $(LIBTSCORE)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(CORE_PKGS) $(CLIENT_PKGS) p11-kit-1 libcrypto $(LDAP_PKGS))

# The PAM module: a thin client of the static client library (whose symbols stay hidden);
# only pam_sm_* leave the .so.
$(call obj,contrib/pam/pam_tokenseal.c): ALL_CFLAGS += -Icli/lib
$(PAM_TOKENSEAL): $(call obj,contrib/pam/pam_tokenseal.c) $(LIBTOKENSEAL_A)
	$(CC) $(ALL_LDFLAGS) -shared -Wl,--no-undefined -Wl,--exclude-libs,ALL -o $@ $^ $(call pc_libs,$(CLIENT_PKGS) pam)

# The age plugin: a client of the static client library (its internal API, as the CLI), plus core/age.c.
$(call obj,$(AGE_PLUGIN_SRC)): ALL_CFLAGS += -Icli
$(AGE_PLUGIN): $(call obj,$(AGE_PLUGIN_SRC)) $(LIBTOKENSEAL_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(CLIENT_PKGS))

# tokenseal-secrets: the static client library (its internal API, for the vault's signals and Unlock),
# OpenSSL libcrypto for the Secret Service's DH session only.
$(call obj,$(SECRETS_SRC)): ALL_CFLAGS += -Icli/lib
$(TOKENSEAL_SECRETS): $(call obj,$(SECRETS_SRC)) $(LIBTOKENSEAL_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(CLIENT_PKGS) libcrypto)

$(SOFTFIDO): $(call obj,$(SOFTFIDO_SRC))
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(SOFTFIDO_PKGS))

# Unit tests link the pure core and the store only.
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(call obj,daemon/store.c) $(LIBTSCORE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(TEST_PKGS))

# The vault tests share their file-editing helpers (vault_util.c).
$(BUILD)/tests/unit/test_vault $(BUILD)/tests/unit/test_vault_rekey $(BUILD)/tests/unit/test_subkeys: \
		$(call obj,tests/unit/vault_util.c)

# test_escrow also proves the RSA sealer against OpenSSL's decryption.
$(BUILD)/tests/unit/test_escrow: $(call obj,daemon/protectors/escrow_rsa.c)

# test_anchor proves the generation anchors (daemon/anchor.c): atomic replace, strict parsing.
$(BUILD)/tests/unit/test_anchor: $(call obj,daemon/anchor.c)
# ts_protector_check_options (the registry) on its own.
$(BUILD)/tests/unit/test_options: $(call obj,daemon/protectors/registry.c)

# test_batch_unwrap proves the two-thread UnwrapBatch (daemon/batch_unwrap.c) against the one-thread path.
$(BUILD)/tests/unit/test_batch_unwrap: $(call obj,daemon/batch_unwrap.c)

# test_secret proves the client library's pool of locked slots for plaintexts (cli/lib/secret.c).
$(BUILD)/tests/unit/test_secret: $(call obj,cli/lib/secret.c)
$(call obj,tests/unit/test_secret.c): ALL_CFLAGS += -Icli/lib

# test_log proves the daemon's log lines (daemon/bus/log.c; no audit sink is set, so events go to the log only).
$(BUILD)/tests/unit/test_log: $(BUILD)/obj/tests/unit/test_log.o $(call obj,daemon/bus/log.c) $(LIBTSCORE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(TEST_PKGS))

# test_message proves the named errors of a handler's answer (daemon/bus/message.c).
$(BUILD)/tests/unit/test_message: $(BUILD)/obj/tests/unit/test_message.o $(call obj,daemon/bus/message.c) \
		$(call obj,daemon/bus/direct_conn.c) $(call obj,daemon/bus/direct_frame.c) $(LIBTSCORE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(TEST_PKGS))

# test_direct_frame proves what the private socket's scanner lets through (daemon/bus/direct_frame.c).
$(BUILD)/tests/unit/test_direct_frame: $(BUILD)/obj/tests/unit/test_direct_frame.o $(call obj,daemon/bus/direct_frame.c) \
		$(LIBTSCORE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(TEST_PKGS))

# test_direct_conn proves what a private-socket message is counted as (daemon/bus/direct_conn.c).
$(BUILD)/tests/unit/test_direct_conn: $(BUILD)/obj/tests/unit/test_direct_conn.o $(call obj,daemon/bus/direct_conn.c) \
		$(call obj,daemon/bus/message.c) $(call obj,daemon/bus/direct_frame.c) $(LIBTSCORE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(TEST_PKGS))

# Test tools named TYPE_*.c link the protector backend daemon/protectors/TYPE*.c
# (plus the registry and the core), so each backend is tested on its own.
.SECONDEXPANSION:
$(BUILD)/tests/tools/%: $(BUILD)/obj/tests/tools/%.o \
		$$(call obj,$$(wildcard daemon/protectors/$$(firstword $$(subst _, ,$$*))*.c)) \
		$(call obj,daemon/protectors/registry.c daemon/store.c) $(LIBTSCORE) $(LIBTOKENSEAL_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(TEST_PKGS))

# The benchmark unlocks as the CLI does, through the client library's internal API.
$(call obj,$(BENCH_SRC)): ALL_CFLAGS += -Icli/lib
$(BUILD)/tests/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIBTOKENSEAL_A) $(LIBTSCORE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,$(TEST_PKGS))
# core_unwrap also times UnwrapBatch's two threads (daemon/batch_unwrap.c) without the bus.
$(BUILD)/tests/bench/core_unwrap: $(call obj,daemon/batch_unwrap.c)

# ---- setup, tests, demo ----------------------------------------------------

deps:
	@contrib/install-deps.sh

# make check: the ordinary build, then the sanitized one (a second build dir), in one
# tests/run so the closing line counts both passes. In the ASan pass the integration
# tests start the sanitized daemon, CLI, PAM module, softfido and tools; tests/lib/rig.sh
# fails a test on any sanitizer report (docs/FUZZING.md, "Sanitizers").
# The two builds run one job per CPU (CHECK_JOBS); tests/run -j 2 runs the integration
# scripts marked "may run beside another test" two at a time (TEST_JOBS; the others alone).
# lint: cheap checks of the source tree itself, run first by make check.
CHECK_JOBS := -j$(shell nproc 2>/dev/null || echo 1)
TEST_JOBS ?= 2
lint:
	tests/lint/include-graph.sh

check: deps lint
	$(MAKE) $(CHECK_JOBS) all
	$(MAKE) $(CHECK_JOBS) SAN=1 BUILD=$(ASAN_BUILD) all
	tests/run -j $(TEST_JOBS) --build $(BUILD) all --build $(ASAN_BUILD) unit integration

check-asan: deps
	$(MAKE) SAN=1 BUILD=$(ASAN_BUILD) all
	tests/run -j $(TEST_JOBS) --build $(ASAN_BUILD) unit integration

check-unit: deps
	$(MAKE) all
	tests/run --build $(BUILD) unit

check-integration: deps
	$(MAKE) all
	tests/run -j $(TEST_JOBS) --build $(BUILD) integration

check-fido2 check-tpm2 check-pkcs11 check-pam check-policy check-hardening check-security check-isolation check-tang check-ldap check-age check-secrets: deps
	$(MAKE) all
	tests/run -j $(TEST_JOBS) --build $(BUILD) $(patsubst check-%,%,$@)

# The fleet pieces: Tang protectors and escrow records in a directory.
check-fleet: deps
	$(MAKE) all
	tests/run --build $(BUILD) tang ldap

demo: deps
	$(MAKE) all
	contrib/demo.sh $(BUILD)

bench:
	@contrib/install-deps.sh --bench
	$(MAKE) all
	@if [ -x tests/bench/run.sh ]; then tests/bench/run.sh $(BUILD); else echo "bench: not yet"; fi
	tests/bench/fleet.sh $(BUILD)

# ---- fuzzing (begin) -------------------------------------------------------
# libFuzzer targets for every parser (docs/FUZZING.md), built with clang from
# the pure core sources into the fixed dir build-fuzz/, whatever $(BUILD) is.
#   make fuzz-build   build-fuzz/fuzz_<target> for each tests/fuzz/fuzz_*.c, and mkseeds
#   make fuzz         run each target for 60 s on a copy of its seed corpus
#   make fuzz-seeds   regenerate tests/fuzz/corpus/ with tests/fuzz/mkseeds.c
FUZZ_BUILD  := build-fuzz
FUZZ_CC     ?= clang
FUZZ_SAN    := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  = -std=gnu11 $(WARN) -g -O1 -Iinclude -Idaemon -Itests/fuzz -MMD -MP \
               $(call pc_cflags,$(CORE_PKGS))
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS   := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
FUZZ_OBJS   := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_SRC))
FUZZ_CORE_A := $(FUZZ_BUILD)/libtscore-fuzz.a

.PHONY: fuzz fuzz-build fuzz-seeds fuzz-clean
# Keep the harness objects (make would delete them as intermediates of fuzz_%).
.SECONDARY: $(FUZZ_OBJS)

fuzz-build: $(FUZZ_BINS) $(FUZZ_BUILD)/mkseeds $(FUZZ_BUILD)/mkseeds_secrets

fuzz: fuzz-build
	tests/fuzz/run.sh 60

fuzz-seeds: $(FUZZ_BUILD)/mkseeds $(FUZZ_BUILD)/mkseeds_secrets
	$(FUZZ_BUILD)/mkseeds tests/fuzz/corpus
	tests/fuzz/mkseeds_ctap.py tests/fuzz/corpus
	tests/fuzz/mkseeds_dbus_args.py tests/fuzz/corpus
	tests/fuzz/mkseeds_helper_wire.py tests/fuzz/corpus
	tests/fuzz/mkseeds_age.py tests/fuzz/corpus
	tests/fuzz/mkseeds_direct_frame.py tests/fuzz/corpus
	tests/fuzz/mkseeds_packed.py tests/fuzz/corpus
	mkdir -p tests/fuzz/corpus/secrets_store && $(FUZZ_BUILD)/mkseeds_secrets tests/fuzz/corpus/secrets_store

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -c $< -o $@

# An archive, so each target links (and counts coverage of) only the modules it reaches.
$(FUZZ_CORE_A): $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(CORE_SRC))
	rm -f $@ && $(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_CORE_A)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(call pc_libs,$(CORE_PKGS))

# fuzz_ctap drives softfido's own modules (not main.c's sockets nor state.c's
# file: the harness stands in for both), so it links them and their libraries.
FUZZ_SF_SRC := $(filter-out tests/softfido/main.c tests/softfido/state.c,$(SOFTFIDO_SRC))
$(FUZZ_BUILD)/fuzz_ctap: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_ctap.o $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_SF_SRC))
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(call pc_libs,$(SOFTFIDO_PKGS))

# fuzz_dbus_args dispatches method calls through the daemon's vtables in process
# (daemon/bus/*.c), so the daemon objects go into a second archive.
FUZZ_DAEMON_A := $(FUZZ_BUILD)/libtsd-fuzz.a
$(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(DAEMON_SRC)) $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_dbus_args.o \
		$(FUZZ_BUILD)/obj/tests/fuzz/fuzz_direct_frame.o: \
	FUZZ_CFLAGS += $(call pc_cflags,$(DAEMON_PKGS))
$(FUZZ_DAEMON_A): $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(DAEMON_SRC))
	rm -f $@ && $(AR) rcs $@ $^
$(FUZZ_BUILD)/fuzz_dbus_args: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_dbus_args.o $(FUZZ_DAEMON_A) $(FUZZ_CORE_A)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(call pc_libs,$(DAEMON_PKGS))

# fuzz_direct_frame reads a private-socket client's stream as the daemon does before sd-bus.
$(FUZZ_BUILD)/fuzz_direct_frame: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_direct_frame.o $(FUZZ_BUILD)/obj/daemon/bus/direct_frame.o
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^

# fuzz_helper_wire reads what tokensealed and tokenseal-helper send each other.
$(FUZZ_BUILD)/fuzz_helper_wire: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_helper_wire.o \
		$(FUZZ_BUILD)/obj/daemon/protectors/helper_wire.o $(FUZZ_CORE_A)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(call pc_libs,$(CORE_PKGS))

# fuzz_age_stanza reads age's side of the plugin protocol with age-plugin-tokenseal's own stanza parser.
$(FUZZ_BUILD)/obj/tests/fuzz/fuzz_age_stanza.o: FUZZ_CFLAGS += -Icli/age-plugin
$(FUZZ_BUILD)/fuzz_age_stanza: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_age_stanza.o \
		$(FUZZ_BUILD)/obj/cli/age-plugin/stanza.o $(FUZZ_CORE_A)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(call pc_libs,$(CORE_PKGS))
# fuzz_secrets_store reads tokenseal-secrets' collection files with its own parser (secrets/store.c)
# and opens the items (secrets/collection.c); the harness stands in for the service.
FUZZ_SECRETS_SRC := secrets/store.c secrets/collection.c
$(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_SECRETS_SRC)) $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_secrets_store.o: \
	FUZZ_CFLAGS += $(call pc_cflags,libsystemd)
$(FUZZ_BUILD)/fuzz_secrets_store: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_secrets_store.o \
		$(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_SECRETS_SRC)) $(FUZZ_CORE_A)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(call pc_libs,$(CORE_PKGS) libsystemd)
$(FUZZ_BUILD)/mkseeds_secrets: tests/fuzz/mkseeds_secrets.c tests/fuzz/secrets_fixture.h $(FUZZ_SECRETS_SRC) daemon/core/buf.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Iinclude -Idaemon -Itests/fuzz $(call pc_cflags,libsodium libsystemd) \
		-o $@ tests/fuzz/mkseeds_secrets.c $(FUZZ_SECRETS_SRC) daemon/core/buf.c $(call pc_libs,libsodium libsystemd)

# The seed generator is an ordinary program over the ordinary (uninstrumented) core.
$(FUZZ_BUILD)/mkseeds: tests/fuzz/mkseeds.c tests/fuzz/fuzz.h $(CORE_SRC)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Iinclude -Idaemon -Itests/fuzz $(call pc_cflags,$(CORE_PKGS)) \
		-o $@ tests/fuzz/mkseeds.c $(CORE_SRC) $(call pc_libs,$(CORE_PKGS))

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
# ---- fuzzing (end) ---------------------------------------------------------

# ---- install ---------------------------------------------------------------
# Everything a system needs: programs, library, headers, pkg-config file, the
# systemd units (the daemon's, and the socket and template its token helpers
# are started from), D-Bus policy and activation, polkit actions, the PAM
# module, man pages, bash completion. Paths: PREFIX, DESTDIR and the variables below.
PAMDIR     ?= $(LIBDIR)/security
UNITDIR    ?= $(PREFIX)/lib/systemd/system
# The helper's system user, the udev rule for FIDO2 keys, pcscd's polkit rule: systemd, udev and polkit
# read these from /usr/lib, /usr/share or /etc only, not from /usr/local, whatever PREFIX is.
SYSUSERSDIR ?= /usr/lib/sysusers.d
UDEVRULESDIR ?= /usr/lib/udev/rules.d
POLKITRULESDIR ?= /usr/share/polkit-1/rules.d
MANDIR     ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
MAN_PAGES  := $(sort $(wildcard docs/*.1 docs/*.5 docs/*.8))
# Files with @SBINDIR@ / @LIBEXECDIR@ / @BINDIR@ in them get the installed path.
subst_paths = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' $(1) > $(2) && chmod 0644 $(2)
# systemd user units (tokenseal-secrets).
USERUNITDIR ?= $(PREFIX)/lib/systemd/user

install: $(PROGRAMS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	           $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(DATADIR)/dbus-1/interfaces \
	           $(DESTDIR)$(DATADIR)/dbus-1/system.d $(DESTDIR)$(DATADIR)/dbus-1/system-services \
	           $(DESTDIR)$(DATADIR)/polkit-1/actions $(DESTDIR)$(PAMDIR) $(DESTDIR)$(UNITDIR) \
	           $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	           $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(UDEVRULESDIR) $(DESTDIR)$(POLKITRULESDIR) \
	           $(DESTDIR)$(DATADIR)/dbus-1/services $(DESTDIR)$(USERUNITDIR)
	install -m 0755 $(TOKENSEAL) $(DESTDIR)$(BINDIR)/tokenseal
	install -m 0755 $(AGE_PLUGIN) $(DESTDIR)$(BINDIR)/age-plugin-tokenseal
	install -m 0755 $(TOKENSEAL_SECRETS) $(DESTDIR)$(BINDIR)/tokenseal-secrets
	$(call subst_paths,contrib/org.freedesktop.secrets.service,$(DESTDIR)$(DATADIR)/dbus-1/services/org.freedesktop.secrets.service)
	$(call subst_paths,contrib/tokenseal-secrets.service,$(DESTDIR)$(USERUNITDIR)/tokenseal-secrets.service)
	install -m 0755 $(TOKENSEALED) $(DESTDIR)$(SBINDIR)/tokensealed
	install -m 0711 $(HELPER) $(DESTDIR)$(LIBEXECDIR)/tokenseal-helper
	install -m 0755 $(LIBTOKENSEAL_SO) $(DESTDIR)$(LIBDIR)/libtokenseal.so.1
	ln -sf libtokenseal.so.1 $(DESTDIR)$(LIBDIR)/libtokenseal.so
	install -m 0644 $(LIBTOKENSEAL_A) $(DESTDIR)$(LIBDIR)/libtokenseal.a
	install -m 0644 $(BUILD)/tokenseal.pc $(DESTDIR)$(LIBDIR)/pkgconfig/tokenseal.pc
	install -m 0644 include/tokenseal.h $(DESTDIR)$(INCLUDEDIR)/tokenseal.h
	install -m 0644 contrib/org.tokenseal1.xml $(DESTDIR)$(DATADIR)/dbus-1/interfaces/org.tokenseal1.xml
	install -m 0644 contrib/org.tokenseal1.conf $(DESTDIR)$(DATADIR)/dbus-1/system.d/org.tokenseal1.conf
	$(call subst_paths,contrib/org.tokenseal1.service,$(DESTDIR)$(DATADIR)/dbus-1/system-services/org.tokenseal1.service)
	$(call subst_paths,contrib/tokensealed.service,$(DESTDIR)$(UNITDIR)/tokensealed.service)
	install -m 0644 contrib/tokenseal-helper.socket $(DESTDIR)$(UNITDIR)/tokenseal-helper.socket
	$(call subst_paths,contrib/tokenseal-helper@.service,$(DESTDIR)$(UNITDIR)/tokenseal-helper@.service)
	install -m 0644 contrib/tokenseal-net-helper.socket $(DESTDIR)$(UNITDIR)/tokenseal-net-helper.socket
	$(call subst_paths,contrib/tokenseal-net-helper@.service,$(DESTDIR)$(UNITDIR)/tokenseal-net-helper@.service)
	install -m 0644 contrib/org.tokenseal1.policy $(DESTDIR)$(DATADIR)/polkit-1/actions/org.tokenseal1.policy
	install -m 0644 $(PAM_TOKENSEAL) $(DESTDIR)$(PAMDIR)/pam_tokenseal.so
	install -m 0644 contrib/bash-completion/tokenseal $(DESTDIR)$(BASHCOMPDIR)/tokenseal
	install -m 0644 contrib/sysusers.d/tokenseal.conf $(DESTDIR)$(SYSUSERSDIR)/tokenseal.conf
	install -m 0644 contrib/udev/70-tokenseal.rules $(DESTDIR)$(UDEVRULESDIR)/70-tokenseal.rules
	install -m 0644 contrib/polkit/50-tokenseal-pcscd.rules $(DESTDIR)$(POLKITRULESDIR)/50-tokenseal-pcscd.rules
	# The helper's user, now (not at the next boot); only on the running system, not into a DESTDIR.
	if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers $(SYSUSERSDIR)/tokenseal.conf; fi
	for m in $(MAN_PAGES); do \
		install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/} || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tokenseal-secrets $(DESTDIR)$(DATADIR)/dbus-1/services/org.freedesktop.secrets.service \
	      $(DESTDIR)$(USERUNITDIR)/tokenseal-secrets.service
	rm -f $(DESTDIR)$(BINDIR)/tokenseal $(DESTDIR)$(BINDIR)/age-plugin-tokenseal $(DESTDIR)$(SBINDIR)/tokensealed $(DESTDIR)$(LIBEXECDIR)/tokenseal-helper \
	      $(DESTDIR)$(LIBDIR)/libtokenseal.so.1 $(DESTDIR)$(LIBDIR)/libtokenseal.so \
	      $(DESTDIR)$(LIBDIR)/libtokenseal.a $(DESTDIR)$(LIBDIR)/pkgconfig/tokenseal.pc \
	      $(DESTDIR)$(INCLUDEDIR)/tokenseal.h \
	      $(DESTDIR)$(DATADIR)/dbus-1/interfaces/org.tokenseal1.xml \
	      $(DESTDIR)$(DATADIR)/dbus-1/system.d/org.tokenseal1.conf \
	      $(DESTDIR)$(DATADIR)/dbus-1/system-services/org.tokenseal1.service \
	      $(DESTDIR)$(UNITDIR)/tokensealed.service $(DESTDIR)$(UNITDIR)/tokenseal-helper.socket \
	      $(DESTDIR)$(UNITDIR)/tokenseal-helper@.service \
	      $(DESTDIR)$(UNITDIR)/tokenseal-net-helper.socket $(DESTDIR)$(UNITDIR)/tokenseal-net-helper@.service \
	      $(DESTDIR)$(DATADIR)/polkit-1/actions/org.tokenseal1.policy \
	      $(DESTDIR)$(PAMDIR)/pam_tokenseal.so \
	      $(DESTDIR)$(BASHCOMPDIR)/tokenseal \
	      $(DESTDIR)$(SYSUSERSDIR)/tokenseal.conf $(DESTDIR)$(UDEVRULESDIR)/70-tokenseal.rules \
	      $(DESTDIR)$(POLKITRULESDIR)/50-tokenseal-pcscd.rules
	for m in $(MAN_PAGES); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; done

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj $(BUILD)/cobj -name '*.d' 2>/dev/null)
