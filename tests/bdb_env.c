/*
 * bdb_env: make a REAL transactional Berkeley DB 5.3 environment for the
 * conformance tests (tests/conformance.rs), shaped like the one our
 * writer (tests/writer.rs) makes: two btrees a.db and b.db, one
 * transaction per record (a.db gets k<j>, b.db gets "last" = j).
 *
 * Built by the test with `cc -o bdb_env bdb_env.c -ldb-5.3` when
 * libdb5.3-dev is installed.
 *
 * usage: bdb_env [-Ck] [-c every] [-m lg_max] [-n count] [-s value_size] home
 *   -m lg_max   log file size (set_lg_max; a DB_CONFIG in home overrides it)
 *   -n count    number of transactions (default 100)
 *   -s size     bytes of each a.db value (default 100)
 *   -c every    txn_checkpoint(0, 0, DB_FORCE) after every `every` txns
 *   -C          one forced checkpoint after the last transaction
 *   -k          keep the regions (__db.*) after close; by default they are
 *               removed with DB_ENV->remove, as after a clean shutdown
 *
 * Exit 0 on success; on failure, a message on stderr and exit 1.
 */
#include <db.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(call)                                                        \
	do {                                                               \
		int ret_ = (call);                                         \
		if (ret_ != 0) {                                           \
			fprintf(stderr, "bdb_env: %s: %s\n", #call,        \
			    db_strerror(ret_));                            \
			exit(1);                                           \
		}                                                          \
	} while (0)

static void
usage(void)
{
	fprintf(stderr, "usage: bdb_env [-Ck] [-c every] [-m lg_max] "
	    "[-n count] [-s value_size] home\n");
	exit(1);
}

static DB *
open_db(DB_ENV *env, const char *name)
{
	DB *db;
	DB_TXN *txn;

	CHECK(db_create(&db, env, 0));
	CHECK(env->txn_begin(env, NULL, &txn, 0));
	CHECK(db->open(db, txn, name, NULL, DB_BTREE, DB_CREATE, 0644));
	CHECK(txn->commit(txn, 0));
	return (db);
}

int
main(int argc, char *argv[])
{
	DB_ENV *env;
	DB *a, *b;
	DB_TXN *txn;
	DBT key, data;
	char kbuf[32], lbuf[32], *val;
	const char *home;
	unsigned long count = 100, every = 0, lg_max = 0, size = 100, j, i;
	int ch, final_ckp = 0, keep = 0;

	while ((ch = getopt(argc, argv, "c:Ckm:n:s:")) != -1)
		switch (ch) {
		case 'c': every = strtoul(optarg, NULL, 10); break;
		case 'C': final_ckp = 1; break;
		case 'k': keep = 1; break;
		case 'm': lg_max = strtoul(optarg, NULL, 10); break;
		case 'n': count = strtoul(optarg, NULL, 10); break;
		case 's': size = strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	if (optind != argc - 1)
		usage();
	home = argv[optind];

	CHECK(db_env_create(&env, 0));
	env->set_errfile(env, stderr);
	env->set_errpfx(env, "bdb_env");
	if (lg_max != 0) {
		/* The log buffer must be at most a quarter of a log file. */
		if (lg_max < 4 * 32 * 1024)
			CHECK(env->set_lg_bsize(env, (u_int32_t)(lg_max / 4)));
		CHECK(env->set_lg_max(env, (u_int32_t)lg_max));
	}
	/* Commits write the log but do not fsync it: fast, and still on disk
	 * for the tools that run after this process exits. */
	CHECK(env->set_flags(env, DB_TXN_WRITE_NOSYNC, 1));
	CHECK(env->open(env, home, DB_CREATE | DB_INIT_TXN | DB_INIT_LOG |
	    DB_INIT_MPOOL | DB_INIT_LOCK, 0644));
	a = open_db(env, "a.db");
	b = open_db(env, "b.db");

	if ((val = malloc(size + 1)) == NULL)
		exit(1);
	for (j = 1; j <= count; j++) {
		for (i = 0; i < size; i++)
			val[i] = (char)('a' + (j + i) % 26);
		snprintf(kbuf, sizeof(kbuf), "k%010lu", j);
		snprintf(lbuf, sizeof(lbuf), "%lu", j);
		CHECK(env->txn_begin(env, NULL, &txn, 0));
		memset(&key, 0, sizeof(key));
		memset(&data, 0, sizeof(data));
		key.data = kbuf;
		key.size = (u_int32_t)strlen(kbuf);
		data.data = val;
		data.size = (u_int32_t)size;
		CHECK(a->put(a, txn, &key, &data, 0));
		key.data = "last";
		key.size = 4;
		data.data = lbuf;
		data.size = (u_int32_t)strlen(lbuf);
		CHECK(b->put(b, txn, &key, &data, 0));
		CHECK(txn->commit(txn, 0));
		if (every != 0 && j % every == 0)
			CHECK(env->txn_checkpoint(env, 0, 0, DB_FORCE));
	}
	if (final_ckp)
		CHECK(env->txn_checkpoint(env, 0, 0, DB_FORCE));
	free(val);

	CHECK(a->close(a, 0));
	CHECK(b->close(b, 0));
	CHECK(env->close(env, 0));
	if (!keep) {
		CHECK(db_env_create(&env, 0));
		CHECK(env->remove(env, home, 0));
	}
	return (0);
}
