/*
 * launch: one app launch in a fresh process, for measuring fault-around under memory
 * pressure. The child maps the app's files privately and read-only (as a program maps its
 * code and resources), reads a seeded sparse subset of their pages, reports through a shared
 * page, and then waits to be killed: a cached app whose page tables stay alive while the
 * next apps launch, which is when reclaim meets the PTEs fault-around installed.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FILES 64

static void launch_fail(struct fb_launch_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void launch_fail(struct fb_launch_result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->status != FB_OK)
		return;	/* the first failure is the cause */
	r->status = FB_ERROR;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

/* splitmix64: the same (seed, file, page) always decides the same way, on every launch */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* the launched app: everything here runs in the child and ends in pause() or _exit() */
static void run_app(const struct fb_launch_spec *s, struct fb_launch_result *r, int report)
{
	int64_t page = sysconf(_SC_PAGESIZE), t0, t1, mapped = 0, touched = 0;
	uint64_t pages = s->file_size / (uint64_t)page;
	char *maps[MAX_FILES];
	struct rusage before, after;
	volatile uint8_t sink = 0;
	char *heap;
	int fd;

	/* the app, not the worker measuring it, is what the OOM killer should take */
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1000", 4) != 4)
			(void)0;	/* a kernel without it still measures the same launch */
		close(fd);
	}
	if (s->anon_size) {
		heap = mmap(NULL, s->anon_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (heap == MAP_FAILED) {
			launch_fail(r, "heap mmap: %s", strerror(errno));
			_exit(1);
		}
		for (uint64_t off = 0; off < s->anon_size; off += (uint64_t)page)
			heap[off] = 1;
	}
	/* Accesses that fault for reasons of their own happen before the counted window: the
	 * result page is shared with the parent and not yet in our page table, every stack page
	 * the window writes is copy-on-write since fork (a clock read warms the depth the window's
	 * clock reads use), */
	r->pages_touched = 0;
	memset(maps, 0, sizeof(maps));
	memset(&after, 0, sizeof(after));
	sink = 0;
	(void)fb_now_ns();
	/* and libc's mmap, whose text, like all file-backed text, fork did not copy */
	munmap(mmap(NULL, (size_t)page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
	       (size_t)page);
	getrusage(RUSAGE_SELF, &before);
	t0 = fb_now_ns();
	for (int f = 0; f < s->files; f++) {
		maps[f] = mmap(NULL, s->file_size, PROT_READ, MAP_PRIVATE, s->fds[f], 0);
		if (maps[f] == MAP_FAILED) {
			launch_fail(r, "mmap of file %d: %s", f, strerror(errno));
			_exit(1);
		}
		for (uint64_t p = 0; p < pages; p++) {
			if (mix(s->seed ^ mix(((uint64_t)f << 40) | p)) % s->one_in == 0) {
				sink ^= (uint8_t)maps[f][p * (uint64_t)page];
				touched++;
			}
		}
	}
	t1 = fb_now_ns();
	getrusage(RUSAGE_SELF, &after);
	r->launch_ns = t1 - t0;
	r->pages_touched = touched;
	r->faults_minor = after.ru_minflt - before.ru_minflt;
	r->faults_major = after.ru_majflt - before.ru_majflt;
	for (int f = 0; f < s->files && mapped >= 0; f++) {
		int64_t n = fb_pages_mapped(maps[f], s->file_size, page, r->mapped_reason);

		mapped = n < 0 ? -1 : mapped + n;
	}
	r->pages_mapped = mapped;
	/* the folios the launch's reads and fault-around brought in, summed over its files */
	r->folios_read = 1;
	for (int f = 0; f < s->files && r->folios_read; f++) {
		int64_t orders[FB_FOLIO_ORDERS];

		r->folios_read = fb_folio_orders(maps[f], s->file_size, orders,
						 r->folio_reason) == 0;
		for (int o = 0; o < FB_FOLIO_ORDERS; o++)
			r->folio_pages[o] += orders[o];
	}
	r->rss_pages = fb_process_resident_pages();
	(void)sink;
	if (write(report, "", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static int wait_report(int fd, int64_t deadline_ns)
{
	char byte;

	for (;;) {
		int64_t left = deadline_ns - fb_now_ns();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ready;

		if (left <= 0)
			return 0;
		ready = poll(&p, 1, (int)(left / 1000000 + 1));
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0)
			return -1;
		if (ready > 0)
			return read(fd, &byte, 1) == 1 ? 1 : -1;	/* 0 bytes: it died */
	}
}

int fb_launch(const struct fb_launch_spec *spec, struct fb_launch_result *result)
{
	struct fb_launch_result *shared;
	int pipefd[2], got, status;
	pid_t pid, parent = getpid();

	memset(result, 0, sizeof(*result));
	result->pid = -1;
	if (spec->files < 1 || spec->files > MAX_FILES || spec->one_in < 1) {
		launch_fail(result, "an app has 1 to %d files and reads one page in N >= 1",
			    MAX_FILES);
		return -1;
	}
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (shared == MAP_FAILED) {
		launch_fail(result, "result page: %s", strerror(errno));
		return -1;
	}
	memset(shared, 0, sizeof(*shared));
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		launch_fail(result, "pipe: %s", strerror(errno));
		munmap(shared, sizeof(*shared));
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		/* the worker killed with SIGKILL cannot end its apps; the kernel does */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		run_app(spec, shared, pipefd[1]);
	}
	close(pipefd[1]);
	if (pid < 0) {
		launch_fail(result, "fork: %s", strerror(errno));
		close(pipefd[0]);
		munmap(shared, sizeof(*shared));
		return -1;
	}
	got = wait_report(pipefd[0], spec->deadline_ns);
	close(pipefd[0]);
	*result = *shared;
	munmap(shared, sizeof(*shared));
	if (got == 1 && result->status == FB_OK) {
		result->pid = pid;
		return 0;
	}
	if (got == 0) {
		result->timed_out = 1;
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (result->status != FB_OK)
		return -1;	/* the child said why it gave up */
	if (got == 0) {
		launch_fail(result, "the launch missed its deadline; the app was killed");
	} else if (WIFSIGNALED(status)) {
		result->killed_by = WTERMSIG(status);
		launch_fail(result, "the app was killed during its launch (%s)",
			    strsignal(WTERMSIG(status)));
	} else {
		launch_fail(result, "the app ended during its launch without reporting");
	}
	return -1;
}

int fb_launch_end(int64_t pid)
{
	int status;
	pid_t done;

	if (pid <= 0)
		return -1;
	done = waitpid((pid_t)pid, &status, WNOHANG);
	if (done == 0) {
		kill((pid_t)pid, SIGKILL);
		while ((done = waitpid((pid_t)pid, &status, 0)) < 0 && errno == EINTR)
			;
		return done < 0 ? -1 : 0;
	}
	if (done < 0)
		return -1;
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}
