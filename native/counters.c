/*
 * counters: what the kernel says happened during the touch loop.
 * getrusage(RUSAGE_THREAD) and per-thread perf events both exclude the uffd server thread,
 * so the counts belong to the touching thread alone. Interference is counted too:
 * involuntary context switches of the touching thread (preempted by another task) and steal
 * time (the hypervisor ran someone else on our vCPU), read around the loop, never inside it.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* the aggregate line's 8th value; older kernels lack it */
#define STEAL_FIELD 8

void fb_fail(struct fb_result *r, int status, const char *fmt, ...)
{
	va_list ap;

	if (r->status != FB_OK)
		return;	/* the first failure is the cause; later ones are consequences */
	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

int64_t fb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int perf_open(uint32_t type, uint64_t config, char *reason)
{
	struct perf_event_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = type;
	attr.config = config;
	attr.disabled = 1;
	attr.exclude_hv = 1;
	/* hardware counters may be multiplexed: scale by the time the event really ran */
	attr.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
	fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0 && reason[0] == '\0')
		snprintf(reason, FB_TEXT, "perf_event_open: %s%s", strerror(errno),
			 errno == ENOENT || errno == EOPNOTSUPP ?
			 " (event not supported by this CPU or hypervisor)" : "");
	return fd;
}

/* Steal time of all CPUs in USER_HZ ticks: the thread may migrate, and the aggregate line
 * cannot miss steal from a CPU it ran on (it may include steal it did not suffer). */
static int64_t steal_ticks(int fd)
{
	char line[512];
	ssize_t got = pread(fd, line, sizeof(line) - 1, 0);
	long long value = -1;
	char *p = line;

	if (got <= 0)
		return -1;
	line[got] = '\0';
	if (strncmp(line, "cpu ", 4) != 0)
		return -1;
	p += 4;
	for (int field = 1; field <= STEAL_FIELD; field++) {
		char *end;

		value = strtoll(p, &end, 10);
		if (end == p || value < 0)
			return -1;
		p = end;
	}
	return value;
}

void fb_counters_open(struct fb_counters *c, int perf, struct fb_result *r)
{
	c->stat_fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
	if (c->stat_fd < 0)
		snprintf(r->steal_reason, FB_TEXT, "/proc/stat: %s", strerror(errno));
	else if (steal_ticks(c->stat_fd) < 0)
		snprintf(r->steal_reason, FB_TEXT, "/proc/stat has no steal column here");
	if (!perf) {
		/* an active page-fault event adds a few percent to every fault it counts */
		c->sw_fd = c->cycles_fd = c->instructions_fd = -1;
		snprintf(r->perf_reason, FB_TEXT, "perf counters off (they slow each fault by a "
			 "few percent); ask for them with --perf");
		snprintf(r->hw_reason, FB_TEXT, "%s", r->perf_reason);
		return;
	}
	c->sw_fd = perf_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS, r->perf_reason);
	c->cycles_fd = perf_open(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, r->hw_reason);
	c->instructions_fd = perf_open(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS,
				       r->hw_reason);
}

static void perf_control(int fd, unsigned long request)
{
	if (fd >= 0)
		ioctl(fd, request, 0);
}

/* The count, scaled to the whole window if the event was multiplexed (hardware counters)
 * or -1 with the reason when it is not exact (software) or never ran. */
static int64_t perf_value(int fd, int scale, char *reason)
{
	uint64_t value[3];	/* count, time enabled, time running */

	if (fd < 0)
		return -1;
	if (read(fd, value, sizeof(value)) != sizeof(value)) {
		snprintf(reason, FB_TEXT, "reading the perf event: %s", strerror(errno));
		return -1;
	}
	if (value[2] == value[1])
		return (int64_t)value[0];
	if (value[2] == 0) {
		snprintf(reason, FB_TEXT, "multiplexed: the event never ran in the window");
		return -1;
	}
	if (!scale) {
		snprintf(reason, FB_TEXT, "multiplexed: ran %llu of %llu ns, not an exact count",
			 (unsigned long long)value[2], (unsigned long long)value[1]);
		return -1;
	}
	return (int64_t)((double)value[0] * (double)value[1] / (double)value[2]);
}

int64_t fb_thread_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

void fb_counters_start(struct fb_counters *c)
{
	struct rusage ru;

	c->steal_ticks = c->stat_fd >= 0 ? steal_ticks(c->stat_fd) : -1;
	getrusage(RUSAGE_THREAD, &ru);
	c->minflt = ru.ru_minflt;
	c->majflt = ru.ru_majflt;
	c->nivcsw = ru.ru_nivcsw;
	perf_control(c->sw_fd, PERF_EVENT_IOC_RESET);
	perf_control(c->cycles_fd, PERF_EVENT_IOC_RESET);
	perf_control(c->instructions_fd, PERF_EVENT_IOC_RESET);
	perf_control(c->sw_fd, PERF_EVENT_IOC_ENABLE);
	perf_control(c->cycles_fd, PERF_EVENT_IOC_ENABLE);
	perf_control(c->instructions_fd, PERF_EVENT_IOC_ENABLE);
}

void fb_counters_stop(struct fb_counters *c, struct fb_result *r)
{
	struct rusage ru;
	int64_t steal;

	perf_control(c->sw_fd, PERF_EVENT_IOC_DISABLE);
	perf_control(c->cycles_fd, PERF_EVENT_IOC_DISABLE);
	perf_control(c->instructions_fd, PERF_EVENT_IOC_DISABLE);
	getrusage(RUSAGE_THREAD, &ru);
	steal = c->steal_ticks >= 0 ? steal_ticks(c->stat_fd) : -1;
	r->faults_minor = ru.ru_minflt - c->minflt;
	r->faults_major = ru.ru_majflt - c->majflt;
	r->nivcsw = ru.ru_nivcsw - c->nivcsw;
	if (steal >= c->steal_ticks && c->steal_ticks >= 0)
		r->steal_ns = (steal - c->steal_ticks) * (1000000000 / sysconf(_SC_CLK_TCK));
	else if (c->stat_fd >= 0 && r->steal_reason[0] == '\0')
		snprintf(r->steal_reason, FB_TEXT, "/proc/stat could not be read around the loop");
	r->perf_page_faults = perf_value(c->sw_fd, 0, r->perf_reason);
	r->cycles = perf_value(c->cycles_fd, 1, r->hw_reason);
	r->instructions = perf_value(c->instructions_fd, 1, r->hw_reason);
}

void fb_counters_close(struct fb_counters *c)
{
	if (c->stat_fd >= 0)
		close(c->stat_fd);
	if (c->sw_fd >= 0)
		close(c->sw_fd);
	if (c->cycles_fd >= 0)
		close(c->cycles_fd);
	if (c->instructions_fd >= 0)
		close(c->instructions_fd);
}
