/*
 * interrupt: SIGINT, SIGTERM and SIGHUP during fb_run. Python's own handler only sets a flag
 * that the interpreter looks at between bytecodes, which never happens while the main thread
 * is inside fb_run (worst: blocked in an unserved userfaultfd fault until the deadline).
 * These handlers record the signal so the uffd server releases the range and the sample ends
 * as interrupted, then chain to the handler they replaced, so Python still sees the signal
 * when fb_run returns. A signal whose previous disposition was the default one (terminate)
 * is raised again once fb_run has cleaned up: no mapper, thread or file outlives it.
 */
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static const int watched[] = { SIGINT, SIGTERM, SIGHUP };
#define WATCHED (sizeof(watched) / sizeof(watched[0]))

static struct sigaction previous[WATCHED];
static volatile sig_atomic_t pending;	/* the first watched signal received, else 0 */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int installs;			/* fb_run may be called from several threads */

static void on_signal(int sig, siginfo_t *info, void *context)
{
	if (!pending)
		pending = sig;
	for (size_t i = 0; i < WATCHED; i++) {
		if (watched[i] != sig)
			continue;
		if (previous[i].sa_flags & SA_SIGINFO)
			previous[i].sa_sigaction(sig, info, context);
		else if (previous[i].sa_handler != SIG_DFL && previous[i].sa_handler != SIG_IGN)
			previous[i].sa_handler(sig);
	}
}

void fb_interrupt_begin(void)
{
	struct sigaction action;

	pthread_mutex_lock(&install_lock);
	if (installs++ == 0) {
		pending = 0;
		memset(&action, 0, sizeof(action));
		action.sa_sigaction = on_signal;
		action.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigfillset(&action.sa_mask);
		for (size_t i = 0; i < WATCHED; i++) {
			sigaction(watched[i], NULL, &previous[i]);
			if (previous[i].sa_handler != SIG_IGN)	/* ignored stays ignored */
				sigaction(watched[i], &action, NULL);
		}
	}
	pthread_mutex_unlock(&install_lock);
}

void fb_interrupt_end(void)
{
	int sig = 0;

	pthread_mutex_lock(&install_lock);
	if (--installs == 0) {
		for (size_t i = 0; i < WATCHED; i++) {
			sigaction(watched[i], &previous[i], NULL);
			if (watched[i] == pending && !(previous[i].sa_flags & SA_SIGINFO) &&
			    previous[i].sa_handler == SIG_DFL)
				sig = pending;
		}
		pending = 0;
	}
	pthread_mutex_unlock(&install_lock);
	if (sig)
		raise(sig);	/* the default action the signal was held back from */
}

void fb_interrupt_mask(int how)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < WATCHED; i++)
		sigaddset(&set, watched[i]);
	sigprocmask(how, &set, NULL);
}

int fb_interrupted(void)
{
	return pending;
}

const char *fb_signal_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" :
	       "a signal";
}
