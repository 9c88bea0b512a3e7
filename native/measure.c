/*
 * measure: one mapper's sample. It maps the backing, optionally registers it with
 * userfaultfd and makes it present (populate), and times its touch loop between two clock
 * reads with the kernel's counters around it; then what the loop left mapped, and teardown.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

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

static void note_residency(const struct fb_spec *spec, const struct fb_backing_file *bf,
			   char *addr, struct fb_result *r)
{
	if (bf->fd < 0)
		snprintf(r->resident_reason, FB_TEXT, "anonymous memory has no page cache");
	else if (spec->cache != FB_COLD)
		/* mincore walks the page cache and would warm the CPU caches the faults use */
		snprintf(r->resident_reason, FB_TEXT, "measured for cold caches only (%s)",
			 spec->cache == FB_HOLE ? "hole: nothing populated" :
			 "warm or hot: every page populated");
	else
		r->resident_before_pages = fb_resident_pages(addr, spec->size, r->page_size);
}

/* The ideal prefault: the whole range made present in one call, before the loop. */
static int populate_by_madvise(const struct fb_spec *spec, char *addr, struct fb_result *r)
{
	int advice = spec->write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
	int64_t faults = fb_thread_faults(), t0 = fb_now_ns(), t1;
	int rc = madvise(addr, spec->size, advice);

	t1 = fb_now_ns();
	if (rc != 0) {
		fb_fail(r, errno == EINVAL ? FB_UNSUPPORTED : FB_ERROR, "%s: %s%s",
			spec->write ? "MADV_POPULATE_WRITE" : "MADV_POPULATE_READ", strerror(errno),
			errno == EINVAL ? " (needs Linux >= 5.14)" : "");
		return -1;
	}
	r->populate_ns = t1 - t0;
	r->populate_faults = fb_thread_faults() - faults;
	return 0;
}

void fb_measure_mapper(const struct fb_mapper_job *job)
{
	const struct fb_spec *spec = job->spec;
	struct fb_result *r = job->result;
	struct fb_counters counters;
	struct fb_profiler profiler;
	struct fb_uffd *uffd = NULL;
	struct fb_plan plan;
	int64_t t0, t1, deadline_at, faults = 0, ticks;
	char *addr;

	fb_profile_open(&profiler, spec, r);
	if (job->start)
		pthread_barrier_wait(job->start);
	deadline_at = fb_now_ns() + spec->deadline_ns;
	if (fb_plan_build(spec, r->page_size, &plan) != 0) {
		fb_fail(r, FB_ERROR, "cannot build the access plan: out of memory");
		fb_profile_close(&profiler);
		return;
	}
	if (spec->populate == FB_POPULATE_MAP)
		faults = fb_thread_faults();
	addr = fb_map(spec, job->bf, spec->populate == FB_POPULATE_MAP ? MAP_POPULATE : 0,
		      &r->mmap_ns);
	if (addr == MAP_FAILED) {
		fb_fail(r, FB_ERROR, "mmap at offset %llu of a %llu-byte window: %s",
			(unsigned long long)spec->map_offset,
			(unsigned long long)fb_window_bytes(r->page_size), strerror(errno));
		r->mmap_ns = -1;
		fb_plan_free(&plan);
		fb_profile_close(&profiler);
		return;
	}
	r->window_offset = (int64_t)((uintptr_t)addr % fb_window_bytes(r->page_size));
	if (spec->populate == FB_POPULATE_MAP) {
		r->populate_ns = r->mmap_ns;
		r->populate_faults = fb_thread_faults() - faults;
	} else if (spec->populate == FB_POPULATE_NONE) {
		snprintf(r->populate_reason, FB_TEXT, "no populate step (populate none)");
	}
	if (registers(spec, job->index)) {
		uffd = fb_uffd_start(spec, addr, spec->size, job->bf->unit, deadline_at, r);
		if (!uffd)
			goto unmap;
		r->registered = 1;
	} else {
		snprintf(r->uffd_reason, FB_TEXT, "%s", spec->uffd == FB_UFFD_NONE ?
			 "not registered with userfaultfd" :
			 "this mapper is not registered with userfaultfd");
	}
	if (spec->vmas && !spec->threads &&
	    fb_pad_mappings(spec->vmas, r->page_size, r) != 0)
		goto stop;
	r->mappings = fb_mappings();	/* the uffd server's stack included */
	note_residency(spec, job->bf, addr, r);
	/* after registration, as a prefaulting program would: uffd faults are served */
	if (spec->populate == FB_POPULATE_MADVISE && populate_by_madvise(spec, addr, r) != 0)
		goto stop;
	if (fb_run_alone(spec, r) != 0)
		goto stop;
	fb_counters_open(&counters, spec->perf, r);
	/* right after a tick, so that where the next one falls is the same in every sample;
	 * before the counters: a task woken by the tick may preempt us here. The tick count is
	 * read outside the counters: reading /proc/interrupts faults (its buffers) */
	fb_tick_wait();
	ticks = fb_ticks(r->ticks_reason);
	fb_counters_start(&counters);
	fb_profile_enable(&profiler, 1);
	t0 = fb_now_ns();
	fb_touch(addr, &plan, spec->write);
	t1 = fb_now_ns();
	fb_profile_enable(&profiler, 0);
	fb_counters_stop(&counters, r);
	if (ticks >= 0)
		r->ticks = fb_ticks(r->ticks_reason) - ticks;
	fb_profile_flush(&profiler, spec, job->index, 0, r);
	fb_counters_close(&counters);
	r->touch_ns = t1 - t0;
	r->pages_touched = (int64_t)plan.count;
stop:
	if (uffd)
		fb_uffd_stop(uffd, r);
	if (spec->pagemap) {
		r->pages_mapped = fb_pages_mapped(addr, spec->size, r->page_size, r->mapped_reason);
		r->folios_read = fb_folio_orders(addr, spec->size, r->folio_pages,
						 r->folio_reason) == 0;
	} else {
		snprintf(r->mapped_reason, FB_TEXT,
			 "not walked (pagemap off): munmap_ns timed straight after the loop");
		snprintf(r->folio_reason, FB_TEXT, "%s", r->mapped_reason);
	}
unmap:
	fb_profile_enable(&profiler, 1);
	t0 = fb_now_ns();
	munmap(addr, spec->size);
	t1 = fb_now_ns();
	fb_run_shared(spec);
	fb_profile_enable(&profiler, 0);
	r->munmap_ns = t1 - t0;
	fb_profile_flush(&profiler, spec, job->index, 1, r);
	fb_profile_close(&profiler);
	fb_plan_free(&plan);
	if (fb_interrupted())	/* the loop shared its time with a signal handler at least */
		fb_fail(r, FB_ERROR, "interrupted by %s", fb_signal_name(fb_interrupted()));
}
