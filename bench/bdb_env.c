/* bench/bdb_env.c: the Berkeley DB 5.3 anchor for bench/failover.sh.
 * Builds and drives a live transactional environment the way our writer
 * drives ours, so db5.3_hotbackup / db5.3_recover can be timed on it.
 *
 *   bdb_env HOME load N        N records k%010d -> 1000 bytes into a.db,
 *                              1000 puts a transaction, then a checkpoint
 *   bdb_env HOME write N [nosync]
 *                              N transactions, each puts k<j> (the writer's
 *                              value sizes) into a.db and "last" into b.db;
 *                              prints "txn/s" on stderr
 *   bdb_env HOME ckp           checkpoint and remove unneeded logs
 *
 * The environment is closed normally, so its region files stay and
 * db5.3_hotbackup accepts it (after a SIGKILL, run db5.3_recover first).  Build: cc -O2 -o bdb_env bdb_env.c -ldb-5.3
 */
#include <db.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define CHECK(x) do { int r_ = (x); if (r_) { fprintf(stderr, "bdb_env: %s: %s\n", #x, db_strerror(r_)); exit(1); } } while (0)

static double now(void) { struct timeval t; gettimeofday(&t, 0); return t.tv_sec + t.tv_usec / 1e6; }

int main(int argc, char **argv)
{
    DB_ENV *env; DB *a, *b; DB_TXN *t; DBT k, v;
    static char key[32], val[6000], last[32];
    long n, j, i, start = 0;
    int nosync, load, ckp;
    double t0;

    if (argc < 3) { fprintf(stderr, "usage: bdb_env HOME load|write|ckp [N] [nosync]\n"); return 2; }
    load = !strcmp(argv[2], "load"); ckp = !strcmp(argv[2], "ckp");
    n = argc > 3 ? atol(argv[3]) : 0;
    nosync = argc > 4 && !strcmp(argv[4], "nosync");

    CHECK(db_env_create(&env, 0));
    CHECK(env->set_cachesize(env, 0, 64 << 20, 1));
    CHECK(env->open(env, argv[1], DB_CREATE | DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
                    DB_INIT_MPOOL, 0644));
    if (nosync) CHECK(env->set_flags(env, DB_TXN_NOSYNC, 1));
    if (ckp) {
        CHECK(env->txn_checkpoint(env, 0, 0, DB_FORCE));
        CHECK(env->log_archive(env, NULL, DB_ARCH_REMOVE));
        CHECK(env->close(env, 0));
        return 0;
    }
    CHECK(db_create(&a, env, 0)); CHECK(db_create(&b, env, 0));
    CHECK(a->open(a, NULL, "a.db", NULL, DB_BTREE, DB_CREATE | DB_AUTO_COMMIT, 0644));
    CHECK(b->open(b, NULL, "b.db", NULL, DB_BTREE, DB_CREATE | DB_AUTO_COMMIT, 0644));
    memset(&k, 0, sizeof k); memset(&v, 0, sizeof v);
    k.data = key; v.data = val;
    if (!load) { /* continue after the last record the writer put */
        k.data = "last"; k.size = 4; v.data = last; v.ulen = sizeof last - 1; v.flags = DB_DBT_USERMEM;
        if (b->get(b, NULL, &k, &v, 0) == 0) { last[v.size] = 0; start = atol(last); }
        v.flags = 0; k.data = key; v.data = val;
    }
    t0 = now();
    for (j = start + 1, i = 0; i < n; j++, i++) {
        if (load) {
            if (i % 1000 == 0) CHECK(env->txn_begin(env, NULL, &t, 0));
            k.size = sprintf(key, "k%010ld", j); v.size = 1000;
            memset(val, 'a' + j % 26, v.size);
            CHECK(a->put(a, t, &k, &v, 0));
            if (i % 1000 == 999 || i == n - 1) CHECK(t->commit(t, 0));
        } else {
            CHECK(env->txn_begin(env, NULL, &t, 0));
            k.size = sprintf(key, "k%010ld", j); v.size = j % 9 == 0 ? 6000 : 20 + j % 200;
            memset(val, (int)(j * 7), v.size);
            CHECK(a->put(a, t, &k, &v, 0));
            k.data = "last"; k.size = 4; v.data = last; v.size = sprintf(last, "%ld", j);
            CHECK(b->put(b, t, &k, &v, 0));
            k.data = key; v.data = val;
            CHECK(t->commit(t, 0));
        }
    }
    if (!load) fprintf(stderr, "%.0f txn/s\n", n / (now() - t0));
    if (load) CHECK(env->txn_checkpoint(env, 0, 0, DB_FORCE));
    CHECK(a->close(a, 0)); CHECK(b->close(b, 0));
    CHECK(env->close(env, 0));
    return 0;
}
