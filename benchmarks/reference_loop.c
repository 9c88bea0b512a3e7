/*
 * reference_loop: the smallest program that does what one faultbench sample does for a warm
 * memfd (or private anon) read/write touch, with none of faultbench's machinery. It is the
 * yardstick for benchmarks/overhead and, run under `perf stat --control`, the independent
 * fault count the tests compare faultbench's counts against.
 *
 *   reference_loop memfd|anon SIZE_BYTES STEP_PAGES read|write [CTL_FIFO ACK_FIFO]
 *
 * Prints the touch loop's CLOCK_MONOTONIC_RAW nanoseconds (REFERENCE_REPEAT=N: N samples,
 * one per line). With the two fifos (perf stat --delay=-1 --control fifo:CTL,ACK) perf
 * counts exactly the touch loops.
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

static int64_t sample(const char *backing, uint64_t size, uint64_t step, int write_access,
		      int ctl, int ack)
{
	static char chunk[1 << 20];
	volatile uint8_t *p;
	uint64_t off;
	uint8_t sum = 0;
	int64_t t0, t1;
	int fd = -1;

	if (strcmp(backing, "memfd") == 0) {
		fd = memfd_create("reference", MFD_CLOEXEC);
		memset(chunk, 0x5a, sizeof(chunk));
		for (off = 0; off < size; off += sizeof(chunk))
			if (pwrite(fd, chunk, size - off < sizeof(chunk) ? size - off : sizeof(chunk),
				   (off_t)off) < 0)
				exit(1);
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	} else {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (p == MAP_FAILED)
		exit(1);
	now_ns();	/* the first vDSO call faults its pages in: keep that out of the count */
	perf_say(ctl, ack, "enable\n");
	t0 = now_ns();
	if (write_access)
		for (off = 0; off < size; off += step)
			p[off] = (uint8_t)off;
	else
		for (off = 0; off < size; off += step)
			sum += p[off];
	t1 = now_ns();
	perf_say(ctl, ack, "disable\n");
	munmap((void *)p, size);
	if (fd >= 0)
		close(fd);
	return t1 - t0 + (sum & 0);
}

int main(int argc, char **argv)
{
	const char *repeat = getenv("REFERENCE_REPEAT");
	int ctl = -1, ack = -1, n = repeat ? atoi(repeat) : 1;
	uint64_t size, step;

	if (argc != 5 && argc != 7) {
		fprintf(stderr, "usage: %s memfd|anon SIZE STEP_PAGES read|write [CTL ACK]\n",
			argv[0]);
		return 2;
	}
	size = strtoull(argv[2], NULL, 0);
	step = strtoull(argv[3], NULL, 0) * (uint64_t)sysconf(_SC_PAGESIZE);
	if (argc == 7) {
		ctl = open(argv[5], O_WRONLY);
		ack = open(argv[6], O_RDONLY);
	}
	for (int i = 0; i < n; i++)
		printf("%lld\n", (long long)sample(argv[1], size, step,
						   strcmp(argv[4], "write") == 0, ctl, ack));
	return 0;
}
