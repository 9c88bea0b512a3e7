/*
 * tick: the timer tick against the timed loop. On the instruction clock a 16 MiB loop runs
 * about 2.4 ms of virtual time against a 4 ms tick (HZ=250), so whether a tick (about 10,000
 * instructions) lands inside it depended on the phase the loop started at: one row showed
 * two values 0.4% apart from sample to sample and from boot to boot (docs/icount.md). Each
 * loop therefore starts right after a tick, and the ticks inside it are counted.
 *
 * On that clock every instruction the CPU runs is time, another task's too: a task the tick
 * wakes (mostly rcu_preempt, RCU's grace-period thread) preempted a 0.8 ms loop in two
 * samples of three and added 9,000 to 16,000 instructions, more often when the host was
 * busy (docs/icount.md). With spec->run_alone the mapper runs SCHED_FIFO from the tick wait
 * to its munmap, so no normal task runs in between; interrupts still come.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* longer than any tick period (HZ >= 100) with room for a busy host */
#define TICK_WAIT_NS 100000000LL

/* The coarse clock is advanced by the tick's timekeeping update, and reading it through the
 * vDSO enters no kernel code: its first change is the tick. */
static int64_t coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int fb_tick_wait(void)
{
	int64_t start = coarse_ns(), give_up = fb_now_ns() + TICK_WAIT_NS;

	while (coarse_ns() == start)
		if (fb_now_ns() > give_up)
			return -1;
	return 0;
}

/* The LOC line ("Local timer interrupts") of /proc/interrupts, x86's per-CPU timer */
int64_t fb_ticks(char *reason)
{
	FILE *f = fopen("/proc/interrupts", "re");
	char *line = NULL;
	size_t cap = 0;
	int64_t sum = -1;

	if (!f) {
		snprintf(reason, FB_TEXT, "/proc/interrupts: %s", strerror(errno));
		return -1;
	}
	while (sum < 0 && getline(&line, &cap, f) > 0) {
		char *p = line, *end;

		while (*p == ' ')
			p++;
		if (strncmp(p, "LOC:", 4) != 0)
			continue;
		sum = 0;
		for (p += 4;; p = end) {
			long long value = strtoll(p, &end, 10);

			if (end == p || value < 0)
				break;
			sum += value;
		}
	}
	free(line);
	fclose(f);
	if (sum < 0)
		snprintf(reason, FB_TEXT, "/proc/interrupts has no LOC (local timer) line here");
	return sum;
}

int fb_run_alone(const struct fb_spec *spec, struct fb_result *r)
{
	struct sched_param fifo = { .sched_priority = 1 };

	if (!spec->run_alone || sched_setscheduler(0, SCHED_FIFO, &fifo) == 0)
		return 0;
	fb_fail(r, FB_ERROR, "cannot run the loop SCHED_FIFO, with no task beside it: %s",
		strerror(errno));
	return -1;
}

void fb_run_shared(const struct fb_spec *spec)
{
	struct sched_param normal = { .sched_priority = 0 };

	if (spec->run_alone)
		sched_setscheduler(0, SCHED_OTHER, &normal);
}
