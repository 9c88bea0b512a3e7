/*
 * breakeven_loop: the break-even measurement with none of faultbench's code. Each sample
 * creates a memfd, writes every page (warm page cache), maps it shared read-only,
 * optionally registers the range with userfaultfd in WP mode (which makes the kernel skip
 * fault-around for the VMA; nothing is write-protected, so reads raise no uffd event and
 * need no handler), reads one byte every STRIDE pages, then unmaps it.
 *
 *   breakeven_loop SIZE_BYTES STRIDE_PAGES none|wp [SAMPLES]
 *
 * One line per sample: touch ns per touched page, munmap ns per touched page, faults in the
 * touch loop (getrusage minor + major), pages touched. The first sample of a process runs
 * with cold page-table pages and caches: callers drop it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long faults_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

static void die(const char *what)
{
	fprintf(stderr, "breakeven_loop: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Returns the uffd descriptor, kept open for the mapping's lifetime (closing it ends the
 * registration and with it the fault-around switch-off). */
static int register_wp(void *addr, uint64_t size)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = size },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		die("userfaultfd (needs root, or vm.unprivileged_userfaultfd=1)");
	if (ioctl(fd, UFFDIO_API, &api) != 0)
		die("UFFDIO_API");
	if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0)
		die("UFFDIO_REGISTER mode WP");
	return fd;
}

static void sample(uint64_t size, uint64_t stride_pages, int wp, long page)
{
	static char chunk[1 << 20];
	uint64_t step = stride_pages * (uint64_t)page, touched = 0, off;
	volatile uint8_t *p;
	int64_t t0, t1, t2;
	long f0, f1;
	uint8_t sum = 0;
	int fd, uffd = -1;

	fd = memfd_create("breakeven", MFD_CLOEXEC);
	if (fd < 0)
		die("memfd_create");
	memset(chunk, 0x5a, sizeof(chunk));
	for (off = 0; off < size; off += sizeof(chunk))
		if (pwrite(fd, chunk, size - off < sizeof(chunk) ? size - off : sizeof(chunk),
			   (off_t)off) < 0)
			die("pwrite");
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	if (wp)
		uffd = register_wp((void *)p, size);
	f0 = faults_now();
	t0 = now_ns();
	for (off = 0; off < size; off += step, touched++)
		sum += p[off];
	t1 = now_ns();
	f1 = faults_now();
	munmap((void *)p, size);
	t2 = now_ns();
	if (uffd >= 0)
		close(uffd);
	close(fd);
	printf("%.1f %.1f %ld %llu\n", (double)(t1 - t0) / (double)touched + (sum & 0),
	       (double)(t2 - t1) / (double)touched, f1 - f0, (unsigned long long)touched);
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t size, stride;
	int samples, wp;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: %s SIZE_BYTES STRIDE_PAGES none|wp [SAMPLES]\n", argv[0]);
		return 2;
	}
	size = strtoull(argv[1], NULL, 0);
	stride = strtoull(argv[2], NULL, 0);
	wp = strcmp(argv[3], "wp") == 0;
	samples = argc == 5 ? atoi(argv[4]) : 1;
	if (size == 0 || size % (uint64_t)page || stride == 0 || samples < 1 ||
	    (!wp && strcmp(argv[3], "none") != 0)) {
		fprintf(stderr, "%s: SIZE a multiple of the page size, STRIDE >= 1, none|wp\n",
			argv[0]);
		return 2;
	}
	now_ns();	/* the first vDSO call faults its pages in: keep that out of the count */
	faults_now();
	for (int i = 0; i < samples; i++)
		sample(size, stride, wp, page);
	return 0;
}
