/*
 * touch: which pages the timed loop touches, in which order, and the loop itself.
 * seq, reverse, stride:N and sparse are arithmetic progressions; random is a seeded
 * permutation built before the clock starts.
 */
#define FB_INTERNAL
#include "faultbench.h"

#include <stdlib.h>

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int fb_plan_build(const struct fb_spec *spec, int64_t page_size, struct fb_plan *plan)
{
	uint64_t pages = spec->size / (uint64_t)page_size;
	/* sparse: one page per page table's span */
	uint64_t pmd_pages = fb_window_bytes(page_size) / (uint64_t)page_size;

	plan->first = 0;
	plan->step = page_size;
	plan->count = pages;
	plan->order = NULL;
	plan->page_size = page_size;
	switch (spec->pattern) {
	case FB_REVERSE:
		plan->first = (pages - 1) * (uint64_t)page_size;
		plan->step = -page_size;
		break;
	case FB_STRIDE:
		plan->step = (int64_t)spec->stride * page_size;
		plan->count = (pages + spec->stride - 1) / spec->stride;
		break;
	case FB_SPARSE:
		plan->step = (int64_t)(pmd_pages * (uint64_t)page_size);
		plan->count = (pages + pmd_pages - 1) / pmd_pages;
		break;
	case FB_RANDOM: {
		uint64_t state = spec->seed;

		if (pages > UINT32_MAX)
			return -1;
		plan->order = malloc(pages * sizeof(*plan->order));
		if (!plan->order)
			return -1;
		for (uint64_t i = 0; i < pages; i++)
			plan->order[i] = (uint32_t)i;
		for (uint64_t i = pages - 1; i > 0; i--) {
			uint64_t j = splitmix64(&state) % (i + 1);
			uint32_t t = plan->order[i];

			plan->order[i] = plan->order[j];
			plan->order[j] = t;
		}
		break;
	}
	default:
		break;
	}
	return 0;
}

void fb_plan_free(struct fb_plan *plan)
{
	free(plan->order);
	plan->order = NULL;
}

/* The loop is the bare loop of benchmarks/reference_loop.c, instruction for instruction:
 * one pointer walks to an end pointer (seq, reverse, stride, sparse), or one index walks the
 * permutation (random). The plan is read into locals first: a byte store may alias it, and
 * the compiler would reload it on every page. A volatile load is never dropped, so a read
 * needs no sum to keep it. */
void fb_touch(char *base, const struct fb_plan *plan, int write)
{
	volatile uint8_t *p = (volatile uint8_t *)base;
	const uint32_t *order = plan->order;
	uint64_t count = plan->count, page_size = (uint64_t)plan->page_size;
	int64_t step = plan->step;

	if (order) {
		if (write)
			for (uint64_t i = 0; i < count; i++)
				p[order[i] * page_size] = 1;
		else
			for (uint64_t i = 0; i < count; i++)
				(void)p[order[i] * page_size];
	} else {
		volatile uint8_t *q = p + plan->first, *end = q + (int64_t)count * step;

		if (write)
			for (; q != end; q += step)
				*q = 1;
		else
			for (; q != end; q += step)
				(void)*q;
	}
}
