/*
 * present: what is present before and after the loop. mincore gives page cache residency of
 * a file mapping; /proc/self/pagemap gives this process's page table entries, and
 * /proc/self/maps its mappings.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_CHUNK 65536

int64_t fb_resident_pages(void *addr, uint64_t size, int64_t page_size)
{
	uint64_t pages = size / (uint64_t)page_size;
	unsigned char *vec = malloc(pages);
	int64_t resident = 0;

	if (!vec)
		return -1;
	if (mincore(addr, size, vec) != 0) {
		free(vec);
		return -1;
	}
	for (uint64_t i = 0; i < pages; i++)
		resident += vec[i] & 1;
	free(vec);
	return resident;
}

/* Reads count entries from byte offset at, retrying what a signal or a short read left. */
static int read_entries(int fd, uint64_t *entries, uint64_t count, off_t at)
{
	size_t want = count * sizeof(*entries), done = 0;

	while (done < want) {
		ssize_t got = pread(fd, (char *)entries + done, want - done, at + (off_t)done);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -1 : (errno = EIO, -1);
		done += (size_t)got;
	}
	return 0;
}

int64_t fb_pages_mapped(void *addr, uint64_t size, int64_t page_size, char *reason)
{
	uint64_t first = (uint64_t)(uintptr_t)addr / (uint64_t)page_size;
	uint64_t pages = size / (uint64_t)page_size, done = 0;
	int64_t present = 0;
	uint64_t *entries;
	int fd;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(reason, FB_TEXT, "/proc/self/pagemap: %s", strerror(errno));
		return -1;
	}
	entries = malloc(PAGEMAP_CHUNK * sizeof(*entries));
	if (!entries) {
		snprintf(reason, FB_TEXT, "out of memory for the pagemap walk");
		close(fd);
		return -1;
	}
	while (done < pages) {
		uint64_t want = pages - done < PAGEMAP_CHUNK ? pages - done : PAGEMAP_CHUNK;

		if (read_entries(fd, entries, want, (off_t)((first + done) * sizeof(*entries)))) {
			snprintf(reason, FB_TEXT, "reading /proc/self/pagemap: %s", strerror(errno));
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

int64_t fb_mappings(void)
{
	char chunk[4096];
	int64_t lines = 0;
	ssize_t got;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((got = read(fd, chunk, sizeof(chunk))) > 0)
		for (ssize_t i = 0; i < got; i++)
			lines += chunk[i] == '\n';
	close(fd);
	return got < 0 ? -1 : lines;
}

/* Shared anonymous mappings, one page each: each has a shmem file of its own, so no two
 * merge with each other or with a neighbour, and each adds exactly one mapping. They are
 * never touched and go with the mapper process. */
int fb_pad_mappings(int64_t target, int64_t page_size, struct fb_result *r)
{
	int64_t have = fb_mappings();

	if (have < 0) {
		fb_fail(r, FB_ERROR, "vmas %lld: /proc/self/maps could not be read",
			(long long)target);
		return -1;
	}
	if (have > target) {
		fb_fail(r, FB_UNSUPPORTED, "vmas %lld: the mapper already has %lld mappings",
			(long long)target, (long long)have);
		return -1;
	}
	for (; have < target; have++)
		if (mmap(NULL, (size_t)page_size, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0) ==
		    MAP_FAILED) {
			fb_fail(r, FB_ERROR, "vmas %lld: mmap of mapping %lld: %s (vm.max_map_count?)",
				(long long)target, (long long)have + 1, strerror(errno));
			return -1;
		}
	return 0;
}

int64_t fb_process_resident_pages(void)
{
	long size = 0, resident = -1;
	FILE *f = fopen("/proc/self/statm", "re");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident;
}
