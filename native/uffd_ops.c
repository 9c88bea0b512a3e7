/*
 * uffd_ops: the userfaultfd descriptor, the features a mode needs, and the ioctls that
 * resolve one fault (MISSING: UFFDIO_ZEROPAGE for reads, UFFDIO_COPY for writes and hugetlb;
 * MINOR: UFFDIO_CONTINUE; WP: removing the protection) or release every blocked one.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif

/* Prefer the mode an unprivileged user may have; fall back to /dev/userfaultfd (its file
 * permission is the gate there), then to the plain syscall (root). */
int fb_uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	int dev;

	if (fd >= 0)
		return fd;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		if (fd >= 0)
			return fd;
	}
	return (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
}

/* UFFDIO_API may be called once per descriptor, so ask a throwaway one what is offered. */
uint64_t fb_uffd_offered_features(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = fb_uffd_open();
	uint64_t features = 0;

	if (fd < 0)
		return 0;
	if (ioctl(fd, UFFDIO_API, &api) == 0)
		features = api.features;
	close(fd);
	return features;
}

uint64_t fb_uffd_wanted_features(const struct fb_spec *spec)
{
	int shmem = spec->backing == FB_MEMFD || spec->backing == FB_TMPFS ||
		    (spec->backing == FB_ANON && spec->shared);
	int hugetlb = spec->backing == FB_HUGETLB;

	switch (spec->uffd) {
	case FB_UFFD_MISSING:
		return (shmem ? UFFD_FEATURE_MISSING_SHMEM : 0) |
		       (hugetlb ? UFFD_FEATURE_MISSING_HUGETLBFS : 0);
	case FB_UFFD_WP:
		return UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED |
		       (shmem || hugetlb ? UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0);
	case FB_UFFD_MINOR:
		return (shmem ? UFFD_FEATURE_MINOR_SHMEM : 0) |
		       (hugetlb ? UFFD_FEATURE_MINOR_HUGETLBFS : 0);
	default:
		return 0;
	}
}

int fb_uffd_serve_fault(int fd, uint64_t flags, uint64_t address, uint64_t unit, int hugetlb,
			const char *source)
{
	uint64_t start = address & ~(unit - 1);
	struct uffdio_range range = { .start = start, .len = unit };
	int rc;

	if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		struct uffdio_writeprotect wp = { .range = range, .mode = 0 };

		rc = ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
	} else if (flags & UFFD_PAGEFAULT_FLAG_MINOR) {
		struct uffdio_continue cont = { .range = range, .mode = 0 };

		rc = ioctl(fd, UFFDIO_CONTINUE, &cont);
	} else if ((flags & UFFD_PAGEFAULT_FLAG_WRITE) || hugetlb) {
		struct uffdio_copy copy = { .dst = start, .src = (uint64_t)(uintptr_t)source,
					    .len = unit, .mode = 0 };

		rc = ioctl(fd, UFFDIO_COPY, &copy);
	} else {
		struct uffdio_zeropage zero = { .range = range, .mode = 0 };

		rc = ioctl(fd, UFFDIO_ZEROPAGE, &zero);
	}
	if (rc != 0 && errno == EEXIST)	/* resolved meanwhile; the faulting thread needs a wake */
		rc = ioctl(fd, UFFDIO_WAKE, &range);
	return rc;
}

void fb_uffd_release(int fd, void *addr, uint64_t size)
{
	struct uffdio_range range = { .start = (uint64_t)(uintptr_t)addr, .len = size };

	/* unregister first so that woken faults resolve as if the range had never been
	 * registered; the kernel wakes MISSING waiters on unregister, but not WP/MINOR ones */
	ioctl(fd, UFFDIO_UNREGISTER, &range);
	ioctl(fd, UFFDIO_WAKE, &range);
}
