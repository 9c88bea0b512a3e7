/*
 * mapper_main: the mapper program. fb_run (mapper_process.c) forks a process per mapper
 * that execs this, so that the mapper faults in a small address space of its own rather than
 * a copy of its caller's. It measures one mapper of the sample described by the block fb_run
 * shares with it (struct fb_mapper_block) and writes the result there.
 *
 *   _mapper BLOCK_FD INDEX
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static long number(const char *text)
{
	char *end;
	long value = strtol(text, &end, 10);

	return *text && !*end && value >= 0 ? value : -1;
}

int main(int argc, char **argv)
{
	long fd = argc == 3 ? number(argv[1]) : -1, index = argc == 3 ? number(argv[2]) : -1;
	struct fb_mapper_block *block;
	struct stat st;

	if (fd < 0 || index < 0 || fstat((int)fd, &st) != 0 ||
	    (size_t)st.st_size < sizeof(*block)) {
		fprintf(stderr, "usage: %s BLOCK_FD INDEX (faultbench's fb_run runs it)\n", argv[0]);
		return 2;
	}
	block = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
	close((int)fd);
	if (block == MAP_FAILED || block->magic != FB_MAPPER_MAGIC ||
	    block->length != (uint64_t)st.st_size || index >= block->spec.mappers ||
	    block->length < sizeof(*block) + block->spec.mappers * sizeof(struct fb_result)) {
		fprintf(stderr, "%s: file descriptor %ld is not a mapper block\n", argv[0], fd);
		return 2;
	}
	/* fb_run's child blocked these until the handlers that release a mapper's faults are in
	 * place; one that arrived meanwhile is delivered now */
	fb_interrupt_begin();
	fb_interrupt_mask(SIG_UNBLOCK);
	/* fb_run started the slot as "did not report"; from here this mapper reports */
	block->results[index].status = FB_OK;
	block->results[index].error[0] = '\0';
	fb_measure_mapper(&(struct fb_mapper_job){ &block->spec, &block->bf,
						   &block->results[index], (int)index,
						   block->barrier_used ? &block->barrier : NULL });
	return 0;
}
