/*
 * mappers: one sample's orchestration. The backing is set up once; each mapper (a process
 * or a new thread) measures it (measure.c), one after another or together from a barrier.
 * A single mapper runs in a new process or thread too, so that rows with one and with several
 * mappers time their first mapper in the same kind of context. A mapper process is forked
 * and execs the mapper program (mapper_main.c): a forked copy of the caller would fault in
 * the caller's address space, and a Python caller's has 90-165 mappings that every fault's
 * VMA lookup walks past (issue 23: +57 instructions a fault on 6.1 above ~130). Every mapper
 * is waited for, and killed if it overstays its deadline; a signal to fb_run ends the sample
 * early (interrupt.c).
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILL_GRACE_NS 2000000000LL
#define REAP_POLL_NS 1000000L
#define REAP_WAKE_MS 1000
#define EXEC_FAILED 127	/* the mapper process's status when it could not exec */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434	/* the same number on every architecture */
#endif

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

/* Sleeps until the mapper exits, a signal arrives or kill_at, whichever is first. The
 * parent must not wake while the mapper's loop is timed: on one CPU (a guest, or a busy
 * host) its wake-ups run inside the mapper's timed window (1 ms polling added ~1% of a warm
 * memfd read's instructions, and sample-to-sample spread). A pidfd wakes it only at the
 * exit; without one (Linux < 5.3) it polls. */
static void await_exit(int pidfd, int64_t kill_at)
{
	struct timespec pause = { 0, REAP_POLL_NS };
	struct pollfd exited = { pidfd, POLLIN, 0 };
	int64_t left_ms = (kill_at - fb_now_ns()) / 1000000 + 1;

	if (pidfd < 0) {
		nanosleep(&pause, NULL);
		return;
	}
	/* a signal ends poll (never restarted); the cap bounds the wait for one that another
	 * thread of the process took */
	poll(&exited, 1, left_ms > REAP_WAKE_MS ? REAP_WAKE_MS : left_ms < 0 ? 0 : (int)left_ms);
}

/* Waits for a mapper process; passes a signal fb_run received on to it, and kills it when
 * it overstays its deadline (or the grace after the signal). */
static void reap(pid_t pid, int64_t kill_at, struct fb_result *r)
{
	int status, forwarded = 0, pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	for (;;) {
		pid_t got = waitpid(pid, &status, WNOHANG);

		if (got == pid)
			break;
		if (got < 0 && errno != EINTR) {
			fb_fail(r, FB_ERROR, "waitpid: %s", strerror(errno));
			break;
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
			break;
		}
		await_exit(pidfd, kill_at);
	}
	if (pidfd >= 0)
		close(pidfd);
	if (r->status != FB_OK)
		return;
	if (WIFSIGNALED(status))
		fb_fail(r, FB_ERROR, "mapper process died: %s (signal %d)",
			strsignal(WTERMSIG(status)), WTERMSIG(status));
	else if (WEXITSTATUS(status) == EXEC_FAILED)
		fb_fail(r, FB_ERROR, "mapper process could not exec the mapper program");
	else if (WEXITSTATUS(status) != 0)
		fb_fail(r, FB_ERROR, "mapper process exited with status %d", WEXITSTATUS(status));
}

/* In the forked child: only async-signal-safe calls until exec. The three descriptors the
 * mapper uses stay open across it; SIGINT, SIGTERM and SIGHUP stay blocked (pending, not
 * lost) until the mapper program has its handlers, which release its faults (interrupt.c).
 * The environment is empty and address-space randomization off: the mapper's layout does not
 * depend on the caller's, nor change from sample to sample. (Where a mapping lands decides
 * whether its first fault must allocate a page table above the PTE level: with randomization,
 * a 16 MiB sparse read moved by 4% between samples on the instruction clock.) */
static void exec_mapper(const struct fb_mapper_block *block, int block_fd, char *const argv[])
{
	static char *const no_environment[] = { NULL };
	const int inherited[] = { block_fd, block->bf.fd, block->spec.profile_fd };

	for (size_t i = 0; i < sizeof(inherited) / sizeof(inherited[0]); i++)
		if (inherited[i] >= 0 && fcntl(inherited[i], F_SETFD, 0) != 0)
			_exit(EXEC_FAILED);
	fb_interrupt_mask(SIG_BLOCK);
	personality((unsigned long)personality(0xffffffff) | ADDR_NO_RANDOMIZE);
	execve(argv[0], argv, no_environment);
	_exit(EXEC_FAILED);
}

static void run_processes(struct fb_mapper_job *jobs, int n, int concurrent, int64_t deadline_ns,
			  const struct fb_mapper_block *block, int block_fd)
{
	pid_t pids[n], parent = getpid();
	char fd_arg[16], index_args[n][16];

	snprintf(fd_arg, sizeof(fd_arg), "%d", block_fd);
	for (int i = 0; i < n; i++) {
		char *argv[] = { (char *)jobs[i].spec->mapper_program, fd_arg, index_args[i], NULL };

		snprintf(index_args[i], sizeof(index_args[i]), "%d", i);
		pids[i] = 0;
		if (!concurrent && skipped(jobs[i].result))
			continue;
		pids[i] = fork();
		if (pids[i] == 0) {
			/* a mapper must not outlive a killed parent (and its uffd server with it);
			 * this survives exec */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			exec_mapper(block, block_fd, argv);
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
	r->mappings = r->ticks = -1;
	snprintf(r->fs_type, sizeof(r->fs_type), "%s", fs_type);
}

static void run_mappers(const struct fb_spec *spec, const struct fb_backing_file *bf,
			struct fb_mapper_block *block, int block_fd)
{
	int n = spec->mappers, forked = !spec->threads;
	struct fb_mapper_job jobs[n];
	pthread_barrierattr_t attr;

	block->barrier_used = spec->concurrent && n > 1;
	for (int i = 0; i < n; i++)
		jobs[i] = (struct fb_mapper_job){ spec, bf, &block->results[i], i,
						  block->barrier_used ? &block->barrier : NULL };
	if (block->barrier_used) {
		pthread_barrierattr_init(&attr);
		pthread_barrierattr_setpshared(&attr, forked ? PTHREAD_PROCESS_SHARED :
					       PTHREAD_PROCESS_PRIVATE);
		pthread_barrier_init(&block->barrier, &attr, (unsigned)n);
		pthread_barrierattr_destroy(&attr);
	}
	if (spec->threads)
		run_threads(jobs, n, spec->concurrent);
	else
		run_processes(jobs, n, spec->concurrent, spec->deadline_ns, block, block_fd);
	if (block->barrier_used)
		pthread_barrier_destroy(&block->barrier);
}

/* The memory every mapper writes its result to, which a mapper process maps after exec. */
static struct fb_mapper_block *block_create(const struct fb_spec *spec,
					    const struct fb_backing_file *bf, int64_t page_size,
					    int *fd, struct fb_result *r)
{
	size_t length = sizeof(struct fb_mapper_block) + spec->mappers * sizeof(struct fb_result);
	struct fb_mapper_block *block = MAP_FAILED;

	*fd = memfd_create("faultbench-mappers", MFD_CLOEXEC);
	if (*fd >= 0 && ftruncate(*fd, (off_t)length) == 0)
		block = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (block == MAP_FAILED) {
		fb_fail(r, FB_ERROR, "memory for the mappers' results: %s", strerror(errno));
		if (*fd >= 0)
			close(*fd);
		return NULL;
	}
	block->magic = FB_MAPPER_MAGIC;
	block->length = length;
	block->spec = *spec;
	block->spec.dir = block->spec.mapper_program = NULL;
	block->bf = *bf;
	for (int i = 0; i < spec->mappers; i++)
		result_init(&block->results[i], page_size, bf->fs_type);
	return block;
}

static int run(const struct fb_spec *spec, struct fb_result *results, int64_t page_size)
{
	struct fb_backing_file bf;
	struct fb_mapper_block *block;
	int block_fd;

	if (!spec->threads && (!spec->mapper_program || access(spec->mapper_program, X_OK) != 0)) {
		fb_fail(&results[0], FB_ERROR, "cannot run the mapper program %s: %s (reinstall "
			"faultbench)", spec->mapper_program ? spec->mapper_program : "(none given)",
			spec->mapper_program ? strerror(errno) : "no path");
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
	block = block_create(spec, &bf, page_size, &block_fd, &results[0]);
	if (!block) {
		fb_backing_destroy(&bf);
		return -1;
	}
	run_mappers(spec, &bf, block, block_fd);
	memcpy(results, block->results, spec->mappers * sizeof(*results));
	munmap(block, block->length);
	close(block_fd);
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
