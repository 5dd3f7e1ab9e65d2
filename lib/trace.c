/*
 * trace.c - the execution trace: rings of events recorded while the
 * scheduler runs, written at heist_sched_free as a Chrome Trace Event JSON
 * file (ui.perfetto.dev, chrome://tracing).
 *
 * Recording (trace.h) stores a timestamp, a type, a function pointer and a
 * flow id into the recorder's own ring; nothing is formatted or resolved
 * then. Writing turns each track's events, oldest first, into:
 *   - "X" slices from BEGIN/END pairs (a slice is one item a worker runs: a
 *     spawned task, a stolen fork, a callback, or a resumed fiber up to its
 *     next suspension or its end), named by dladdr(3) from the function
 *     pointer (module+offset when dladdr knows no symbol);
 *   - "i" instants for steals (args: victim), suspensions (args: why),
 *     parks and unparks;
 *   - a 2 ns "X" slice "wake" where a fiber was made ready, holding the
 *     start ("s") of a flow whose end ("f", bound to the enclosing slice)
 *     is the start of the resumed fiber's slice: completion -> resumption;
 *   - for each stolen fork, a flow from the victim's track at the steal
 *     (bound to the slice the victim was running, the fork's parent) to
 *     the thief's slice that runs the fork; none for a fork that a
 *     suspension queued (fork.c, "Bounded drains"), whose parent is
 *     suspended when it runs (its steal instant names the worker that
 *     queued it).
 * An END with no BEGIN (the BEGIN was overwritten) is skipped. Each track
 * that lost events gets an instant "dropped events" (args: count) at its
 * first kept event, and otherData says how many were recorded and dropped
 * in all.
 */
#include "trace.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { DEFAULT_EVENTS = 1 << 16, MAX_EVENTS = 1 << 26 };

/* Opens path for writing, creating it (mode 0666 less the umask, as
 * fopen's "w"); a file that exists is opened as it is (the trace is
 * written from its start at heist_sched_free, which then cuts the file
 * where the trace ends). *created says which, so that a scheduler that
 * fails to start removes only a file it made, and leaves one that was
 * there as it was. */
static FILE *trace_open(const char *path, bool *created)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST)
        fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    FILE *fp = fdopen(fd, "w");
    if (!fp) {
        int e = errno;
        close(fd);
        if (*created)
            unlink(path);
        errno = e;
    }
    return fp;
}

int heist__trace_new(const char *path, unsigned nworkers, size_t events,
                     struct heist__trace **out)
{
    if (events == 0)
        events = DEFAULT_EVENTS;
    if (events > MAX_EVENTS)
        events = MAX_EVENTS;
    size_t cap = 1;
    while (cap < events)
        cap <<= 1;
    struct heist__trace *t = calloc(1, sizeof(*t));
    if (!t)
        return ENOMEM;
    t->nworkers = nworkers;
    t->path = strdup(path);
    t->bufs = calloc(nworkers + 2u, sizeof(*t->bufs));
    int err = t->path && t->bufs ? 0 : ENOMEM;
    for (unsigned i = 0; !err && i < nworkers + 2u; i++) {
        t->bufs[i].ev = malloc(cap * sizeof(struct heist__tev));
        if (!t->bufs[i].ev)
            err = ENOMEM;
        t->bufs[i].mask = cap - 1;
        t->bufs[i].tid = i;
    }
    if (!err && pthread_mutex_init(&t->lock, NULL))
        err = ENOMEM;
    if (!err) {
        t->fp = trace_open(path, &t->created);
        if (!t->fp) {
            err = errno ? errno : EIO;
            pthread_mutex_destroy(&t->lock);
        }
    }
    if (err) {
        for (unsigned i = 0; t->bufs && i < nworkers + 2u; i++)
            free(t->bufs[i].ev);
        free(t->bufs);
        free(t->path);
        free(t);
        return err;
    }
    t->t0 = heist__now_ns();
    *out = t;
    return 0;
}

uint64_t heist__trace_rec_shared(struct heist__trace *t, bool timer,
                                 uint32_t type, uint32_t arg, bool flow)
{
    struct heist__tbuf *b = &t->bufs[t->nworkers + (timer ? 0 : 1)];
    pthread_mutex_lock(&t->lock);
    uint64_t id = flow ? heist__trace_flow(b) : 0;
    heist__trace_rec(b, type, NULL, arg, id);
    pthread_mutex_unlock(&t->lock);
    return id;
}

/* ---- writing ------------------------------------------------------------ */

struct writer {
    FILE *fp;
    uint64_t t0;
    bool first;
    /* A small cache of resolved names: dladdr scans symbol tables. */
    struct {
        const void *sym;
        char name[128];
    } cache[64];
};

/* Prints ns since t0 as microseconds with ns precision. */
static void put_ts(struct writer *w, uint64_t ns)
{
    uint64_t d = ns >= w->t0 ? ns - w->t0 : 0;
    fprintf(w->fp, "%" PRIu64 ".%03" PRIu64, d / 1000, d % 1000);
}

static void put_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c < 0x20)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

static const char *sym_name(struct writer *w, const void *sym)
{
    unsigned h = (unsigned)(((uintptr_t)sym >> 4) % 64);
    if (w->cache[h].sym == sym && sym)
        return w->cache[h].name;
    char *out = w->cache[h].name;
    size_t cap = sizeof(w->cache[h].name);
    Dl_info info;
    memset(&info, 0, sizeof(info)); /* dladdr may fail and fill nothing */
    if (!sym) {
        snprintf(out, cap, "?");
    } else if (dladdr(sym, &info) && info.dli_sname &&
               info.dli_saddr == sym) {
        snprintf(out, cap, "%s", info.dli_sname);
    } else if (info.dli_fname && info.dli_fbase) {
        const char *base = strrchr(info.dli_fname, '/');
        base = base ? base + 1 : info.dli_fname;
        snprintf(out, cap, "%s+0x%" PRIxPTR, base,
                 (uintptr_t)sym - (uintptr_t)info.dli_fbase);
    } else {
        snprintf(out, cap, "%p", sym);
    }
    w->cache[h].sym = sym;
    return out;
}

/* Starts an event object: {"ph":ph,"pid":1,"tid":tid,"ts":ts,"name":name */
static void ev_open(struct writer *w, const char *ph, unsigned tid,
                    uint64_t ts, const char *name)
{
    fputs(w->first ? "\n" : ",\n", w->fp);
    w->first = false;
    fprintf(w->fp, "{\"ph\":\"%s\",\"pid\":1,\"tid\":%u,\"ts\":", ph, tid);
    put_ts(w, ts);
    fputs(",\"name\":", w->fp);
    put_str(w->fp, name);
}

static void meta(struct writer *w, unsigned tid, const char *what,
                 const char *key, const char *sval, long ival)
{
    fputs(w->first ? "\n" : ",\n", w->fp);
    w->first = false;
    fprintf(w->fp, "{\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"ts\":0,\"name\":\"%s\","
                   "\"args\":{\"%s\":", tid, what, key);
    if (sval)
        put_str(w->fp, sval);
    else
        fprintf(w->fp, "%ld", ival);
    fputs("}}", w->fp);
}

static const char *const kind_names[] = {"task", "fork", "callback", "resume"};
static const char *const why_names[] = {"?", "await", "sleep", "join"};
static const char *const wake_names[] = {"?", "ready", "timeout", "cancel"};

static const char *name_of(const char *const *names, size_t n, uint32_t i)
{
    return i < n ? names[i] : "?";
}
#define NAME_OF(a, i) name_of((a), sizeof(a) / sizeof((a)[0]), (i))

static void flow(struct writer *w, const char *ph, unsigned tid, uint64_t ts,
                 const char *name, uint64_t id)
{
    ev_open(w, ph, tid, ts, name);
    fprintf(w->fp, ",\"cat\":\"%s\",\"id\":%" PRIu64 "%s}", name, id,
            ph[0] == 'f' ? ",\"bp\":\"e\"" : "");
}

static void write_track(struct writer *w, const struct heist__tbuf *b)
{
    uint64_t cap = b->mask + 1;
    uint64_t from = b->n > cap ? b->n - cap : 0;
    bool open = false;
    struct heist__tev cur = {0};
    uint64_t steal_flow = 0; /* a stolen fork whose slice comes next */
    if (from > 0 && b->n > from) {
        ev_open(w, "i", b->tid, b->ev[from & b->mask].ts, "dropped events");
        fprintf(w->fp, ",\"s\":\"t\",\"args\":{\"count\":%" PRIu64 "}}",
                from);
    }
    for (uint64_t k = from; k < b->n; k++) {
        const struct heist__tev *e = &b->ev[k & b->mask];
        switch (e->type) {
        case HEIST__TEV_BEGIN:
            if (open) { /* defensive: close what is open */
                ev_open(w, "X", b->tid, cur.ts, sym_name(w, cur.sym));
                fputs(",\"dur\":", w->fp);
                put_ts(w, w->t0 + (e->ts - cur.ts));
                fputs("}", w->fp);
            }
            open = true;
            cur = *e;
            if (e->id)
                flow(w, "f", b->tid, e->ts + 1, "wake", e->id);
            if (e->arg == HEIST__TK_FORK && steal_flow)
                flow(w, "f", b->tid, e->ts + 1, "steal", steal_flow);
            steal_flow = 0;
            break;
        case HEIST__TEV_END:
            if (!open)
                break; /* its BEGIN was dropped */
            open = false;
            ev_open(w, "X", b->tid, cur.ts, sym_name(w, cur.sym));
            fprintf(w->fp, ",\"cat\":\"%s\",\"dur\":",
                    NAME_OF(kind_names, cur.arg));
            put_ts(w, w->t0 + (e->ts - cur.ts));
            fprintf(w->fp, ",\"args\":{\"kind\":\"%s\"}}",
                    NAME_OF(kind_names, cur.arg));
            break;
        case HEIST__TEV_STEAL:
        case HEIST__TEV_STEAL_ITEM:
            ev_open(w, "i", b->tid, e->ts,
                    e->type == HEIST__TEV_STEAL ? "steal" : "steal ready item");
            fprintf(w->fp, ",\"s\":\"t\",\"args\":{\"victim\":%" PRIu32 "}}",
                    e->arg);
            /* id 0: a fork that a suspension queued (fork.c), no arrow:
             * its parent was suspended by the time it ran. */
            if (e->type == HEIST__TEV_STEAL && e->id != 0) {
                flow(w, "s", e->arg, e->ts, "steal", e->id);
                steal_flow = e->id;
            }
            break;
        case HEIST__TEV_SUSPEND:
            ev_open(w, "i", b->tid, e->ts, "suspend");
            fprintf(w->fp, ",\"s\":\"t\",\"args\":{\"why\":\"%s\"}}",
                    NAME_OF(why_names, e->arg));
            break;
        case HEIST__TEV_PARK:
        case HEIST__TEV_UNPARK:
            ev_open(w, "i", b->tid, e->ts,
                    e->type == HEIST__TEV_PARK ? "park" : "unpark");
            fputs(",\"s\":\"t\"}", w->fp);
            break;
        case HEIST__TEV_WAKE:
            ev_open(w, "X", b->tid, e->ts, "wake");
            fputs(",\"cat\":\"wake\",\"dur\":0.002", w->fp);
            fprintf(w->fp, ",\"args\":{\"reason\":\"%s\"}}",
                    NAME_OF(wake_names, e->arg));
            flow(w, "s", b->tid, e->ts + 1, "wake", e->id);
            break;
        default:
            break;
        }
    }
}

static void trace_free(struct heist__trace *t)
{
    for (unsigned i = 0; i < t->nworkers + 2u; i++)
        free(t->bufs[i].ev);
    free(t->bufs);
    pthread_mutex_destroy(&t->lock);
    free(t->path);
    free(t);
}

int heist__trace_finish(struct heist__trace *t)
{
    struct writer *w = calloc(1, sizeof(*w));
    int err = 0;
    if (!w) {
        err = ENOMEM;
        fclose(t->fp);
    } else {
        w->fp = t->fp;
        w->t0 = t->t0;
        w->first = true;
        pthread_mutex_lock(&t->lock);
        unsigned ntracks = t->nworkers + 2u;
        uint64_t recorded = 0, dropped = 0;
        fputs("{\"traceEvents\":[", w->fp);
        meta(w, 0, "process_name", "name", "heist", 0);
        for (unsigned i = 0; i < ntracks; i++) {
            const struct heist__tbuf *b = &t->bufs[i];
            uint64_t cap = b->mask + 1;
            recorded += b->n;
            dropped += b->n > cap ? b->n - cap : 0;
            if (i >= t->nworkers && b->n == 0)
                continue; /* no timer or other thread recorded anything */
            char name[32];
            if (i < t->nworkers)
                snprintf(name, sizeof(name), "worker %u", i);
            else
                snprintf(name, sizeof(name), "%s",
                         i == t->nworkers ? "timer thread" : "other threads");
            meta(w, i, "thread_name", "name", name, 0);
            meta(w, i, "thread_sort_index", "sort_index", NULL, (long)i);
            write_track(w, b);
        }
        fprintf(w->fp,
                "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{"
                "\"workers\":\"%u\",\"recorded_events\":\"%" PRIu64 "\","
                "\"dropped_events\":\"%" PRIu64 "\",\"ring_events\":\"%" PRIu64
                "\"}}\n",
                t->nworkers, recorded, dropped, t->bufs[0].mask + 1);
        pthread_mutex_unlock(&t->lock);
        /* Another scheduler of the process may trace to the same path and
         * have written a longer trace there, also from the start: the
         * file ends where ours does, so it holds one whole trace (the
         * last one written). Regular files only (not /dev/null, a pipe). */
        struct stat sb;
        long end;
        if (fflush(w->fp) == 0 && (end = ftell(w->fp)) >= 0 &&
            fstat(fileno(w->fp), &sb) == 0 && S_ISREG(sb.st_mode) &&
            ftruncate(fileno(w->fp), (off_t)end) != 0)
            err = errno ? errno : EIO;
        if (ferror(w->fp) && !err)
            err = EIO;
        if (fclose(w->fp) != 0 && !err)
            err = errno ? errno : EIO;
        free(w);
    }
    if (err)
        fprintf(stderr, "heist: could not write the trace %s: %s\n", t->path,
                strerror(err));
    trace_free(t);
    return err;
}

void heist__trace_discard(struct heist__trace *t)
{
    fclose(t->fp);
    /* Only a file we created (an empty one): never what was there before
     * (a failed heist_sched_new deleted a user's file, or /dev/null). */
    if (t->created)
        unlink(t->path);
    trace_free(t);
}
