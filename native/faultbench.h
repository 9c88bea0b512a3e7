/*
 * faultbench's C contract: one sample = map a region, touch it, count what the kernel did.
 *
 * Python fills a struct fb_spec, calls fb_run() once, and reads one struct fb_result per
 * mapper. Everything between the two clock reads is C, so no interpreter work is timed.
 * Counts that could not be taken are -1 with the reason in the matching *_reason string.
 */
#ifndef FAULTBENCH_H
#define FAULTBENCH_H

#include <stdint.h>

/* cdef begin: faultbench/_build.py gives cffi this part verbatim, so it must stay plain C
 * declarations (no #if, no #include) */
enum fb_backing { FB_ANON, FB_MEMFD, FB_TMPFS, FB_FILE, FB_HUGETLB };
enum fb_cache { FB_WARM, FB_COLD, FB_HOLE, FB_HOT };
enum fb_pattern { FB_SEQ, FB_REVERSE, FB_RANDOM, FB_STRIDE, FB_SPARSE };
enum fb_uffd_mode { FB_UFFD_NONE, FB_UFFD_MISSING, FB_UFFD_WP, FB_UFFD_MINOR };
enum fb_registered { FB_REG_ALL, FB_REG_FIRST, FB_REG_LATER };
enum fb_status { FB_OK, FB_UNSUPPORTED, FB_ERROR };
enum fb_populate { FB_POPULATE_NONE, FB_POPULATE_MADVISE, FB_POPULATE_MAP };
enum fb_fill { FB_FILL_WRITE, FB_FILL_FALLOCATE, FB_FILL_HOLE_READ };

#define FB_TEXT 256
#define FB_FOLIO_ORDERS 20	/* folio orders 0 .. 19 (a 2 GiB folio of 4 KiB pages) */

struct fb_spec {
	int backing;		/* enum fb_backing */
	int shared;		/* MAP_SHARED, else MAP_PRIVATE */
	int write;		/* store a byte per touched page, else load one */
	int cache;		/* enum fb_cache */
	int pattern;		/* enum fb_pattern */
	int uffd;		/* enum fb_uffd_mode */
	uint64_t size;		/* bytes, a multiple of the page (huge page for hugetlb) size */
	uint64_t stride;	/* pages between touches for FB_STRIDE */
	uint64_t seed;		/* FB_RANDOM permutation seed */
	const char *dir;	/* directory of the tmpfs/file backing's (unlinked) file */
	int mappers;		/* processes or threads mapping the same backing, >= 1 */
	int concurrent;		/* mappers start together at a barrier, else one after another */
	int threads;		/* mappers are threads of this process, else forked processes */
	int registered;		/* enum fb_registered: which mappers use the uffd mode */
	int64_t deadline_ns;	/* per mapper; unserved uffd faults are released after it */
	int uffd_serve;		/* 0 leaves uffd faults unserved (to exercise the deadline) */
	int perf;		/* also count with perf events (page faults, cycles, instructions) */
	int populate;		/* enum fb_populate: make the range present before the loop */
	int pagemap;		/* count pages_mapped by walking pagemap before munmap, which
				 * leaves for munmap the page tables and pages the walk read */
	uint64_t map_offset;	/* bytes past a page-table boundary where the mapping starts */
	int profile_fd;		/* -1, or an O_APPEND fd that receives each mapper's kernel
				 * samples of its loop and its munmap (profile.c's blocks) */
	uint64_t profile_period_ns;	/* one sample per this much of the thread's CPU time
					 * (the kernel raises it to at least 10 us) */
	const char *mapper_program;	/* what a forked mapper execs (native/mapper_main.c),
					 * so that it faults in an address space of its own */
	int fill;		/* enum fb_fill: how a warm, hot or cold backing is populated */
	uint64_t fill_chunk;	/* FB_FILL_WRITE: bytes per write(2) */
	int64_t vmas;		/* 0, or pad a mapper process's address space to this many
				 * mappings before its loop (present.c, fb_pad_mappings) */
	int run_alone;		/* SCHED_FIFO from the tick wait to munmap: no task preempts
				 * the timed code (a guest's instruction clock, tick.c) */
};

struct fb_result {
	int status;		/* enum fb_status */
	char error[FB_TEXT];
	int64_t page_size;
	int64_t pages_touched;
	int64_t touch_ns;
	int64_t faults_minor;	/* getrusage(RUSAGE_THREAD) across the touch loop */
	int64_t faults_major;
	int64_t perf_page_faults;	/* perf software event, same thread, same window */
	int64_t cycles;
	int64_t instructions;
	int64_t pages_mapped;	/* present in this process's page table after the loop */
	int64_t resident_before_pages;	/* page cache residency (mincore) before the loop */
	int64_t mmap_ns;
	int64_t munmap_ns;
	int64_t populate_ns;	/* the populate step (MAP_POPULATE: the whole mmap call) */
	int64_t populate_faults;	/* getrusage(RUSAGE_THREAD) across the populate step */
	int64_t nivcsw;		/* involuntary context switches of the touching thread, loop only */
	int64_t steal_ns;	/* machine-wide steal time across the loop, USER_HZ resolution */
	int64_t window_offset;	/* where the mapping started: its address modulo the page-table
				 * span (fb_window_bytes), the largest fault-around window */
	int64_t mappings;	/* mappings in the mapper's address space as its loop starts
				 * (/proc/self/maps lines): each fault's VMA lookup walks them */
	int64_t ticks;		/* local timer interrupts across the loop (LOC, all CPUs) */
	int registered;		/* this mapper's range was registered with userfaultfd */
	int64_t uffd_events;
	int64_t uffd_ns;
	uint64_t uffd_features;
	char fs_type[32];
	int folios_read;	/* folio_pages was read (folios.c), else why not in folio_reason */
	int64_t folio_pages[FB_FOLIO_ORDERS];	/* present pages of the range per folio order */
	char folio_reason[FB_TEXT];
	char perf_reason[FB_TEXT];
	char hw_reason[FB_TEXT];
	char uffd_reason[FB_TEXT];
	char resident_reason[FB_TEXT];
	char mapped_reason[FB_TEXT];
	char steal_reason[FB_TEXT];
	char populate_reason[FB_TEXT];
	char profile_reason[FB_TEXT];	/* why this mapper was not profiled */
	char ticks_reason[FB_TEXT];
};

/* profile.c's block on spec->profile_fd: FB_PROFILE_MAGIC, mapper, part (0 the touch loop,
 * 1 its munmap), samples lost (UINT64_MAX: unknown), n; then n bytes of perf ring records
 * (PERF_SAMPLE_IP | PERF_SAMPLE_CALLCHAIN), all in host byte order */
#define FB_PROFILE_MAGIC 0x31656c69666f7270

/* 0 if this kernel lets the caller sample its own thread's kernel stacks, else -1 and why
 * in reason[FB_TEXT] */
int fb_profile_probe(uint64_t period_ns, char *reason);
/* An app launch (launch.c): a fresh process maps an app's files and reads a sparse, seeded
 * subset of their pages, then stays alive in the background, as a cached app does, until
 * fb_launch_end. The counts are the child's own (getrusage(RUSAGE_SELF)) across its launch. */
struct fb_launch_spec {
	const int *fds;		/* the app's files, open; the child maps each one whole */
	int files;
	uint64_t file_size;	/* bytes of each file, a multiple of the page size */
	uint64_t one_in;	/* each page is read with probability 1/one_in */
	uint64_t seed;		/* the app's seed: every launch of an app reads the same pages */
	uint64_t anon_size;	/* anonymous heap the launch writes first (untimed), kept */
	int64_t deadline_ns;	/* fb_now_ns() time by which the launch must have reported */
};

struct fb_launch_result {
	int status;		/* enum fb_status */
	char error[FB_TEXT];
	int64_t pid;		/* the app's process, alive until fb_launch_end; -1 if none */
	int killed_by;		/* the signal that ended the process during its launch, else 0 */
	int timed_out;		/* the deadline passed first; the process was killed */
	int64_t launch_ns;	/* from before the first mmap to after the last read */
	int64_t pages_touched;
	int64_t faults_minor;
	int64_t faults_major;
	int64_t pages_mapped;	/* file pages present in its page tables after the launch */
	int64_t rss_pages;	/* its resident set (/proc/self/statm) after the launch */
	char mapped_reason[FB_TEXT];
	int folios_read;	/* folio_pages was read (folios.c), else why not in folio_reason */
	int64_t folio_pages[FB_FOLIO_ORDERS];	/* its files' present pages per folio order */
	char folio_reason[FB_TEXT];
};

/* Launches one app; returns 0 when it reported, -1 otherwise (result says why). */
int fb_launch(const struct fb_launch_spec *spec, struct fb_launch_result *result);
/* Kills and reaps a background app; returns the signal that had already ended it (e.g. the
 * OOM killer's SIGKILL), 0 if it was still running, -1 if it could not be reaped. */
int fb_launch_end(int64_t pid);

/* folios.c: fills pages[FB_FOLIO_ORDERS] with the present pages of [addr, addr + size) of the
 * calling process per order of the folio each belongs to; 0, or -1 with the reason in
 * reason[FB_TEXT] (not root, no /proc/kpageflags) */
int fb_folio_orders(void *addr, uint64_t size, int64_t *pages, char *reason);

/* Measures spec; fills results[0 .. spec->mappers-1]. Returns 0, or -1 if setup failed
 * (then results[0] says why). SIGINT, SIGTERM and SIGHUP arriving meanwhile release any
 * blocked fault and end the sample as an error; the previous handlers still see them. */
int fb_run(const struct fb_spec *spec, struct fb_result *results);
/* cdef end */

/* ---- internal interfaces between the native/ files ---- */
#ifdef FB_INTERNAL
#include <pthread.h>
#include <stddef.h>

struct fb_backing_file {
	int fd;			/* -1 for anonymous memory */
	uint64_t size;
	uint64_t unit;		/* the mapping's page size: the huge page size for hugetlb */
	char fs_type[32];
};

/* fill.c: the backing's pages put in the page cache before the measured mapping exists
 * (spec->fill), never through the mapping under test; -1 and errno */
int fb_fill(const struct fb_spec *spec, int fd, uint64_t size);
/* cache hot: the backing mapped, read one byte per unit and unmapped once */
int fb_rehearse(int fd, uint64_t size, uint64_t unit);

/* region.c: create and populate the backing, map it */
int fb_backing_create(const struct fb_spec *spec, struct fb_backing_file *bf, struct fb_result *r);
void fb_backing_destroy(struct fb_backing_file *bf);
/* PTRS_PER_PTE * page size: one page table's span, the largest fault-around window */
uint64_t fb_window_bytes(int64_t page_size);
/* Maps the backing at spec->map_offset past a boundary of that window (of the huge page for
 * hugetlb); *mmap_ns: the mmap call that made the mapping, alone. MAP_FAILED and errno. */
void *fb_map(const struct fb_spec *spec, const struct fb_backing_file *bf, int extra_flags,
	     int64_t *mmap_ns);

/* present.c: what is present in the page cache (mincore) and in the page table (pagemap) */
int64_t fb_resident_pages(void *addr, uint64_t size, int64_t page_size);
/* -1 with the reason in reason[FB_TEXT] if the page table could not be read */
int64_t fb_pages_mapped(void *addr, uint64_t size, int64_t page_size, char *reason);
/* the calling process's resident set (/proc/self/statm), -1 if unreadable */
int64_t fb_process_resident_pages(void);
/* how many mappings this process has (-1 if /proc/self/maps could not be read) */
int64_t fb_mappings(void);
/* Adds one-page mappings until the process has `target`; -1 (r says why) if it cannot */
int fb_pad_mappings(int64_t target, int64_t page_size, struct fb_result *r);

/* tick.c: the timer tick against the timed loop */
/* local timer interrupts so far, summed over the CPUs; -1 with the reason if unknown */
int64_t fb_ticks(char *reason);
/* returns right after the next tick (bounded wait); 0, or -1 if no tick came */
int fb_tick_wait(void);
/* with spec->run_alone, the calling thread SCHED_FIFO (0; -1 and r failed) or back to normal */
int fb_run_alone(const struct fb_spec *spec, struct fb_result *r);
void fb_run_shared(const struct fb_spec *spec);

/* touch.c: the timed loop's plan and the loop itself */
struct fb_plan {
	uint64_t first;		/* byte offsets */
	int64_t step;
	uint64_t count;
	uint32_t *order;	/* FB_RANDOM: page numbers, else NULL */
	int64_t page_size;
};
int fb_plan_build(const struct fb_spec *spec, int64_t page_size, struct fb_plan *plan);
void fb_plan_free(struct fb_plan *plan);
/* Loads (or stores 1 to) one byte per planned page; nothing else is stored: a first store
 * to a page of the mapper (copy-on-write after fork) would be a fault of its own. */
void fb_touch(char *base, const struct fb_plan *plan, int write);

/* measure.c: one mapper's sample */
struct fb_mapper_job {
	const struct fb_spec *spec;
	const struct fb_backing_file *bf;
	struct fb_result *result;
	int index;
	pthread_barrier_t *start;	/* concurrent mappers wait here; NULL otherwise */
};
void fb_measure_mapper(const struct fb_mapper_job *job);

/* mapper_block.c -> mapper_main.c: what an exec'd mapper process needs, in a memfd that fb_run
 * and every mapper process map (MAP_SHARED) */
#define FB_MAPPER_MAGIC 0x6b636f6c62706d66
struct fb_mapper_block {
	uint64_t magic;
	uint64_t length;		/* bytes, results included */
	struct fb_spec spec;		/* its pointers are NULL: they do not survive exec */
	struct fb_backing_file bf;	/* its fd is inherited */
	int barrier_used;		/* concurrent mappers start together at the barrier */
	pthread_barrier_t barrier;
	struct fb_result results[];	/* one per mapper */
};

/* mappers.c: a mapper that never ran because fb_run was interrupted first (then 1) */
int fb_mapper_skipped(struct fb_result *r);
/* mapper_process.c: runs jobs[0 .. n-1] as mapper processes; a job's result gets what the
 * parent sees (not started, killed, died), the mapper's own report is in the block */
void fb_run_processes(struct fb_mapper_job *jobs, int n, int concurrent, int64_t deadline_ns,
		      const struct fb_mapper_block *block, int block_fd);
/* mapper_block.c: the block's life in fb_run, and what it takes back from mapper processes */
void fb_result_init(struct fb_result *r, int64_t page_size, const char *fs_type);
/* a mapper process's slot starts as an error that only its mapper's report replaces */
struct fb_mapper_block *fb_block_create(const struct fb_spec *spec,
					const struct fb_backing_file *bf, int64_t page_size,
					int *fd, struct fb_result *r);
/* copies each mapper's slot into results[i] unless results[i] already failed; a slot with
 * an unknown status or counts outside the spec becomes an error */
void fb_block_collect(const struct fb_mapper_block *block, const struct fb_spec *spec,
		      int64_t page_size, struct fb_result *results);
void fb_block_destroy(struct fb_mapper_block *block, const struct fb_spec *spec, int fd);

/* interrupt.c: SIGINT/SIGTERM/SIGHUP during fb_run */
void fb_interrupt_begin(void);
void fb_interrupt_end(void);	/* may raise a held-back default-action signal */
int fb_interrupted(void);	/* the signal received since fb_interrupt_begin, else 0 */
/* SIG_BLOCK or SIG_UNBLOCK the three (async-signal-safe): a mapper process holds them from
 * fork until its handlers are in place */
void fb_interrupt_mask(int how);
const char *fb_signal_name(int sig);

/* uffd.c: registration and the serving thread */
struct fb_uffd;
/* unit: the page size of the mapping (the huge page size for hugetlb) */
struct fb_uffd *fb_uffd_start(const struct fb_spec *spec, void *addr, uint64_t size,
			      uint64_t unit, int64_t deadline_at, struct fb_result *r);
/* Stops and joins the server; returns 1 if the faults had to be released (deadline or
 * signal). */
int fb_uffd_stop(struct fb_uffd *u, struct fb_result *r);

/* uffd_ops.c: the userfaultfd descriptor and its ioctls */
int fb_uffd_open(void);
uint64_t fb_uffd_offered_features(void);
uint64_t fb_uffd_wanted_features(const struct fb_spec *spec);
/* resolves one page fault message's unit; source: UFFDIO_COPY's source, one unit */
int fb_uffd_serve_fault(int fd, uint64_t flags, uint64_t address, uint64_t unit, int hugetlb,
			const char *source);
/* unregisters the range and wakes every thread blocked in it */
void fb_uffd_release(int fd, void *addr, uint64_t size);

/* counters.c */
int64_t fb_now_ns(void);
struct fb_counters {
	int sw_fd, cycles_fd, instructions_fd, stat_fd;
	int64_t minflt, majflt, nivcsw, steal_ticks;
};
void fb_counters_open(struct fb_counters *c, int perf, struct fb_result *r);
void fb_counters_start(struct fb_counters *c);
void fb_counters_stop(struct fb_counters *c, struct fb_result *r);
void fb_counters_close(struct fb_counters *c);
/* minor + major faults of the calling thread so far */
int64_t fb_thread_faults(void);

/* profile.c: cpu-clock samples of the calling thread (spec->profile_fd >= 0 only) */
struct fb_profiler {
	int fd;
	void *ring;
	size_t ring_len;
	int lost_known;
	uint64_t lost_before;
};
void fb_profile_open(struct fb_profiler *p, const struct fb_spec *spec, struct fb_result *r);
void fb_profile_enable(struct fb_profiler *p, int on);
void fb_profile_flush(struct fb_profiler *p, const struct fb_spec *spec, int mapper, int part,
		      struct fb_result *r);
void fb_profile_close(struct fb_profiler *p);

void fb_fail(struct fb_result *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#endif

#endif
