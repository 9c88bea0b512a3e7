/*
 * mapper_process: mapper processes. Each is forked and execs the mapper program
 * (mapper_main.c): a forked copy of the caller would fault in the caller's address space, and
 * a Python caller's has 90-165 mappings that every fault's VMA lookup walks past (issue 23:
 * +57 instructions a fault on 6.1 above ~130). Every mapper is waited for, and killed if it
 * overstays its deadline; a signal to fb_run is passed on to it.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
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

/* Sleeps until the mapper exits, a signal arrives or kill_at, whichever is first. The
 * parent must not wake while the mapper's loop is timed: on one CPU (a guest, or a busy
 * host) its wake-ups run inside the mapper's timed window (1 ms polling added ~1% of a warm
 * memfd read's instructions, and sample-to-sample spread). A pidfd wakes it only at the
 * exit; without one (Linux < 5.3) it polls. */
static void await_exit(int pidfd, int64_t kill_at, int alone)
{
	struct timespec pause = { 0, REAP_POLL_NS };
	struct pollfd exited = { pidfd, POLLIN, 0 };
	int64_t left_ms = (kill_at - fb_now_ns()) / 1000000 + 1;

	if (pidfd < 0) {
		nanosleep(&pause, NULL);
		return;
	}
	/* a signal ends poll (never restarted); the cap bounds the wait for one that another
	 * thread of the process took. Not for a loop run alone (an instruction-clock guest,
	 * whose worker has one thread): the wake-up's timer interrupt, once a second, landed
	 * in a 2.4 ms loop now and then and counted as a tick in it (10,000 instructions). */
	if (left_ms > REAP_WAKE_MS && !alone)
		left_ms = REAP_WAKE_MS;
	poll(&exited, 1, left_ms < 0 ? 0 : left_ms > INT_MAX ? INT_MAX : (int)left_ms);
}

/* Waits for a mapper process; passes a signal fb_run received on to it, and kills it when
 * it overstays its deadline (or the grace after the signal). */
static void reap(pid_t pid, int64_t kill_at, int alone, struct fb_result *r)
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
		await_exit(pidfd, kill_at, alone);
	}
	if (pidfd >= 0)
		close(pidfd);
	if (r->status != FB_OK)
		return;
	if (WIFSIGNALED(status))
		/* SIGBUS is the kernel's answer to a fault on a file page it cannot have */
		fb_fail(r, FB_ERROR, "mapper process died: %s (signal %d)%s",
			strsignal(WTERMSIG(status)), WTERMSIG(status),
			WTERMSIG(status) == SIGBUS ? ": a page of its file could not be had "
			"(its filesystem full, or the file cut short)" : "");
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

void fb_run_processes(struct fb_mapper_job *jobs, int n, int concurrent, int64_t deadline_ns,
		      const struct fb_mapper_block *block, int block_fd)
{
	pid_t pids[n], parent = getpid();
	char fd_arg[16], index_args[n][16];

	snprintf(fd_arg, sizeof(fd_arg), "%d", block_fd);
	for (int i = 0; i < n; i++) {
		char *argv[] = { (char *)jobs[i].spec->mapper_program, fd_arg, index_args[i], NULL };

		snprintf(index_args[i], sizeof(index_args[i]), "%d", i);
		pids[i] = 0;
		if (!concurrent && fb_mapper_skipped(jobs[i].result))
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
			reap(pids[i], fb_now_ns() + deadline_ns + KILL_GRACE_NS,
			     jobs[i].spec->run_alone, jobs[i].result);
	}
	if (concurrent) {
		int64_t kill_at = fb_now_ns() + deadline_ns + KILL_GRACE_NS;

		for (int i = 0; i < n; i++)
			if (pids[i] > 0)
				reap(pids[i], kill_at, jobs[i].spec->run_alone, jobs[i].result);
	}
}
