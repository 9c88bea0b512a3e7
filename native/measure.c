/*
 * measure: one sample. The backing is set up once; each mapper (this thread, forked
 * processes, or threads) maps it, optionally registers it with userfaultfd, and times
 * its touch loop between two clock reads with the kernel's counters around it.
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

static volatile uint8_t fb_sink;
#define REAP_POLL_NS 1000000L

struct mapper_job {
	const struct fb_spec *spec;
	const struct fb_backing_file *bf;
	struct fb_result *result;
	int index;
	pthread_barrier_t *start;	/* concurrent mappers wait here; NULL otherwise */
};

static int registers(const struct fb_spec *spec, int index)
{
	if (spec->uffd == FB_UFFD_NONE)
		return 0;
	if (spec->registered == FB_REG_FIRST)
		return index == 0;
	if (spec->registered == FB_REG_LATER)
		return index > 0;
	return 1;
}

static void measure_mapper(const struct mapper_job *job)
{
	const struct fb_spec *spec = job->spec;
	struct fb_result *r = job->result;
	struct fb_counters counters;
	struct fb_uffd *uffd = NULL;
	struct fb_plan plan;
	int64_t t0, t1, deadline_at;
	uint8_t sum;
	char *addr;

	if (job->start)
		pthread_barrier_wait(job->start);
	deadline_at = fb_now_ns() + spec->deadline_ns;
	if (fb_plan_build(spec, r->page_size, &plan) != 0) {
		fb_fail(r, FB_ERROR, "cannot build the access plan: out of memory");
		return;
	}
	t0 = fb_now_ns();
	addr = fb_map(spec, job->bf);
	t1 = fb_now_ns();
	if (addr == MAP_FAILED) {
		fb_fail(r, FB_ERROR, "mmap: %s", strerror(errno));
		fb_plan_free(&plan);
		return;
	}
	r->mmap_ns = t1 - t0;
	if (registers(spec, job->index)) {
		uffd = fb_uffd_start(spec, addr, spec->size, job->bf->unit, deadline_at, r);
		if (!uffd)
			goto unmap;
	} else {
		snprintf(r->uffd_reason, FB_TEXT, "%s", spec->uffd == FB_UFFD_NONE ?
			 "not registered with userfaultfd" :
			 "this mapper is not registered with userfaultfd");
	}
	if (job->bf->fd < 0)
		snprintf(r->resident_reason, FB_TEXT, "anonymous memory has no page cache");
	else if (spec->cache != FB_COLD)
		/* mincore walks the page cache and would warm the CPU caches the faults use */
		snprintf(r->resident_reason, FB_TEXT, "measured for cold caches only (%s)",
			 spec->cache == FB_WARM ? "warm: every page populated" :
			 "hole: nothing populated");
	else
		r->resident_before_pages = fb_resident_pages(addr, spec->size, r->page_size);
	fb_counters_open(&counters, spec->perf, r);
	fb_counters_start(&counters);
	t0 = fb_now_ns();
	sum = fb_touch(addr, &plan, spec->write);
	t1 = fb_now_ns();
	fb_counters_stop(&counters, r);
	fb_sink = sum;
	fb_counters_close(&counters);
	r->touch_ns = t1 - t0;
	r->pages_touched = (int64_t)plan.count;
	if (uffd)
		fb_uffd_stop(uffd, r);
	r->pages_mapped = fb_pages_mapped(addr, spec->size, r->page_size);
unmap:
	t0 = fb_now_ns();
	munmap(addr, spec->size);
	r->munmap_ns = fb_now_ns() - t0;
	fb_plan_free(&plan);
}

static void *mapper_thread(void *arg)
{
	measure_mapper(arg);
	return NULL;
}

static void run_threads(struct mapper_job *jobs, int n, int concurrent)
{
	pthread_t threads[n];
	int started[n];

	for (int i = 0; i < n; i++) {
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
			measure_mapper(&jobs[i]);
	for (int i = 0; i < n; i++)
		if (started[i])
			pthread_join(threads[i], NULL);
}

/* Waits for a mapper process; kills and reports it when it overstays its deadline. */
static void reap(pid_t pid, int64_t kill_at, struct fb_result *r)
{
	struct timespec pause = { 0, REAP_POLL_NS };
	int status;

	for (;;) {
		pid_t got = waitpid(pid, &status, WNOHANG);

		if (got == pid)
			break;
		if (got < 0 && errno != EINTR) {
			fb_fail(r, FB_ERROR, "waitpid: %s", strerror(errno));
			return;
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
		fb_fail(r, FB_ERROR, "mapper process died: %s", strsignal(WTERMSIG(status)));
}

static void run_processes(struct mapper_job *jobs, int n, int concurrent, int64_t deadline_ns)
{
	pid_t pids[n], parent = getpid();

	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			/* a mapper must not outlive a killed parent (and its uffd server with it) */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			measure_mapper(&jobs[i]);
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
	snprintf(r->fs_type, sizeof(r->fs_type), "%s", fs_type);
}

int fb_run(const struct fb_spec *spec, struct fb_result *results)
{
	int64_t page_size = sysconf(_SC_PAGESIZE);
	int n = spec->mappers, forked = n > 1 && !spec->threads;
	struct fb_backing_file bf;
	struct fb_result *shared = results;
	pthread_barrier_t *barrier = NULL;
	size_t shared_len = 0;

	result_init(&results[0], page_size, "");
	if (n < 1 || spec->size == 0 || spec->size % (uint64_t)page_size) {
		fb_fail(&results[0], FB_ERROR, "size must be a positive multiple of %lld bytes",
			(long long)page_size);
		return -1;
	}
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
	{
		struct mapper_job jobs[n];
		pthread_barrierattr_t attr;

		for (int i = 0; i < n; i++) {
			result_init(&shared[i], page_size, bf.fs_type);
			jobs[i] = (struct mapper_job){ spec, &bf, &shared[i], i,
						       spec->concurrent && n > 1 ? barrier : NULL };
		}
		if (jobs[0].start) {
			pthread_barrierattr_init(&attr);
			pthread_barrierattr_setpshared(&attr, forked ? PTHREAD_PROCESS_SHARED :
						       PTHREAD_PROCESS_PRIVATE);
			pthread_barrier_init(barrier, &attr, (unsigned)n);
			pthread_barrierattr_destroy(&attr);
		}
		if (n == 1)
			measure_mapper(&jobs[0]);
		else if (spec->threads)
			run_threads(jobs, n, spec->concurrent);
		else
			run_processes(jobs, n, spec->concurrent, spec->deadline_ns);
		if (jobs[0].start)
			pthread_barrier_destroy(barrier);
	}
	if (shared != results) {
		memcpy(results, shared, n * sizeof(*results));
		munmap(shared, shared_len);
	}
	fb_backing_destroy(&bf);
	return 0;
}
