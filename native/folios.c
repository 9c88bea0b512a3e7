/*
 * folios: the sizes of the folios backing a mapping, read from /proc/self/pagemap (each
 * page's PFN; the kernel hides PFNs from a caller without CAP_SYS_ADMIN) and /proc/kpageflags
 * (per PFN: COMPOUND_HEAD, COMPOUND_TAIL). A folio is a head page and the tail pages after it
 * in PFN order; an order-0 folio is neither head nor tail.
 *
 * Each present page of the range is counted once, under the order of the folio it belongs
 * to, even when that folio extends beyond the range (a 2 MiB folio of which the mapping holds
 * 64 pages counts 64 pages at order 9). Pages not present are not counted, so the pages add
 * up to pages_mapped.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_PFN_MASK ((1ULL << 55) - 1)
#define KPF_HEAD (1ULL << 15)
#define KPF_TAIL (1ULL << 16)
#define CHUNK 512

/* kpageflags of PFNs [at, at + count): count entries read, 0 past the end, -1 on error */
static ssize_t flags_at(int fd, uint64_t at, uint64_t *flags, size_t count)
{
	ssize_t got;

	do
		got = pread(fd, flags, count * sizeof(*flags), (off_t)(at * sizeof(*flags)));
	while (got < 0 && errno == EINTR);
	return got < 0 ? -1 : got / (ssize_t)sizeof(*flags);
}

/* The folio holding pfn: its head and its pages. A tail's head lies before it, at most
 * 2^(FB_FOLIO_ORDERS-1) - 1 PFNs back (folios are naturally aligned). */
static int folio_of(int fd, uint64_t pfn, uint64_t *head, uint64_t *pages)
{
	uint64_t flags[CHUNK], at = pfn;
	ssize_t got;

	for (;;) {
		if (flags_at(fd, at, flags, 1) != 1)
			return -1;
		if (!(flags[0] & KPF_TAIL))
			break;
		if (at == 0 || pfn - at >= (1ULL << (FB_FOLIO_ORDERS - 1)))
			return errno = EPROTO, -1;
		at--;
	}
	*head = at;
	*pages = 1;
	if (!(flags[0] & KPF_HEAD))
		return 0;	/* order 0 */
	for (;;) {
		got = flags_at(fd, *head + *pages, flags, CHUNK);
		if (got < 0)
			return -1;
		for (ssize_t i = 0; i < got; i++) {
			if (!(flags[i] & KPF_TAIL))
				return 0;
			++*pages;
		}
		if (got < CHUNK || *pages >= (1ULL << (FB_FOLIO_ORDERS - 1)))
			return 0;
	}
}

static int order_of(uint64_t pages)
{
	int order = 0;

	while ((1ULL << order) < pages)
		order++;
	return order;
}

int fb_folio_orders(void *addr, uint64_t size, int64_t *pages, char *reason)
{
	int64_t page_size = sysconf(_SC_PAGESIZE);
	uint64_t first = (uint64_t)(uintptr_t)addr / (uint64_t)page_size;
	uint64_t count = size / (uint64_t)page_size, entries[CHUNK];
	uint64_t head = 0, span = 0;	/* the folio last looked up: [head, head + span) */
	int map_fd, flags_fd, rc = -1, order = 0;

	memset(pages, 0, FB_FOLIO_ORDERS * sizeof(*pages));
	map_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (map_fd < 0) {
		snprintf(reason, FB_TEXT, "/proc/self/pagemap: %s", strerror(errno));
		return -1;
	}
	flags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (flags_fd < 0) {
		snprintf(reason, FB_TEXT, "/proc/kpageflags: %s%s", strerror(errno),
			 errno == EACCES || errno == EPERM ? " (needs root)" : "");
		close(map_fd);
		return -1;
	}
	for (uint64_t done = 0; done < count;) {
		size_t want = count - done < CHUNK ? (size_t)(count - done) : CHUNK;
		ssize_t got = pread(map_fd, entries, want * sizeof(*entries),
				    (off_t)((first + done) * sizeof(*entries)));

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0 || got % (ssize_t)sizeof(*entries)) {
			snprintf(reason, FB_TEXT, "reading /proc/self/pagemap: %s",
				 got < 0 ? strerror(errno) : "short read");
			goto out;
		}
		for (ssize_t i = 0; i < got / (ssize_t)sizeof(*entries); i++) {
			uint64_t pfn = entries[i] & PAGEMAP_PFN_MASK, folio_pages;

			if (!(entries[i] & PAGEMAP_PRESENT))
				continue;
			if (pfn == 0) {
				snprintf(reason, FB_TEXT, "/proc/self/pagemap hides page frame numbers "
					 "from this process (needs CAP_SYS_ADMIN)");
				goto out;
			}
			if (pfn < head || pfn >= head + span) {
				if (folio_of(flags_fd, pfn, &head, &folio_pages) != 0) {
					snprintf(reason, FB_TEXT, "reading /proc/kpageflags: %s",
						 strerror(errno));
					goto out;
				}
				span = folio_pages;
				order = order_of(folio_pages);
			}
			pages[order]++;
		}
		done += (uint64_t)got / sizeof(*entries);
	}
	rc = 0;
out:
	close(flags_fd);
	close(map_fd);
	return rc;
}
