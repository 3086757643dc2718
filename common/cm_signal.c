/*
 * cm_signal.c - see cm_signal.h. The handler only counts; the second signal calls _exit(2).
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cm_signal.h"

static volatile sig_atomic_t stop_count;

static void on_stop(int sig)
{
	(void)sig;
	if (stop_count++ > 0) {
		static const char msg[] = "second signal: exiting now\n";
		ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
		(void)w;
		_exit(2);
	}
}

void cm_signal_setup(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

int cm_signal_stopping(void)
{
	return stop_count > 0;
}

void cm_signal_request_stop(void)
{
	if (stop_count == 0)
		stop_count = 1;
}
