/*
 * counters: what the kernel says happened during the touch loop.
 * getrusage(RUSAGE_THREAD) and per-thread perf events both exclude the uffd server thread,
 * so the counts belong to the touching thread alone.
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

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_CHUNK 65536

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
	fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0 && reason[0] == '\0')
		snprintf(reason, FB_TEXT, "perf_event_open: %s%s", strerror(errno),
			 errno == ENOENT || errno == EOPNOTSUPP ?
			 " (event not supported by this CPU or hypervisor)" : "");
	return fd;
}

void fb_counters_open(struct fb_counters *c, int perf, struct fb_result *r)
{
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

static int64_t perf_value(int fd)
{
	uint64_t value;

	if (fd < 0 || read(fd, &value, sizeof(value)) != sizeof(value))
		return -1;
	return (int64_t)value;
}

void fb_counters_start(struct fb_counters *c)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	c->minflt = ru.ru_minflt;
	c->majflt = ru.ru_majflt;
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

	perf_control(c->sw_fd, PERF_EVENT_IOC_DISABLE);
	perf_control(c->cycles_fd, PERF_EVENT_IOC_DISABLE);
	perf_control(c->instructions_fd, PERF_EVENT_IOC_DISABLE);
	getrusage(RUSAGE_THREAD, &ru);
	r->faults_minor = ru.ru_minflt - c->minflt;
	r->faults_major = ru.ru_majflt - c->majflt;
	r->perf_page_faults = perf_value(c->sw_fd);
	r->cycles = perf_value(c->cycles_fd);
	r->instructions = perf_value(c->instructions_fd);
}

void fb_counters_close(struct fb_counters *c)
{
	if (c->sw_fd >= 0)
		close(c->sw_fd);
	if (c->cycles_fd >= 0)
		close(c->cycles_fd);
	if (c->instructions_fd >= 0)
		close(c->instructions_fd);
}

int64_t fb_pages_mapped(void *addr, uint64_t size, int64_t page_size)
{
	uint64_t first = (uint64_t)(uintptr_t)addr / (uint64_t)page_size;
	uint64_t pages = size / (uint64_t)page_size, done = 0;
	int64_t present = 0;
	uint64_t *entries;
	int fd;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	entries = malloc(PAGEMAP_CHUNK * sizeof(*entries));
	if (!entries) {
		close(fd);
		return -1;
	}
	while (done < pages) {
		uint64_t want = pages - done < PAGEMAP_CHUNK ? pages - done : PAGEMAP_CHUNK;
		ssize_t got = pread(fd, entries, want * sizeof(*entries),
				    (off_t)((first + done) * sizeof(*entries)));
		if (got != (ssize_t)(want * sizeof(*entries))) {
			present = -1;
			break;
		}
		for (uint64_t i = 0; i < want; i++)
			present += (entries[i] & PAGEMAP_PRESENT) != 0;
		done += want;
	}
	free(entries);
	close(fd);
	return present;
}
