/*
 * uffd: register the mapping under test with userfaultfd and serve its faults from a thread
 * (uffd_ops.c resolves each one). Nothing may hang: at the deadline, or when fb_run is
 * interrupted by a signal, the server unregisters the range, which wakes any blocked
 * faulting thread, and reports it.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define POLL_SLICE_MS 50
#define MSG_BATCH 64

struct fb_uffd {
	int fd, stop_fd;
	pthread_t thread;
	char *addr;
	uint64_t size;
	uint64_t unit;		/* page size, or huge page size for hugetlb */
	char *source;		/* UFFDIO_COPY source, one unit */
	int serve, hugetlb;
	int64_t deadline_at;
	int64_t events, serve_ns, unserved;
	int timed_out, interrupted;
	char failure[FB_TEXT];
};

static void *serve(void *arg)
{
	struct fb_uffd *u = arg;
	struct pollfd fds[2] = { { .fd = u->fd, .events = POLLIN },
				 { .fd = u->stop_fd, .events = POLLIN } };
	struct uffd_msg msgs[MSG_BATCH];

	for (;;) {
		int64_t left = u->deadline_at - fb_now_ns();
		ssize_t got;

		if (left <= 0 || fb_interrupted()) {
			u->interrupted = fb_interrupted();
			u->timed_out = !u->interrupted;
			fb_uffd_release(u->fd, u->addr, u->size);
			while (poll(&fds[1], 1, -1) < 0)	/* the released toucher says stop */
				;
			break;
		}
		if (poll(fds, 2, left / 1000000 < POLL_SLICE_MS ? (int)(left / 1000000) + 1 :
			 POLL_SLICE_MS) < 0)
			continue;
		if (fds[1].revents & POLLIN)
			break;
		if (!(fds[0].revents & POLLIN))
			continue;
		got = read(u->fd, msgs, sizeof(msgs));
		if (got <= 0)
			continue;
		for (size_t i = 0; i < (size_t)got / sizeof(msgs[0]); i++) {
			int64_t t0;

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			u->events++;
			if (!u->serve) {
				u->unserved++;
				continue;
			}
			t0 = fb_now_ns();
			if (fb_uffd_serve_fault(u->fd, msgs[i].arg.pagefault.flags,
						msgs[i].arg.pagefault.address, u->unit, u->hugetlb,
						u->source) != 0 && u->failure[0] == '\0')
				snprintf(u->failure, sizeof(u->failure), "serving a fault at %#llx: %s",
					 (unsigned long long)msgs[i].arg.pagefault.address,
					 strerror(errno));
			u->serve_ns += fb_now_ns() - t0;
		}
	}
	return NULL;
}

static void uffd_free(struct fb_uffd *u)
{
	if (u->fd >= 0)
		close(u->fd);
	if (u->stop_fd >= 0)
		close(u->stop_fd);
	if (u->source)
		munmap(u->source, u->unit);
	free(u);
}

static const char *mode_name(int mode)
{
	return mode == FB_UFFD_MISSING ? "missing" : mode == FB_UFFD_WP ? "wp" : "minor";
}

struct fb_uffd *fb_uffd_start(const struct fb_spec *spec, void *addr, uint64_t size,
			      uint64_t unit, int64_t deadline_at, struct fb_result *r)
{
	struct fb_uffd *u = calloc(1, sizeof(*u));
	uint64_t offered = fb_uffd_offered_features();
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { .start = (uint64_t)(uintptr_t)addr,
						  .len = size } };

	if (!u) {
		fb_fail(r, FB_ERROR, "out of memory");
		return NULL;
	}
	u->fd = fb_uffd_open();
	u->stop_fd = eventfd(0, EFD_CLOEXEC);
	u->addr = addr;
	u->size = size;
	u->hugetlb = spec->backing == FB_HUGETLB;
	u->unit = unit;
	u->serve = spec->uffd_serve;
	u->deadline_at = deadline_at;
	if (u->fd < 0) {
		fb_fail(r, FB_UNSUPPORTED, "userfaultfd: %s", strerror(errno));
		goto fail;
	}
	api.features = fb_uffd_wanted_features(spec) & offered;
	if (ioctl(u->fd, UFFDIO_API, &api) != 0) {
		fb_fail(r, FB_UNSUPPORTED, "UFFDIO_API: %s", strerror(errno));
		goto fail;
	}
	r->uffd_features = offered;
	reg.mode = spec->uffd == FB_UFFD_MISSING ? UFFDIO_REGISTER_MODE_MISSING :
		   spec->uffd == FB_UFFD_WP ? UFFDIO_REGISTER_MODE_WP :
		   UFFDIO_REGISTER_MODE_MINOR;
	if (ioctl(u->fd, UFFDIO_REGISTER, &reg) != 0) {
		fb_fail(r, FB_UNSUPPORTED, "UFFDIO_REGISTER mode %s on this backing: %s",
			mode_name(spec->uffd), strerror(errno));
		goto fail;
	}
	if (spec->uffd == FB_UFFD_WP && spec->write) {
		/* write faults only reach the server on protected pages */
		struct uffdio_writeprotect wp = { .range = reg.range,
						  .mode = UFFDIO_WRITEPROTECT_MODE_WP };

		if (ioctl(u->fd, UFFDIO_WRITEPROTECT, &wp) != 0) {
			fb_fail(r, FB_UNSUPPORTED, "UFFDIO_WRITEPROTECT: %s",
				strerror(errno));
			goto fail;
		}
	}
	u->source = mmap(NULL, u->unit, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (u->source == MAP_FAILED) {
		u->source = NULL;
		fb_fail(r, FB_ERROR, "cannot map the UFFDIO_COPY source: %s", strerror(errno));
		goto fail;
	}
	memset(u->source, 0xa5, u->unit);
	if (u->stop_fd < 0 || pthread_create(&u->thread, NULL, serve, u) != 0) {
		fb_fail(r, FB_ERROR, "cannot start the userfaultfd server thread");
		goto fail;
	}
	return u;
fail:
	uffd_free(u);
	return NULL;
}

int fb_uffd_stop(struct fb_uffd *u, struct fb_result *r)
{
	uint64_t one = 1;
	int released;

	if (write(u->stop_fd, &one, sizeof(one)) != sizeof(one))
		pthread_cancel(u->thread);	/* cannot happen with an eventfd; never leak it */
	pthread_join(u->thread, NULL);
	r->uffd_events = u->events;
	r->uffd_ns = u->serve_ns;
	released = u->timed_out || u->interrupted;
	/* a served range has no unserved count: its faults are served as they come, and the
	 * one pending when the loop is stopped is released by the unregistering */
	if (u->interrupted && u->serve)
		fb_fail(r, FB_ERROR, "interrupted by %s after %lld userfaultfd fault(s) served; "
			"the range was unregistered to release the faulting thread",
			fb_signal_name(u->interrupted), (long long)u->events);
	else if (u->interrupted)
		fb_fail(r, FB_ERROR, "interrupted by %s with %lld of %lld userfaultfd fault(s) "
			"unserved; the range was unregistered to release the faulting thread",
			fb_signal_name(u->interrupted), (long long)u->unserved,
			(long long)u->events);
	else if (u->timed_out && u->serve)
		fb_fail(r, FB_ERROR, "deadline exceeded: the touch loop did not finish in time "
			"(%lld userfaultfd fault(s) served); the range was unregistered to "
			"release the faulting thread", (long long)u->events);
	else if (u->timed_out)
		fb_fail(r, FB_ERROR, "deadline exceeded with %lld of %lld userfaultfd fault(s) "
			"left unserved; the range was unregistered to release the faulting thread",
			(long long)u->unserved, (long long)u->events);
	else if (u->failure[0])
		fb_fail(r, FB_ERROR, "%s", u->failure);
	uffd_free(u);
	return released;
}
