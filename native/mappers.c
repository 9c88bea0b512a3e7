/*
 * mappers: one sample's orchestration. The backing is set up once; each mapper (a forked
 * process or a new thread) measures it (measure.c), one after another or together from a
 * barrier. A single mapper runs in a new process or thread too, so that rows with one and
 * with several mappers time their first mapper in the same kind of context. Every mapper is waited for, and killed if it overstays its
 * deadline; a signal to fb_run ends the sample early (interrupt.c).
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILL_GRACE_NS 2000000000LL
#define REAP_POLL_NS 1000000L

/* A mapper that never ran because fb_run was interrupted first. */
static int skipped(struct fb_result *r)
{
	if (!fb_interrupted())
		return 0;
	fb_fail(r, FB_ERROR, "interrupted by %s before this mapper started",
		fb_signal_name(fb_interrupted()));
	return 1;
}

static void *mapper_thread(void *arg)
{
	fb_measure_mapper(arg);
	return NULL;
}

static void run_threads(struct fb_mapper_job *jobs, int n, int concurrent)
{
	pthread_t threads[n];
	int started[n];

	for (int i = 0; i < n; i++) {
		started[i] = 0;
		if (!concurrent && skipped(jobs[i].result))
			continue;
		started[i] = pthread_create(&threads[i], NULL, mapper_thread, &jobs[i]) == 0;
		if (!started[i])
			fb_fail(jobs[i].result, FB_ERROR, "cannot start mapper thread %d", i);
		else if (!concurrent)
			pthread_join(threads[i], NULL);
	}
	if (!concurrent)
		return;
	for (int i = 0; i < n; i++)
		if (!started[i])	/* take its place at the barrier, or the others never start */
			fb_measure_mapper(&jobs[i]);
	for (int i = 0; i < n; i++)
		if (started[i])
			pthread_join(threads[i], NULL);
}

/* Waits for a mapper process; passes a signal fb_run received on to it, and kills it when
 * it overstays its deadline (or the grace after the signal). */
static void reap(pid_t pid, int64_t kill_at, struct fb_result *r)
{
	struct timespec pause = { 0, REAP_POLL_NS };
	int status, forwarded = 0;

	for (;;) {
		pid_t got = waitpid(pid, &status, WNOHANG);

		if (got == pid)
			break;
		if (got < 0 && errno != EINTR) {
			fb_fail(r, FB_ERROR, "waitpid: %s", strerror(errno));
			return;
		}
		if (fb_interrupted() && !forwarded) {
			forwarded = 1;
			kill(pid, fb_interrupted());	/* its handler releases its faults */
			if (fb_now_ns() + KILL_GRACE_NS < kill_at)
				kill_at = fb_now_ns() + KILL_GRACE_NS;
		}
		if (fb_now_ns() > kill_at) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fb_fail(r, FB_ERROR, "mapper process killed: no result within its deadline");
			return;
		}
		nanosleep(&pause, NULL);
	}
	if (WIFSIGNALED(status))
		fb_fail(r, FB_ERROR, "mapper process died: %s (signal %d)",
			strsignal(WTERMSIG(status)), WTERMSIG(status));
	else if (WEXITSTATUS(status) != 0)
		fb_fail(r, FB_ERROR, "mapper process exited with status %d", WEXITSTATUS(status));
}

static void run_processes(struct fb_mapper_job *jobs, int n, int concurrent, int64_t deadline_ns)
{
	pid_t pids[n], parent = getpid();

	for (int i = 0; i < n; i++) {
		pids[i] = 0;
		if (!concurrent && skipped(jobs[i].result))
			continue;
		pids[i] = fork();
		if (pids[i] == 0) {
			/* a mapper must not outlive a killed parent (and its uffd server with it) */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			fb_measure_mapper(&jobs[i]);
			_exit(0);
		}
		if (pids[i] < 0) {
			fb_fail(jobs[i].result, FB_ERROR, "fork: %s", strerror(errno));
			continue;
		}
		if (!concurrent)
			reap(pids[i], fb_now_ns() + deadline_ns + KILL_GRACE_NS, jobs[i].result);
	}
	if (concurrent) {
		int64_t kill_at = fb_now_ns() + deadline_ns + KILL_GRACE_NS;

		for (int i = 0; i < n; i++)
			if (pids[i] > 0)
				reap(pids[i], kill_at, jobs[i].result);
	}
}

static void result_init(struct fb_result *r, int64_t page_size, const char *fs_type)
{
	memset(r, 0, sizeof(*r));
	r->page_size = page_size;
	r->touch_ns = r->faults_minor = r->faults_major = r->perf_page_faults = -1;
	r->cycles = r->instructions = r->pages_mapped = r->resident_before_pages = -1;
	r->mmap_ns = r->munmap_ns = r->uffd_events = r->uffd_ns = -1;
	r->populate_ns = r->populate_faults = r->nivcsw = r->steal_ns = r->window_offset = -1;
	snprintf(r->fs_type, sizeof(r->fs_type), "%s", fs_type);
}

static void run_mappers(const struct fb_spec *spec, const struct fb_backing_file *bf,
			struct fb_result *shared, pthread_barrier_t *barrier, int64_t page_size)
{
	int n = spec->mappers, forked = !spec->threads;
	struct fb_mapper_job jobs[n];
	pthread_barrierattr_t attr;

	for (int i = 0; i < n; i++) {
		result_init(&shared[i], page_size, bf->fs_type);
		jobs[i] = (struct fb_mapper_job){ spec, bf, &shared[i], i,
						  spec->concurrent && n > 1 ? barrier : NULL };
	}
	if (jobs[0].start) {
		pthread_barrierattr_init(&attr);
		pthread_barrierattr_setpshared(&attr, forked ? PTHREAD_PROCESS_SHARED :
					       PTHREAD_PROCESS_PRIVATE);
		pthread_barrier_init(barrier, &attr, (unsigned)n);
		pthread_barrierattr_destroy(&attr);
	}
	if (spec->threads)
		run_threads(jobs, n, spec->concurrent);
	else
		run_processes(jobs, n, spec->concurrent, spec->deadline_ns);
	if (jobs[0].start)
		pthread_barrier_destroy(barrier);
}

static int run(const struct fb_spec *spec, struct fb_result *results, int64_t page_size)
{
	int n = spec->mappers, forked = !spec->threads;
	struct fb_backing_file bf;
	struct fb_result *shared = results;
	pthread_barrier_t *barrier = NULL;
	size_t shared_len = 0;

	if (fb_backing_create(spec, &bf, &results[0]) != 0) {
		fb_backing_destroy(&bf);
		return -1;
	}
	if (spec->size % bf.unit) {
		fb_fail(&results[0], FB_ERROR, "size must be a multiple of the %llu-byte huge page",
			(unsigned long long)bf.unit);
		fb_backing_destroy(&bf);
		return -1;
	}
	if (forked || (n > 1 && spec->concurrent)) {
		/* results and the barrier must be visible to every mapper process */
		shared_len = n * sizeof(*results) + sizeof(*barrier);
		shared = mmap(NULL, shared_len, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shared == MAP_FAILED) {
			fb_fail(&results[0], FB_ERROR, "mmap: %s", strerror(errno));
			fb_backing_destroy(&bf);
			return -1;
		}
		barrier = (pthread_barrier_t *)(shared + n);
	}
	run_mappers(spec, &bf, shared, barrier, page_size);
	if (shared != results) {
		memcpy(results, shared, n * sizeof(*results));
		munmap(shared, shared_len);
	}
	fb_backing_destroy(&bf);
	return 0;
}

int fb_run(const struct fb_spec *spec, struct fb_result *results)
{
	int64_t page_size = sysconf(_SC_PAGESIZE);
	int rc;

	result_init(&results[0], page_size, "");
	if (spec->mappers < 1 || spec->size == 0 || spec->size % (uint64_t)page_size) {
		fb_fail(&results[0], FB_ERROR, "size must be a positive multiple of %lld bytes",
			(long long)page_size);
		return -1;
	}
	fb_interrupt_begin();
	rc = run(spec, results, page_size);
	fb_interrupt_end();
	return rc;
}
