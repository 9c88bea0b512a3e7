/*
 * munmap after a pagemap walk vs munmap straight after the touch loop: the same 64 MiB warm
 * memfd, read one byte per page in order, in one process, the two orders interleaved.
 * Prints one line per sample: "<walk 0|1> <munmap ns> <pages present>".
 *
 *     munmap_order SIZE_BYTES SAMPLES_PER_ORDER
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? strtoull(argv[1], NULL, 0) : 64 << 20;
	int samples = argc > 2 ? atoi(argv[2]) : 16;
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = size / page;
	int fd = memfd_create("munmap_order", MFD_CLOEXEC);
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t *entries = malloc(pages * sizeof(*entries));
	char *chunk = malloc(1 << 20);

	if (fd < 0 || pagemap < 0 || !entries || !chunk)
		return 1;
	memset(chunk, 0x5a, 1 << 20);
	for (size_t off = 0; off < size; off += 1 << 20)
		if (pwrite(fd, chunk, 1 << 20, (off_t)off) != 1 << 20)
			return 1;
	/* one discarded warm-up pair, then the orders alternate */
	for (int i = 0; i < 2 * (samples + 1); i++) {
		int walk = i % 2;
		volatile char *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
		unsigned sum = 0;
		long present = -1;
		int64_t t0;

		if (p == MAP_FAILED)
			return 1;
		for (size_t off = 0; off < size; off += page)
			sum += (unsigned)p[off];
		if (walk) {
			present = 0;
			if (pread(pagemap, entries, pages * sizeof(*entries),
				  (off_t)((uintptr_t)p / page * sizeof(*entries))) !=
			    (ssize_t)(pages * sizeof(*entries)))
				return 1;
			for (size_t j = 0; j < pages; j++)
				present += (long)(entries[j] >> 63);
		}
		t0 = now_ns();
		munmap((void *)p, size);
		if (i >= 2)
			printf("%d %lld %ld %u\n", walk, (long long)(now_ns() - t0), present, sum & 0);
	}
	return 0;
}
