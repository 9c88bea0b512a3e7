/*
 * region: the backing under test (anon, memfd, tmpfs file, disk file, hugetlb memfd), its
 * page cache state before the measurement (warm, cold, hole, hot; fill.c populates it), and
 * the mapping itself.
 * Files are unlinked as soon as they exist, so nothing is left behind on any exit path.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif
#define PLACE_ATTEMPTS 16
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* Concurrent thread mappers place their mappings one at a time: two threads that place at
 * once find the same free gap, and each one's reservation then fails the other's
 * MAP_FIXED_NOREPLACE, round after round (2 CPUs: mapper 1 of 2 failed all 16 attempts in
 * 64 of 200 runs). Held around placement and mmap only; touching runs unlocked. */
static pthread_mutex_t placement_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *fs_name(long magic)
{
	switch ((unsigned long)magic) {
	case EXT4_SUPER_MAGIC: return "ext4";	/* also ext2/ext3 */
	case TMPFS_MAGIC: return "tmpfs";
	case XFS_SUPER_MAGIC: return "xfs";
	case BTRFS_SUPER_MAGIC: return "btrfs";
	case HUGETLBFS_MAGIC: return "hugetlbfs";
	case OVERLAYFS_SUPER_MAGIC: return "overlayfs";
	case V9FS_MAGIC: return "9p";
	case NFS_SUPER_MAGIC: return "nfs";
	case 0x65735546: return "fuse";
	case 0xf2f52010: return "f2fs";
	case 0x2fc12fc1: return "zfs";
	default: return "unknown";
	}
}

static int create_file(const struct fb_spec *spec, struct fb_result *r)
{
	char path[4096];
	int fd;

	if (spec->backing == FB_MEMFD)
		return memfd_create("faultbench", MFD_CLOEXEC);
	if (spec->backing == FB_HUGETLB)
		return memfd_create("faultbench", MFD_CLOEXEC | MFD_HUGETLB);
	/* Nameless from the start: a worker killed between mkostemp and unlink left an empty
	 * file behind. The inode ends as the unlinked one did: open, with no name. */
	fd = open(spec->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		snprintf(path, sizeof(path), "%s/faultbench.XXXXXX", spec->dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0)
		fb_fail(r, FB_ERROR, "cannot create a file in %s: %s", spec->dir, strerror(errno));
	return fd;
}

int fb_backing_create(const struct fb_spec *spec, struct fb_backing_file *bf, struct fb_result *r)
{
	struct statfs sfs;

	bf->fd = -1;
	bf->size = spec->size;
	bf->unit = (uint64_t)sysconf(_SC_PAGESIZE);
	snprintf(bf->fs_type, sizeof(bf->fs_type), "%s", spec->backing == FB_ANON ? "anon" : "");
	if (spec->backing == FB_ANON)
		return 0;
	bf->fd = create_file(spec, r);
	if (bf->fd < 0) {
		if (spec->backing == FB_HUGETLB)
			fb_fail(r, FB_UNSUPPORTED, "hugetlb memfd: %s",
				strerror(errno));
		else
			fb_fail(r, FB_ERROR, "cannot create the backing: %s", strerror(errno));
		return -1;
	}
	if (fstatfs(bf->fd, &sfs) == 0) {
		snprintf(bf->fs_type, sizeof(bf->fs_type), "%s", fs_name(sfs.f_type));
		if (spec->backing == FB_HUGETLB)
			bf->unit = (uint64_t)sfs.f_bsize;
	}
	if (spec->backing == FB_TMPFS && strcmp(bf->fs_type, "tmpfs") != 0) {
		fb_fail(r, FB_UNSUPPORTED, "%s is %s, not tmpfs (use backing 'file' for disk filesystems)",
			spec->dir, bf->fs_type);
		return -1;
	}
	if (spec->backing == FB_FILE && strcmp(bf->fs_type, "tmpfs") == 0) {
		fb_fail(r, FB_UNSUPPORTED, "%s is tmpfs here (use backing 'tmpfs', or a dir on a disk "
			"filesystem)",
			spec->dir);
		return -1;
	}
	if (ftruncate(bf->fd, (off_t)spec->size) != 0) {
		fb_fail(r, spec->backing == FB_HUGETLB ? FB_UNSUPPORTED : FB_ERROR,
			"cannot size the backing to %llu bytes: %s",
			(unsigned long long)spec->size, strerror(errno));
		return -1;
	}
	if (spec->cache == FB_HOLE)
		return 0;
	if (fb_fill(spec, bf->fd, spec->size)) {
		fb_fail(r, errno == EOPNOTSUPP ? FB_UNSUPPORTED : FB_ERROR,
			"cannot populate the backing: %s", strerror(errno));
		return -1;
	}
	if (spec->backing == FB_FILE) {
		/* clean pages: writeback must not run during the measurement */
		if (fsync(bf->fd) != 0) {
			fb_fail(r, FB_ERROR, "fsync: %s", strerror(errno));
			return -1;
		}
		if (spec->cache == FB_COLD)
			posix_fadvise(bf->fd, 0, (off_t)spec->size, POSIX_FADV_DONTNEED);
	}
	if (spec->cache == FB_HOT && fb_rehearse(bf->fd, spec->size, bf->unit) != 0) {
		fb_fail(r, FB_ERROR, "cannot map the backing to make it hot: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void fb_backing_destroy(struct fb_backing_file *bf)
{
	if (bf->fd >= 0)
		close(bf->fd);
	bf->fd = -1;
}

uint64_t fb_window_bytes(int64_t page_size)
{
	/* a page table holds page_size / sizeof(pte) entries */
	return (uint64_t)page_size / 8 * (uint64_t)page_size;
}

/* An address spec->map_offset past an alignment boundary with room for the mapping after it:
 * a reservation that is given back at once, so that the timed mmap creates the same single
 * VMA an unplaced mmap would. */
static char *placement(const struct fb_spec *spec, uint64_t align)
{
	uint64_t span = spec->size + 2 * align;
	char *area = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);
	uintptr_t start;

	if (area == MAP_FAILED)
		return NULL;
	munmap(area, span);
	start = ((uintptr_t)area + align - 1) & ~(uintptr_t)(align - 1);
	return (char *)(start + spec->map_offset);
}

/* Fault-around windows are aligned in the virtual address space, so where a mapping starts
 * within one decides how many windows it spans, and so the fault count (1024 or 1025 for a
 * warm 64 MiB memfd read): the start is placed, never left to mmap. A thread that is no
 * mapper (glibc making an arena) may take the address between placement and mmap; then
 * again. */
void *fb_map(const struct fb_spec *spec, const struct fb_backing_file *bf, int extra_flags,
	     int64_t *mmap_ns)
{
	int flags = (spec->shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE | extra_flags;
	uint64_t align = fb_window_bytes((int64_t)sysconf(_SC_PAGESIZE));
	int fd = bf->fd;

	if (bf->unit > align)
		align = bf->unit;
	if (fd < 0)
		flags |= MAP_ANONYMOUS;
	for (int attempt = 0; attempt < PLACE_ATTEMPTS; attempt++) {
		char *want, *got = MAP_FAILED;
		int64_t t0;

		pthread_mutex_lock(&placement_lock);
		want = placement(spec, align);
		if (want) {
			t0 = fb_now_ns();
			got = mmap(want, spec->size, PROT_READ | PROT_WRITE, flags, fd, 0);
			*mmap_ns = fb_now_ns() - t0;
		}
		pthread_mutex_unlock(&placement_lock);
		if (!want)
			return MAP_FAILED;
		if (got == want)
			return got;
		if (got != MAP_FAILED) {
			/* a kernel before 4.17 takes MAP_FIXED_NOREPLACE as a hint */
			munmap(got, spec->size);
			errno = ENOTSUP;
			return MAP_FAILED;
		}
		if (errno != EEXIST)
			return MAP_FAILED;
	}
	return MAP_FAILED;
}
