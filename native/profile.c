/*
 * profile: where the touching thread's time goes, sampled by the kernel.
 *
 * A cpu-clock software event on the calling thread samples its instruction pointer and
 * kernel call chain every spec->profile_period_ns of its CPU time (under QEMU's instruction
 * clock, of its instructions). The event is enabled only around the timed loop and,
 * separately, around munmap; its ring buffer is read after each, outside the timed region,
 * and copied raw to the profile fd for the measurement plane to resolve against
 * /proc/kallsyms. Software events need no PMU, so this works in TCG guests too.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* 2^n data pages: ~40 bytes + 8 per frame a sample, so some 6,000 samples of depth 16 */
#define FB_PROFILE_RING_PAGES 256
/* frames past the fault path's phases (entry, handle_mm_fault, ...) only cost space */
#define FB_PROFILE_MAX_STACK 32

static int profile_open(uint64_t period_ns, int with_lost)
{
	struct perf_event_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_CPU_CLOCK;
	attr.sample_period = period_ns;
	attr.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_CALLCHAIN;
	attr.read_format = with_lost ? PERF_FORMAT_LOST : 0;
	attr.disabled = 1;
	attr.exclude_hv = 1;
	/* the user side is the touch loop itself: its IP says so, its stack adds nothing */
	attr.exclude_callchain_user = 1;
	attr.sample_max_stack = FB_PROFILE_MAX_STACK;
	return (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

static void profiler_open(struct fb_profiler *p, uint64_t period_ns, char *reason)
{
	long page = sysconf(_SC_PAGESIZE);

	p->ring = MAP_FAILED;
	p->ring_len = (size_t)page * (FB_PROFILE_RING_PAGES + 1);
	p->lost_known = 1;
	p->lost_before = 0;
	p->fd = profile_open(period_ns, 1);
	if (p->fd < 0 && errno == EINVAL) {	/* PERF_FORMAT_LOST is Linux >= 6.0 */
		p->lost_known = 0;
		p->fd = profile_open(period_ns, 0);
	}
	if (p->fd < 0) {
		snprintf(reason, FB_TEXT, "perf_event_open(cpu-clock sampling): %s%s",
			 strerror(errno), errno == EACCES || errno == EPERM ?
			 " (needs root or kernel.perf_event_paranoid <= 1)" :
			 errno == ENOENT || errno == ENOSYS ? " (kernel without perf events)" : "");
		return;
	}
	p->ring = mmap(NULL, p->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
	if (p->ring == MAP_FAILED) {
		snprintf(reason, FB_TEXT, "mmap of the perf ring buffer: %s", strerror(errno));
		close(p->fd);
		p->fd = -1;
	}
}

void fb_profile_open(struct fb_profiler *p, const struct fb_spec *spec, struct fb_result *r)
{
	p->fd = -1;
	p->ring = MAP_FAILED;
	if (spec->profile_fd >= 0)
		profiler_open(p, spec->profile_period_ns, r->profile_reason);
}

int fb_profile_probe(uint64_t period_ns, char *reason)
{
	struct fb_profiler p;

	reason[0] = '\0';
	profiler_open(&p, period_ns, reason);
	fb_profile_close(&p);
	return reason[0] ? -1 : 0;
}

void fb_profile_enable(struct fb_profiler *p, int on)
{
	if (p->fd >= 0)
		ioctl(p->fd, on ? PERF_EVENT_IOC_ENABLE : PERF_EVENT_IOC_DISABLE, 0);
}

/* Copies the records the ring holds into one block on the profile fd, and frees the ring.
 * Block: FB_PROFILE_MAGIC, mapper, part, samples lost (-1 unknown), record bytes; then the
 * records. One writev per block on an O_APPEND fd: concurrent mappers cannot interleave. */
void fb_profile_flush(struct fb_profiler *p, const struct fb_spec *spec, int mapper, int part,
		      struct fb_result *r)
{
	struct perf_event_mmap_page *meta = p->ring;
	uint64_t head, tail, size, data_size, lost[2] = { 0, 0 }, header[5];
	uint64_t lost_here;
	unsigned char *data, *copy;
	struct iovec iov[2];

	if (p->fd < 0)
		return;
	data = (unsigned char *)p->ring + meta->data_offset;
	data_size = meta->data_size;
	head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
	tail = meta->data_tail;
	size = head - tail;
	copy = malloc(size ? size : 1);
	if (!copy) {
		snprintf(r->profile_reason, FB_TEXT, "out of memory copying the profile");
		return;
	}
	for (uint64_t i = 0; i < size; i++)	/* the ring wraps; records may straddle its end */
		copy[i] = data[(tail + i) % data_size];
	__atomic_store_n(&meta->data_tail, head, __ATOMIC_RELEASE);
	/* PERF_FORMAT_LOST: samples the full ring had no room for (the count is cumulative) */
	if (p->lost_known && read(p->fd, lost, sizeof(lost)) != sizeof(lost))
		p->lost_known = 0;
	lost_here = lost[1] - p->lost_before;
	p->lost_before = lost[1];
	header[0] = FB_PROFILE_MAGIC;
	header[1] = (uint64_t)mapper;
	header[2] = (uint64_t)part;
	header[3] = p->lost_known ? lost_here : UINT64_MAX;
	header[4] = size;
	iov[0] = (struct iovec){ header, sizeof(header) };
	iov[1] = (struct iovec){ copy, size };
	if (writev(spec->profile_fd, iov, 2) != (ssize_t)(sizeof(header) + size))
		snprintf(r->profile_reason, FB_TEXT, "writing the profile: %s", strerror(errno));
	free(copy);
}

void fb_profile_close(struct fb_profiler *p)
{
	if (p->ring != MAP_FAILED)
		munmap(p->ring, p->ring_len);
	if (p->fd >= 0)
		close(p->fd);
}
