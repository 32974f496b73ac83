/*
 * Index store comparison (issue: choose between own sorted index files and an embedded store,
 * by measuring). One harness, in C, so the three stores pay the same language costs:
 *
 *   files   Starling's layout: one file per sealed segment, 40-byte entries sorted by
 *           (key hash, seq), a chunk table of 12 bytes per 128 entries held in memory;
 *           a lookup is a binary search of each file's table, then one pread per chunk.
 *   sqlite  one SQLite database, WITHOUT ROWID table keyed by (key hash, seq), one
 *           transaction per segment, WAL, synchronous=NORMAL.
 *   lmdb    one LMDB environment, key (key hash, seq) big-endian, one transaction per segment.
 *
 * The workload is a node's: --entries entries (events) over --sessions sessions in random
 * order, sealed into segments of --per-segment entries. Reports build seconds, bytes per entry
 * on disk, bytes held in memory, and p50/p99 of looking up every entry of a random session,
 * first cold (page cache dropped: needs root) then warm.
 *
 *   cc -O2 -o indexstore indexstore.c -lsqlite3 -llmdb
 *   ./indexstore DIR [entries] [sessions] [per-segment] [queries]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    uint64_t key, seq;
    int64_t ts, recv;
    uint32_t off;
    uint16_t idx, seg;
} Entry;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "indexstore: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t fnv(uint64_t x) {   /* a session's key hash (FNV-1a 64 of its decimal id) */
    char s[32];
    int n = snprintf(s, sizeof s, "session-%llu", (unsigned long long)x);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 0x100000001b3ULL; }
    return h;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next_rand(void) {   /* xorshift64* */
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static int by_key(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long long dir_bytes(const char *dir, const char *prefix) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "du -sb --apparent-size %s/%s* 2>/dev/null | awk '{s+=$1} END {printf \"%%.0f\\n\", s}'", dir, prefix);
    FILE *p = popen(cmd, "r");
    long long n = 0;
    if (p && fscanf(p, "%lld", &n) != 1) n = 0;
    if (p) pclose(p);
    return n;
}

static int drop_caches(void) {
    sync();
    FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
    if (!f) return 0;
    int ok = fputs("3\n", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* ---- files: Starling's layout ---- */
#define CHUNK 128
typedef struct { int fd; uint32_t n, chunks; uint64_t *first; } IdxFile;

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void files_write(const char *dir, int seg, Entry *e, uint32_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/files-%06d.idx", dir, seg);
    size_t chunks = (n + CHUNK - 1) / CHUNK;
    size_t size = 72 + (size_t)n * 40 + chunks * 12;
    uint8_t *b = calloc(1, size);
    memcpy(b, "STLIDX", 6);
    memcpy(b + 12, &n, 4);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *p = b + 72 + (size_t)i * 40;
        put64(p, e[i].key); put64(p + 8, (uint64_t)e[i].ts); put64(p + 16, (uint64_t)e[i].recv); put64(p + 24, e[i].seq);
        memcpy(p + 32, &e[i].off, 4); memcpy(p + 36, &e[i].idx, 2);
    }
    for (size_t c = 0; c < chunks; c++) put64(b + 72 + (size_t)n * 40 + c * 12, e[c * CHUNK].key);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0 || write(fd, b, size) != (ssize_t)size || fdatasync(fd) != 0) die(path);
    close(fd);
    free(b);
}

static IdxFile files_open(const char *dir, int seg) {
    char path[4096];
    snprintf(path, sizeof path, "%s/files-%06d.idx", dir, seg);
    IdxFile f;
    f.fd = open(path, O_RDONLY);
    if (f.fd < 0) die(path);
    uint8_t h[72];
    if (pread(f.fd, h, 72, 0) != 72) die(path);
    memcpy(&f.n, h + 12, 4);
    f.chunks = (f.n + CHUNK - 1) / CHUNK;
    f.first = malloc(f.chunks * 8);
    uint8_t *t = malloc(f.chunks * 12);
    if (pread(f.fd, t, f.chunks * 12, 72 + (off_t)f.n * 40) != (ssize_t)(f.chunks * 12)) die(path);
    for (uint32_t c = 0; c < f.chunks; c++) memcpy(&f.first[c], t + c * 12, 8);
    free(t);
    return f;
}

static int files_lookup(IdxFile *f, uint64_t key) {
    /* chunks whose range can hold key: from the last chunk starting before it to the last starting at or before it */
    uint32_t lo = 0, hi = f->chunks;
    while (lo < hi) { uint32_t m = (lo + hi) / 2; if (f->first[m] < key) lo = m + 1; else hi = m; }
    uint32_t from = lo > 0 ? lo - 1 : 0, to = from;
    while (to + 1 < f->chunks && f->first[to + 1] <= key) to++;
    int found = 0;
    uint8_t buf[CHUNK * 40];
    for (uint32_t c = from; c <= to; c++) {
        uint32_t count = c + 1 == f->chunks ? f->n - c * CHUNK : CHUNK;
        if (pread(f->fd, buf, count * 40, 72 + (off_t)c * CHUNK * 40) != (ssize_t)(count * 40)) die("pread");
        for (uint32_t i = 0; i < count; i++) { uint64_t k; memcpy(&k, buf + i * 40, 8); found += k == key; }
    }
    return found;
}

/* ---- sqlite ---- */
static void sq(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) { fprintf(stderr, "sqlite: %s: %s\n", sql, err); exit(1); }
}

/* ---- lmdb ---- */
static void lm(int rc, const char *what) {
    if (rc) { fprintf(stderr, "lmdb: %s: %s\n", what, mdb_strerror(rc)); exit(1); }
}

static void be64(uint8_t *p, uint64_t v) { for (int i = 7; i >= 0; i--) { p[i] = v & 0xff; v >>= 8; } }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: indexstore DIR [entries] [sessions] [per-segment] [queries]\n"); return 2; }
    const char *dir = argv[1];
    uint64_t entries = argc > 2 ? strtoull(argv[2], 0, 10) : 20000000;
    uint64_t sessions = argc > 3 ? strtoull(argv[3], 0, 10) : 200000;
    uint64_t per = argc > 4 ? strtoull(argv[4], 0, 10) : 1400000;
    int queries = argc > 5 ? atoi(argv[5]) : 300;
    int segs = (int)((entries + per - 1) / per);
    mkdir(dir, 0755);

    /* the workload: one event per entry, a random session each, received in order */
    Entry *all = malloc(entries * sizeof(Entry));
    if (!all) die("malloc");
    for (uint64_t i = 0; i < entries; i++) {
        uint64_t s = next_rand() % sessions;
        all[i] = (Entry){ .key = fnv(s), .seq = i + 1, .ts = 1700000000000LL + (int64_t)i, .recv = 1700000000000LL + (int64_t)i,
                          .off = (uint32_t)((i % per) * 47 / 100 * 100), .idx = (uint16_t)(i % 100), .seg = (uint16_t)(i / per) };
    }
    for (int s = 0; s < segs; s++) {
        uint64_t n = (s + 1) * per > entries ? entries - s * per : per;
        qsort(all + s * per, n, sizeof(Entry), by_key);
    }
    uint64_t *picks = malloc(queries * sizeof(uint64_t));
    for (int q = 0; q < queries; q++) picks[q] = fnv(next_rand() % sessions);

    printf("{\"entries\": %llu, \"sessions\": %llu, \"per_segment\": %llu, \"segments\": %d, \"stores\": {",
           (unsigned long long)entries, (unsigned long long)sessions, (unsigned long long)per, segs);
    const char *names[] = { "files", "sqlite", "lmdb" };
    for (int store = 0; store < 3; store++) {
        struct rusage ru0, ru1;
        getrusage(RUSAGE_SELF, &ru0);
        double t0 = now();
        sqlite3 *db = NULL;
        MDB_env *env = NULL;
        MDB_dbi dbi = 0;
        char path[4096];
        if (store == 0) {
            for (int s = 0; s < segs; s++) {
                uint64_t n = (s + 1) * per > entries ? entries - s * per : per;
                files_write(dir, s, all + s * per, (uint32_t)n);
            }
        } else if (store == 1) {
            snprintf(path, sizeof path, "%s/sqlite.db", dir);
            unlink(path);
            if (sqlite3_open(path, &db) != SQLITE_OK) die(path);
            sq(db, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
            sq(db, "CREATE TABLE refs (k INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER, recv INTEGER, seg INTEGER, off INTEGER, idx INTEGER, PRIMARY KEY (k, seq)) WITHOUT ROWID");
            sqlite3_stmt *ins;
            sqlite3_prepare_v2(db, "INSERT INTO refs VALUES (?,?,?,?,?,?,?)", -1, &ins, NULL);
            for (int s = 0; s < segs; s++) {
                uint64_t n = (s + 1) * per > entries ? entries - s * per : per;
                sq(db, "BEGIN");
                for (uint64_t i = 0; i < n; i++) {
                    Entry *e = all + s * per + i;
                    sqlite3_bind_int64(ins, 1, (int64_t)e->key); sqlite3_bind_int64(ins, 2, (int64_t)e->seq);
                    sqlite3_bind_int64(ins, 3, e->ts); sqlite3_bind_int64(ins, 4, e->recv); sqlite3_bind_int64(ins, 5, e->seg);
                    sqlite3_bind_int64(ins, 6, e->off); sqlite3_bind_int64(ins, 7, e->idx);
                    if (sqlite3_step(ins) != SQLITE_DONE) { fprintf(stderr, "sqlite insert: %s\n", sqlite3_errmsg(db)); return 1; }
                    sqlite3_reset(ins);
                }
                sq(db, "COMMIT");
            }
            sqlite3_finalize(ins);
            sq(db, "PRAGMA wal_checkpoint(TRUNCATE)");
            sqlite3_close(db);
        } else {
            snprintf(path, sizeof path, "%s/lmdb", dir);
            mkdir(path, 0755);
            char f[4200];
            snprintf(f, sizeof f, "%s/data.mdb", path); unlink(f);
            snprintf(f, sizeof f, "%s/lock.mdb", path); unlink(f);
            lm(mdb_env_create(&env), "create");
            lm(mdb_env_set_mapsize(env, (size_t)64 << 30), "mapsize");
            lm(mdb_env_open(env, path, MDB_NORDAHEAD, 0644), "open");
            for (int s = 0; s < segs; s++) {
                uint64_t n = (s + 1) * per > entries ? entries - s * per : per;
                MDB_txn *txn;
                lm(mdb_txn_begin(env, NULL, 0, &txn), "begin");
                lm(mdb_dbi_open(txn, NULL, 0, &dbi), "dbi");
                for (uint64_t i = 0; i < n; i++) {
                    Entry *e = all + s * per + i;
                    uint8_t kb[16], vb[24];
                    be64(kb, e->key); be64(kb + 8, e->seq);
                    memcpy(vb, &e->ts, 8); memcpy(vb + 8, &e->recv, 8); memcpy(vb + 16, &e->off, 4); memcpy(vb + 20, &e->idx, 2); memcpy(vb + 22, &e->seg, 2);
                    MDB_val k = { 16, kb }, v = { 24, vb };
                    lm(mdb_put(txn, dbi, &k, &v, 0), "put");
                }
                lm(mdb_txn_commit(txn), "commit");
            }
            mdb_env_close(env);
        }
        double build = now() - t0;
        getrusage(RUSAGE_SELF, &ru1);
        double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6
                   + (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
        long long bytes = dir_bytes(dir, store == 0 ? "files-" : store == 1 ? "sqlite.db" : "lmdb/data");

        /* open for reading */
        IdxFile *files = NULL;
        long long resident = 0;
        sqlite3_stmt *sel = NULL;
        MDB_txn *rtxn = NULL;
        MDB_cursor *cur = NULL;
        if (store == 0) {
            files = malloc(segs * sizeof(IdxFile));
            for (int s = 0; s < segs; s++) { files[s] = files_open(dir, s); resident += files[s].chunks * 8; }
        } else if (store == 1) {
            snprintf(path, sizeof path, "%s/sqlite.db", dir);
            if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die(path);
            sq(db, "PRAGMA cache_size=-2000");   /* SQLite's default page cache, 2 MB */
            sqlite3_prepare_v2(db, "SELECT seq, seg, off, idx FROM refs WHERE k = ? ORDER BY seq", -1, &sel, NULL);
            resident = 2000 * 1024;
        } else {
            snprintf(path, sizeof path, "%s/lmdb", dir);
            lm(mdb_env_create(&env), "create");
            lm(mdb_env_set_mapsize(env, (size_t)64 << 30), "mapsize");
            lm(mdb_env_open(env, path, MDB_RDONLY | MDB_NORDAHEAD, 0644), "open");
            lm(mdb_txn_begin(env, NULL, MDB_RDONLY, &rtxn), "rbegin");
            lm(mdb_dbi_open(rtxn, NULL, 0, &dbi), "rdbi");
            lm(mdb_cursor_open(rtxn, dbi, &cur), "cursor");
        }
        printf("%s\"%s\": {\"build_seconds\": %.2f, \"build_cpu_seconds\": %.2f, \"bytes_per_entry\": %.2f, \"resident_bytes\": %lld",
               store ? ", " : "", names[store], build, cpu, (double)bytes / entries, resident);
        for (int pass = 0; pass < 2; pass++) {
            int cold = pass == 0 && drop_caches();
            double *times = malloc(queries * sizeof(double));
            long long total = 0;
            for (int q = 0; q < queries; q++) {
                uint64_t key = picks[q];   /* the same keys twice: cold, then warm */
                double t = now();
                int found = 0;
                if (store == 0) {
                    for (int s = 0; s < segs; s++) found += files_lookup(&files[s], key);
                } else if (store == 1) {
                    sqlite3_bind_int64(sel, 1, (int64_t)key);
                    while (sqlite3_step(sel) == SQLITE_ROW) found++;
                    sqlite3_reset(sel);
                } else {
                    uint8_t kb[16];
                    be64(kb, key); be64(kb + 8, 0);
                    MDB_val k = { 16, kb }, v;
                    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
                    while (rc == 0 && k.mv_size == 16 && memcmp(k.mv_data, kb, 8) == 0) {
                        found++;
                        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
                    }
                }
                times[q] = (now() - t) * 1000;
                total += found;
            }
            qsort(times, queries, sizeof(double), cmp_double);
            printf(", \"%s\": {\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"entries_per_query\": %.1f, \"caches_dropped\": %s}",
                   pass == 0 ? "first" : "warm", times[queries / 2], times[queries * 99 / 100], (double)total / queries,
                   cold ? "true" : "false");
            free(times);
        }
        printf("}");
        if (store == 0) { for (int s = 0; s < segs; s++) { close(files[s].fd); free(files[s].first); } free(files); }
        if (store == 1) { sqlite3_finalize(sel); sqlite3_close(db); }
        if (store == 2) { mdb_cursor_close(cur); mdb_txn_abort(rtxn); mdb_env_close(env); }
        fflush(stdout);
    }
    printf("}}\n");
    return 0;
}
