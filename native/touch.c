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
	/* one page table page maps page_size / sizeof(pte) pages: the PMD span */
	uint64_t pmd_pages = (uint64_t)page_size / 8;

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

/* volatile keeps every access; the returned sum keeps the loads from being dead */
uint8_t fb_touch(char *base, const struct fb_plan *plan, int write)
{
	volatile uint8_t *p = (volatile uint8_t *)base;
	uint8_t sum = 0;

	if (plan->order) {
		uint64_t ps = (uint64_t)plan->page_size;

		if (write)
			for (uint64_t i = 0; i < plan->count; i++)
				p[plan->order[i] * ps] = (uint8_t)i;
		else
			for (uint64_t i = 0; i < plan->count; i++)
				sum += p[plan->order[i] * ps];
	} else {
		int64_t off = (int64_t)plan->first;

		if (write)
			for (uint64_t i = 0; i < plan->count; i++, off += plan->step)
				p[off] = (uint8_t)i;
		else
			for (uint64_t i = 0; i < plan->count; i++, off += plan->step)
				sum += p[off];
	}
	return sum;
}
