/*
 * reference_loop: the smallest program that does what one faultbench sample does (map a
 * backing, touch one byte per page in a pattern, unmap), with none of faultbench's
 * machinery. It is the yardstick for benchmarks/overhead and, run under `perf stat
 * --control`, the independent fault count the tests compare faultbench's counts against.
 *
 *   reference_loop anon|memfd|tmpfs|file SIZE_BYTES STEP_PAGES|random read|write [CTL ACK]
 *
 * Prints the touch loop's CLOCK_MONOTONIC_RAW nanoseconds and the involuntary context
 * switches it took (getrusage, as faultbench's nivcsw), a line per sample (REFERENCE_REPEAT=N:
 * N samples). tmpfs and file create an unlinked file in REFERENCE_DIR (default /dev/shm,
 * /var/tmp), written with pwrite first like memfd (warm); anon is a private hole. random
 * touches every page in the order faultbench's random pattern does (REFERENCE_SEED, default
 * 1). The mapping starts on a page-table boundary, as faultbench's do by default. On stderr:
 * how many mappings the process had as its first loop started (a fault's VMA lookup walks
 * them; faultbench's samples record theirs as `mappings`). With the two fifos (perf stat
 * --delay=-1 --control fifo:CTL,ACK) perf counts exactly the loops.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void perf_say(int ctl, int ack, const char *what)
{
	char reply[16];

	if (ctl < 0)
		return;
	if (write(ctl, what, strlen(what)) < 0 || read(ack, reply, sizeof(reply)) <= 0) {
		perror("perf control");
		exit(1);
	}
}

/* faultbench's random pattern (native/touch.c): a seeded Fisher-Yates shuffle */
static uint32_t *permutation(uint64_t pages, uint64_t seed)
{
	uint32_t *order = malloc(pages * sizeof(*order));

	if (!order)
		exit(1);
	for (uint64_t i = 0; i < pages; i++)
		order[i] = (uint32_t)i;
	for (uint64_t i = pages - 1; i > 0; i--) {
		uint64_t z = (seed += 0x9e3779b97f4a7c15ULL), j;
		uint32_t t;

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		j = (z ^ (z >> 31)) % (i + 1);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	return order;
}

static uint64_t count_mappings(void)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	uint64_t lines = 0;
	int c;

	if (!maps)
		exit(1);
	while ((c = getc(maps)) != EOF)
		lines += c == '\n';
	fclose(maps);
	return lines;
}

static int backing(const char *kind, uint64_t size)
{
	static char chunk[1 << 20];
	const char *dir = getenv("REFERENCE_DIR");
	char path[4096];
	int fd;

	if (strcmp(kind, "anon") == 0)
		return -1;
	if (strcmp(kind, "memfd") == 0) {
		fd = memfd_create("reference", MFD_CLOEXEC);
	} else {
		snprintf(path, sizeof(path), "%s/reference.XXXXXX",
			 dir ? dir : strcmp(kind, "tmpfs") == 0 ? "/dev/shm" : "/var/tmp");
		fd = mkostemp(path, O_CLOEXEC);
		unlink(path);
	}
	if (fd < 0)
		exit(1);
	memset(chunk, 0x5a, sizeof(chunk));
	for (uint64_t off = 0; off < size; off += sizeof(chunk))
		if (pwrite(fd, chunk, size - off < sizeof(chunk) ? size - off : sizeof(chunk),
			   (off_t)off) < 0)
			exit(1);
	if (strcmp(kind, "file") == 0 && fsync(fd) != 0)
		exit(1);
	return fd;
}

/* at the first page-table (2 MiB) boundary of an address range mmap would hand out */
static volatile uint8_t *map_aligned(int fd, uint64_t size)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), align = page / 8 * page;
	char *area = mmap(NULL, size + 2 * align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *want, *got;

	if (area == MAP_FAILED)
		exit(1);
	munmap(area, size + 2 * align);
	want = (char *)(((uintptr_t)area + align - 1) & ~(uintptr_t)(align - 1));
	got = mmap(want, size, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE |
		   (fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED), fd, 0);
	if (got != want)
		exit(1);
	return (volatile uint8_t *)got;
}

static int64_t sample(const char *kind, uint64_t size, uint64_t step, const uint32_t *order,
		      int write_access, int ctl, int ack, long *nivcsw)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), pages = size / page;
	static int counted;
	int fd = backing(kind, size);
	volatile uint8_t *p = map_aligned(fd, size), *q, *end = p + size;
	struct rusage before, after;
	int64_t t0, t1;

	now_ns();	/* the first vDSO call faults its pages in: keep that out of the count */
	if (!counted) {
		fprintf(stderr, "mappings %llu\n", (unsigned long long)count_mappings());
		counted = 1;
	}
	perf_say(ctl, ack, "enable\n");
	getrusage(RUSAGE_THREAD, &before);
	t0 = now_ns();
	if (order && write_access)
		for (uint64_t i = 0; i < pages; i++)
			p[order[i] * page] = 1;
	else if (order)
		for (uint64_t i = 0; i < pages; i++)
			(void)p[order[i] * page];
	else if (write_access)
		for (q = p; q < end; q += step)
			*q = 1;
	else
		for (q = p; q < end; q += step)
			(void)*q;
	t1 = now_ns();
	getrusage(RUSAGE_THREAD, &after);
	perf_say(ctl, ack, "disable\n");
	*nivcsw = after.ru_nivcsw - before.ru_nivcsw;
	munmap((void *)p, size);
	if (fd >= 0)
		close(fd);
	return t1 - t0;
}

int main(int argc, char **argv)
{
	const char *repeat = getenv("REFERENCE_REPEAT"), *seed = getenv("REFERENCE_SEED");
	int ctl = -1, ack = -1, n = repeat ? atoi(repeat) : 1;
	uint64_t size, step, page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint32_t *order = NULL;

	if (argc != 5 && argc != 7) {
		fprintf(stderr, "usage: %s anon|memfd|tmpfs|file SIZE STEP_PAGES|random "
			"read|write [CTL ACK]\n", argv[0]);
		return 2;
	}
	size = strtoull(argv[2], NULL, 0);
	step = strtoull(argv[3], NULL, 0) * page;
	if (strcmp(argv[3], "random") == 0)
		order = permutation(size / page, seed ? strtoull(seed, NULL, 0) : 1);
	if (argc == 7) {
		ctl = open(argv[5], O_WRONLY);
		ack = open(argv[6], O_RDONLY);
	}
	for (int i = 0; i < n; i++) {
		long nivcsw;
		int64_t ns = sample(argv[1], size, step, order, strcmp(argv[4], "write") == 0,
				    ctl, ack, &nivcsw);

		printf("%lld %ld\n", (long long)ns, nivcsw);
	}
	free(order);
	return 0;
}
