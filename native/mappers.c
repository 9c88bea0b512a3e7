/*
 * mappers: one sample's orchestration. The backing is set up once; each mapper (a process
 * or a new thread) measures it (measure.c), one after another or together from a barrier.
 * A single mapper runs in a new process or thread too, so that rows with one and with several
 * mappers time their first mapper in the same kind of context. Mapper processes are run
 * by mapper_process.c, and the memory they report in by mapper_block.c. A signal to fb_run
 * ends the sample early (interrupt.c).
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

int fb_mapper_skipped(struct fb_result *r)
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
		if (!concurrent && fb_mapper_skipped(jobs[i].result))
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

/* A mapper thread writes its result into the block; for a mapper process the parent keeps
 * what it finds itself (killed, not started) in results, and takes the rest from the block
 * after checking it (mapper_block.c). */
static void run_mappers(const struct fb_spec *spec, const struct fb_backing_file *bf,
			struct fb_mapper_block *block, int block_fd, struct fb_result *results)
{
	int n = spec->mappers, forked = !spec->threads, barrier_used = spec->concurrent && n > 1;
	struct fb_mapper_job jobs[n];
	pthread_barrierattr_t attr;

	block->barrier_used = barrier_used;
	for (int i = 0; i < n; i++)
		jobs[i] = (struct fb_mapper_job){ spec, bf,
						  forked ? &results[i] : &block->results[i], i,
						  barrier_used ? &block->barrier : NULL };
	if (barrier_used) {
		pthread_barrierattr_init(&attr);
		pthread_barrierattr_setpshared(&attr, forked ? PTHREAD_PROCESS_SHARED :
					       PTHREAD_PROCESS_PRIVATE);
		pthread_barrier_init(&block->barrier, &attr, (unsigned)n);
		pthread_barrierattr_destroy(&attr);
	}
	if (spec->threads)
		run_threads(jobs, n, spec->concurrent);
	else
		fb_run_processes(jobs, n, spec->concurrent, spec->deadline_ns, block, block_fd);
	/* only a threads' barrier: mapper processes may have scribbled on theirs, and destroy
	 * would wait for waiters that died with their processes */
	if (barrier_used && !forked)
		pthread_barrier_destroy(&block->barrier);
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
	block = fb_block_create(spec, &bf, page_size, &block_fd, &results[0]);
	if (!block) {
		fb_backing_destroy(&bf);
		return -1;
	}
	for (int i = 0; i < spec->mappers; i++)
		fb_result_init(&results[i], page_size, bf.fs_type);
	run_mappers(spec, &bf, block, block_fd, results);
	if (spec->threads)
		memcpy(results, block->results, spec->mappers * sizeof(*results));
	else
		fb_block_collect(block, spec, page_size, results);
	fb_block_destroy(block, spec, block_fd);
	fb_backing_destroy(&bf);
	return 0;
}

int fb_run(const struct fb_spec *spec, struct fb_result *results)
{
	int64_t page_size = sysconf(_SC_PAGESIZE);
	int rc;

	fb_result_init(&results[0], page_size, "");
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
