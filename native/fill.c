/*
 * fill: how the backing's pages enter the page cache before the measured mapping exists.
 * The way decides the folios the page cache holds them in (docs/large-folios.md): write(2)
 * sizes, fallocate, or a read(2) of a file that is all hole, where readahead sizes them.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define READ_CHUNK (1 << 20)

static int write_all(int fd, uint64_t size, uint64_t chunk_size)
{
	char *chunk = malloc(chunk_size);
	uint64_t done = 0;

	if (!chunk)
		return -1;
	memset(chunk, 0x5a, chunk_size);
	while (done < size) {
		size_t want = size - done < chunk_size ? (size_t)(size - done) : (size_t)chunk_size;
		ssize_t put = pwrite(fd, chunk, want, (off_t)done);

		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0) {
			free(chunk);
			return -1;
		}
		done += (uint64_t)put;
	}
	free(chunk);
	return 0;
}

/* read(2) of every byte: what is not in the page cache yet comes in as readahead sizes it */
static int read_all(int fd, uint64_t size)
{
	char *chunk = malloc(READ_CHUNK);
	uint64_t done = 0;

	if (!chunk)
		return -1;
	while (done < size) {
		ssize_t got = pread(fd, chunk, READ_CHUNK, (off_t)done);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			free(chunk);
			return got < 0 ? -1 : (errno = EIO, -1);
		}
		done += (uint64_t)got;
	}
	free(chunk);
	return 0;
}

/* hugetlbfs has no write(2): populate through a separate, short-lived mapping. */
static int fill_by_mapping(int fd, uint64_t size)
{
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -1;
	memset(p, 0x5a, size);
	munmap(p, size);
	return 0;
}

int fb_fill(const struct fb_spec *spec, int fd, uint64_t size)
{
	if (spec->backing == FB_HUGETLB)
		return fill_by_mapping(fd, size);
	switch (spec->fill) {
	case FB_FILL_FALLOCATE:
		/* blocks (disk) or pages (shmem) allocated, nothing written; the read brings a
		 * disk file's unwritten extents into the page cache as zeroes */
		if (fallocate(fd, 0, 0, (off_t)size) != 0)
			return -1;
		return read_all(fd, size);
	case FB_FILL_HOLE_READ:
		return read_all(fd, size);
	default:
		return write_all(fd, size, spec->fill_chunk);
	}
}

int fb_rehearse(int fd, uint64_t size, uint64_t unit)
{
	volatile char *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -1;
	for (uint64_t off = 0; off < size; off += unit)
		(void)p[off];	/* volatile: each read happens */
	munmap((void *)p, size);
	return 0;
}
