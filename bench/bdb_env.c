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
 *   bdb_env HOME big MIB [nosync]
 *                              one transaction of MIB MiB of 1000-byte
 *                              values into a.db (tests/writer.rs --big is
 *                              the twin)
 *   bdb_env HOME run SECONDS THREADS [nosync]
 *                              THREADS threads commit the write-mode
 *                              transaction for SECONDS (j from one shared
 *                              counter after b.db's "last"); prints
 *                              "RATE <txn/s> <txns> <elapsed s>" on stdout
 *                              after closing (tests/writer.rs --threads is
 *                              the twin). A transaction that hits a
 *                              deadlock or lock timeout is aborted and
 *                              retried with the same j.
 *
 * The environment is closed normally, so its region files stay and
 * db5.3_hotbackup accepts it (after a SIGKILL, run db5.3_recover first).
 * Build: cc -O2 -pthread -o bdb_env bdb_env.c -ldb-5.3
 */
#include <db.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <pthread.h>

#define CHECK(x) do { int r_ = (x); if (r_) { fprintf(stderr, "bdb_env: %s: %s\n", #x, db_strerror(r_)); exit(1); } } while (0)

static double now(void) { struct timeval t; gettimeofday(&t, 0); return t.tv_sec + t.tv_usec / 1e6; }

/* run mode: shared by the threads */
static DB_ENV *r_env; static DB *r_a, *r_b;
static double r_deadline;
static long r_next, r_commits;
static pthread_mutex_t r_mu = PTHREAD_MUTEX_INITIALIZER;

/* One transaction of the write mode; 0, or DB_LOCK_DEADLOCK /
 * DB_LOCK_NOTGRANTED after aborting it (the caller retries). */
static int one_txn(long j, char *key, char *val, char *last)
{
    DB_TXN *t; DBT k, v; int r;
    memset(&k, 0, sizeof k); memset(&v, 0, sizeof v);
    CHECK(r_env->txn_begin(r_env, NULL, &t, 0));
    k.data = key; k.size = sprintf(key, "k%010ld", j);
    v.data = val; v.size = j % 9 == 0 ? 6000 : 20 + j % 200;
    memset(val, (int)(j * 7), v.size);
    r = r_a->put(r_a, t, &k, &v, 0);
    if (!r) {
        k.data = "last"; k.size = 4; v.data = last; v.size = sprintf(last, "%ld", j);
        r = r_b->put(r_b, t, &k, &v, 0);
    }
    if (r == DB_LOCK_DEADLOCK || r == DB_LOCK_NOTGRANTED) { CHECK(t->abort(t)); return r; }
    CHECK(r);
    CHECK(t->commit(t, 0));
    return 0;
}

static void *runner(void *arg)
{
    char key[32], last[32], *val = malloc(6000);
    long j, n = 0;
    (void)arg;
    if (!val) { fprintf(stderr, "bdb_env: out of memory\n"); exit(1); }
    while (now() < r_deadline) {
        pthread_mutex_lock(&r_mu); j = ++r_next; pthread_mutex_unlock(&r_mu);
        while (one_txn(j, key, val, last)) {}
        n++;
    }
    pthread_mutex_lock(&r_mu); r_commits += n; pthread_mutex_unlock(&r_mu);
    free(val);
    return NULL;
}

int main(int argc, char **argv)
{
    DB_ENV *env; DB *a, *b; DB_TXN *t; DBT k, v;
    static char key[32], val[6000], last[32];
    long n, j, i, start = 0;
    int nosync, load, ckp, run, big, threads = 0;
    double t0, seconds = 0;

    if (argc < 3) { fprintf(stderr, "usage: bdb_env HOME load|write|ckp|big [N] [nosync]\n"
                            "       bdb_env HOME run SECONDS THREADS [nosync]\n"); return 2; }
    load = !strcmp(argv[2], "load"); ckp = !strcmp(argv[2], "ckp");
    run = !strcmp(argv[2], "run");
    big = !strcmp(argv[2], "big");
    n = argc > 3 ? atol(argv[3]) : 0;
    nosync = argc > 4 && !strcmp(argv[4], "nosync");
    if (run) {
        seconds = argc > 3 ? atof(argv[3]) : 0;
        threads = argc > 4 ? atoi(argv[4]) : 0;
        nosync = argc > 5 && !strcmp(argv[5], "nosync");
        if (seconds <= 0 || threads < 1 || threads > 256) {
            fprintf(stderr, "bdb_env: run needs SECONDS > 0 and THREADS from 1 to 256\n"); return 2;
        }
    }

    CHECK(db_env_create(&env, 0));
    CHECK(env->set_cachesize(env, 0, 64 << 20, 1));
    /* Threads of one transaction mode can deadlock on b.db's one page:
     * the detector picks a victim at once, which retries. */
    if (run) CHECK(env->set_lk_detect(env, DB_LOCK_DEFAULT));
    /* One transaction locks every page it writes. */
    if (big) {
        CHECK(env->set_lk_max_locks(env, 1000000));
        CHECK(env->set_lk_max_objects(env, 1000000));
    }
    CHECK(env->open(env, argv[1], DB_CREATE | DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
                    DB_INIT_MPOOL | (run ? DB_THREAD : 0), 0644));
    if (nosync) CHECK(env->set_flags(env, DB_TXN_NOSYNC, 1));
    if (ckp) {
        CHECK(env->txn_checkpoint(env, 0, 0, DB_FORCE));
        CHECK(env->log_archive(env, NULL, DB_ARCH_REMOVE));
        CHECK(env->close(env, 0));
        return 0;
    }
    CHECK(db_create(&a, env, 0)); CHECK(db_create(&b, env, 0));
    CHECK(a->open(a, NULL, "a.db", NULL, DB_BTREE, DB_CREATE | DB_AUTO_COMMIT | (run ? DB_THREAD : 0), 0644));
    CHECK(b->open(b, NULL, "b.db", NULL, DB_BTREE, DB_CREATE | DB_AUTO_COMMIT | (run ? DB_THREAD : 0), 0644));
    memset(&k, 0, sizeof k); memset(&v, 0, sizeof v);
    k.data = key; v.data = val;
    if (!load) { /* continue after the last record the writer put */
        k.data = "last"; k.size = 4; v.data = last; v.ulen = sizeof last - 1; v.flags = DB_DBT_USERMEM;
        if (b->get(b, NULL, &k, &v, 0) == 0) { last[v.size] = 0; start = atol(last); }
        v.flags = 0; k.data = key; v.data = val;
    }
    if (run) {
        pthread_t th[256]; double el;
        r_env = env; r_a = a; r_b = b; r_next = start;
        t0 = now(); r_deadline = t0 + seconds;
        for (i = 0; i < threads; i++)
            if (pthread_create(&th[i], NULL, runner, NULL)) { fprintf(stderr, "bdb_env: pthread_create failed\n"); return 1; }
        for (i = 0; i < threads; i++) pthread_join(th[i], NULL);
        el = now() - t0;
        CHECK(a->close(a, 0)); CHECK(b->close(b, 0));
        CHECK(env->close(env, 0));
        printf("RATE %.0f %ld %.3f\n", r_commits / el, r_commits, el);
        return 0;
    }
    if (big) { /* n MiB in one transaction */
        CHECK(env->txn_begin(env, NULL, &t, 0));
        for (j = start + 1, i = 0; i < n * 1048576 / 1000; j++, i++) {
            k.size = sprintf(key, "k%010ld", j); v.size = 1000;
            memset(val, 'a' + j % 26, v.size);
            CHECK(a->put(a, t, &k, &v, 0));
        }
        k.data = "last"; k.size = 4; v.data = last; v.size = sprintf(last, "%ld", j - 1);
        CHECK(b->put(b, t, &k, &v, 0));
        CHECK(t->commit(t, 0));
        CHECK(a->close(a, 0)); CHECK(b->close(b, 0));
        CHECK(env->close(env, 0));
        return 0;
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
