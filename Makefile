# The single entry point of the project: `make help` lists the targets.
# Everything goes through cargo; no target needs more than the Rust
# toolchain, except `man` (mandoc) and `test`, whose Berkeley DB
# comparisons and man-page checks need db5.3-util, libdb5.3-dev, a C
# compiler, mandoc, man and script (and setpriv and chattr under root): a test
# whose tool is missing fails, unless BDBTOOLS_ALLOW_MISSING=1 (for
# developers only). `.ci/run` installs them all and runs `make test`.

CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man

# The tools are the [[bin]] targets of Cargo.toml, so this list never drifts.
TOOLS   := $(shell sed -n 's/^name = "\(db_[a-z]*\)"$$/\1/p' Cargo.toml)
MANPAGES = $(wildcard man/*.1 man/*.5 man/*.7)

.DEFAULT_GOAL := help
.PHONY: help build test demo bench man fmt clippy torture install clean

help: ## list the targets
	@sed -n 's/^\([a-z]*\):.*## \(.*\)/  \1\t\2/p' $(MAKEFILE_LIST) | expand -t 12

build: ## build the library and every tool (debug)
	$(CARGO) build --workspace

test: ## build and run all unit and end-to-end tests, the fuzz targets' seeded smoke run, and the API docs check
	$(CARGO) test --workspace
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p libcore --no-deps
	cd fuzz && CARGO_TARGET_DIR=../target $(CARGO) test

demo: ## hot backup, -u updates under load, failover, and a check that nothing was lost
	$(CARGO) build --bins --examples
	PATH="$(CURDIR)/target/debug:$$PATH" bash tools/demo.sh

BENCH_SIZE ?= small
BENCH_OUT  ?= target/bench

bench: ## the performance table, ours next to cp -r and Berkeley DB 5.3 (BENCH_SIZE=tiny|small|1G, BENCH_OUT=dir)
	$(CARGO) build --release --bins --examples
	target/release/examples/bench --size $(BENCH_SIZE) --out $(BENCH_OUT)

man: ## lint the man pages with mandoc
	@if [ -z "$(MANPAGES)" ]; then echo "man: no pages under man/"; \
	else mandoc -T lint $(MANPAGES) && echo "man: $(words $(MANPAGES)) pages clean"; fi

fmt: ## format all Rust code
	$(CARGO) fmt --all

clippy: ## lint all targets, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

torture: ## the slow crash and stress tests (release build, ignored tests)
	$(CARGO) test --workspace --release -- --ignored

install: ## install the tools and man pages under PREFIX (/usr/local)
	$(CARGO) build --release --bins
	install -d "$(DESTDIR)$(BINDIR)"
	for t in $(TOOLS); do install -m 755 "target/release/$$t" "$(DESTDIR)$(BINDIR)/$$t"; done
	for p in $(MANPAGES); do \
		s=$${p##*.}; install -d "$(DESTDIR)$(MANDIR)/man$$s"; \
		install -m 644 "$$p" "$(DESTDIR)$(MANDIR)/man$$s/"; \
	done

clean: ## remove build output
	$(CARGO) clean
