/*
 * mapper_block: the memory fb_run shares with its mapper processes (struct fb_mapper_block),
 * and the checks on what comes back from it. A mapper process is another program (the mapper
 * program, or whatever sits in its place) that can write anything into the block, so the
 * parent trusts nothing it reads there: each slot starts as an error that the mapper must
 * overwrite, and a result is taken only with a known status and counts within the sample's
 * spec. The parent maps and unmaps the block with the length it computed itself.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NOT_REPORTED "the mapper did not report"

void fb_result_init(struct fb_result *r, int64_t page_size, const char *fs_type)
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

static size_t block_length(int mappers)
{
	return sizeof(struct fb_mapper_block) + (size_t)mappers * sizeof(struct fb_result);
}

struct fb_mapper_block *fb_block_create(const struct fb_spec *spec,
					const struct fb_backing_file *bf, int64_t page_size,
					int *fd, struct fb_result *r)
{
	size_t length = block_length(spec->mappers);
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
	for (int i = 0; i < spec->mappers; i++) {
		fb_result_init(&block->results[i], page_size, bf->fs_type);
		if (!spec->threads)	/* a mapper process that exits without writing fails */
			fb_fail(&block->results[i], FB_ERROR, NOT_REPORTED);
	}
	return block;
}

void fb_block_destroy(struct fb_mapper_block *block, const struct fb_spec *spec, int fd)
{
	munmap(block, block_length(spec->mappers));
	close(fd);
}

/* NUL-terminates a text field the mapper may have filled to its end. */
#define TERMINATE(field) ((field)[sizeof(field) - 1] = '\0')

/* Why a mapper's result cannot be true of the spec it measured, or NULL. Counts are -1 when
 * not taken; an "ok" result has the loop's own counts. */
static const char *implausible(const struct fb_result *r, const struct fb_spec *spec,
			       int64_t page_size)
{
	const int64_t pages = (int64_t)(spec->size / (uint64_t)page_size);
	const int64_t counts[] = { r->touch_ns, r->faults_minor, r->faults_major,
		r->perf_page_faults, r->cycles, r->instructions, r->pages_mapped,
		r->resident_before_pages, r->mmap_ns, r->munmap_ns, r->uffd_events, r->uffd_ns,
		r->populate_ns, r->populate_faults, r->nivcsw, r->steal_ns, r->window_offset,
		r->mappings };

	if (r->status != FB_OK && r->status != FB_UNSUPPORTED && r->status != FB_ERROR)
		return "an unknown status";
	if (r->page_size != page_size)
		return "another page size";
	if (r->pages_touched < 0)
		return "a negative count";
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		if (counts[i] < -1)	/* -1: not taken */
			return "a negative count";
	if (r->pages_touched > pages || r->pages_mapped > pages ||
	    r->resident_before_pages > pages)
		return "more pages than the mapping has";
	if (r->window_offset >= (int64_t)fb_window_bytes(page_size))
		return "a mapping offset past its window";
	if (r->status == FB_OK && (r->pages_touched == 0 || r->touch_ns < 0 || r->mmap_ns < 0 ||
				   r->munmap_ns < 0 || r->faults_minor < 0 || r->faults_major < 0))
		return "success without the loop's own counts";
	return NULL;
}

void fb_block_collect(const struct fb_mapper_block *block, const struct fb_spec *spec,
		      int64_t page_size, struct fb_result *results)
{
	for (int i = 0; i < spec->mappers; i++) {
		struct fb_result *r = &results[i];
		const char *why;
		int status;
		long long touched;

		char fs_type[sizeof(r->fs_type)];

		if (r->status != FB_OK)	/* the parent's own finding (killed, not started) */
			continue;
		memcpy(fs_type, r->fs_type, sizeof(fs_type));	/* the parent's, from fb_run */
		*r = block->results[i];
		TERMINATE(r->error);
		TERMINATE(r->fs_type);
		TERMINATE(r->perf_reason);
		TERMINATE(r->hw_reason);
		TERMINATE(r->uffd_reason);
		TERMINATE(r->resident_reason);
		TERMINATE(r->mapped_reason);
		TERMINATE(r->steal_reason);
		TERMINATE(r->populate_reason);
		TERMINATE(r->profile_reason);
		r->registered = !!r->registered;
		why = implausible(r, spec, page_size);
		if (!why)
			continue;
		status = r->status;
		touched = (long long)r->pages_touched;
		fb_result_init(r, page_size, fs_type);
		fb_fail(r, FB_ERROR, "mapper %d reported %s (status %d, %lld pages touched): its "
			"result is not used", i, why, status, touched);
	}
}
