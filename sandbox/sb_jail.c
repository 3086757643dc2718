/*
 * sb_jail.c - descriptors, lifeline, limits and the seccomp allow-list of a sandbox child. See sb_jail.h.
 *
 * The allow-list is what the frame loop, MuJS, jansson and glibc's malloc use once warmed up
 * (sandbox/main.c runs a request that touches the lazily initialized parts first): reads on the
 * socket, writes on it and on stderr, memory management without PROT_EXEC, clocks, random bytes,
 * futex, signals to itself (abort) and exit. Anything else - open, socket, connect, execve,
 * fork/clone, kill of another process, ptrace - kills the process (SIGSYS), which the parent
 * reports as a crash with "a forbidden system call".
 */
#define _GNU_SOURCE /* close_range, F_SETOWN */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sb_jail.h"
#include "wk_sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#define SB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SB_ASAN 1
#endif
#endif

int sb_jail_prepare(size_t heap_max, char *errstr, size_t errstr_size)
{
	struct stat st;
	close_range(WK_SANDBOX_LIFELINE + 1, ~0U, 0);
	if (fstat(WK_SANDBOX_FD, &st) == -1 || !S_ISSOCK(st.st_mode)) {
		snprintf(errstr, errstr_size, "fd %d is not a socket: botjobs-sandbox is started by botjobs-worker",
			 WK_SANDBOX_FD);
		return -1;
	}

	/* The lifeline: nobody ever writes to it; when the worker's end closes, the kernel sends SIGIO
	 * (default action: terminate), even to a child spinning in a script. */
	signal(SIGIO, SIG_DFL);
	if (fcntl(WK_SANDBOX_LIFELINE, F_SETOWN, getpid()) == -1 ||
	    fcntl(WK_SANDBOX_LIFELINE, F_SETFL, O_ASYNC | O_NONBLOCK) == -1) {
		snprintf(errstr, errstr_size, "lifeline (fd %d): %s", WK_SANDBOX_LIFELINE, strerror(errno));
		return -1;
	}
	char b;
	if (read(WK_SANDBOX_LIFELINE, &b, 1) == 0) { /* closed before we armed it */
		snprintf(errstr, errstr_size, "the worker is gone");
		return -1;
	}

	struct rlimit none = {0, 0};
	if (setrlimit(RLIMIT_CORE, &none) == -1) {
		snprintf(errstr, errstr_size, "RLIMIT_CORE: %s", strerror(errno));
		return -1;
	}
#ifndef SB_ASAN
	if (heap_max) {
		/* The MuJS allocator stops a script at heap_max; this stops the rest (the request, the reply,
		 * jansson's copies) well before the machine does. */
		rlim_t as = (rlim_t)heap_max + 4 * (rlim_t)WK_SANDBOX_FRAME_MAX + ((rlim_t)256 << 20);
		struct rlimit lim = {as, as};
		if (setrlimit(RLIMIT_AS, &lim) == -1) {
			snprintf(errstr, errstr_size, "RLIMIT_AS: %s", strerror(errno));
			return -1;
		}
	}
#else
	(void)heap_max;
#endif
	return 0;
}

#define CMP(...) ((struct scmp_arg_cmp[]){__VA_ARGS__})
#define N_CMP(a) ((unsigned)(sizeof(a) / sizeof((a)[0])))

struct rule {
	int nr;
	unsigned n;
	const struct scmp_arg_cmp *cmp;
};

int sb_jail_lock(char *errstr, size_t errstr_size)
{
	const scmp_datum_t self = (scmp_datum_t)getpid();
	const struct scmp_arg_cmp fd_sock[] = {SCMP_A0(SCMP_CMP_EQ, WK_SANDBOX_FD)};
	const struct scmp_arg_cmp fd_out[] = {SCMP_A0(SCMP_CMP_EQ, STDOUT_FILENO)};
	const struct scmp_arg_cmp fd_err[] = {SCMP_A0(SCMP_CMP_EQ, STDERR_FILENO)};
	const struct scmp_arg_cmp no_exec[] = {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)};
	const struct scmp_arg_cmp to_self[] = {SCMP_A0(SCMP_CMP_EQ, self)};
	const struct rule rules[] = {
		/* the frame loop */
		{SCMP_SYS(read), 1, fd_sock},
		{SCMP_SYS(write), 1, fd_sock},
		{SCMP_SYS(sendto), 1, fd_sock},
		{SCMP_SYS(write), 1, fd_err},
		{SCMP_SYS(write), 1, fd_out}, /* /dev/null: a stray printf must not kill */
		/* memory */
		{SCMP_SYS(brk), 0, NULL},
		{SCMP_SYS(mmap), 1, no_exec},
		{SCMP_SYS(mprotect), 1, no_exec},
		{SCMP_SYS(munmap), 0, NULL},
		{SCMP_SYS(mremap), 0, NULL},
		{SCMP_SYS(madvise), 0, NULL},
		/* clocks, randomness (UUIDs), locks */
		{SCMP_SYS(clock_gettime), 0, NULL},
		{SCMP_SYS(gettimeofday), 0, NULL},
		{SCMP_SYS(time), 0, NULL},
		{SCMP_SYS(getrandom), 0, NULL},
		{SCMP_SYS(futex), 0, NULL},
		/* signals to itself (abort), the end */
		{SCMP_SYS(rt_sigreturn), 0, NULL},
		{SCMP_SYS(rt_sigprocmask), 0, NULL},
		{SCMP_SYS(getpid), 0, NULL},
		{SCMP_SYS(gettid), 0, NULL},
		{SCMP_SYS(tgkill), 1, to_self},
		{SCMP_SYS(restart_syscall), 0, NULL},
		{SCMP_SYS(exit), 0, NULL},
		{SCMP_SYS(exit_group), 0, NULL},
	};
	scmp_filter_ctx ctx = NULL;
	int rc;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		snprintf(errstr, errstr_size, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx) {
		snprintf(errstr, errstr_size, "seccomp_init failed");
		return -1;
	}
	for (size_t i = 0; i < CM_ARRAY_LEN(rules); i++) {
		rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, rules[i].nr, rules[i].n, rules[i].cmp);
		if (rc < 0) {
			snprintf(errstr, errstr_size, "seccomp rule %s: %s",
				 seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, rules[i].nr), strerror(-rc));
			goto err;
		}
	}
#ifdef SB_ASAN
	/* AddressSanitizer's longjmp hook (MuJS throws with longjmp) asks for the signal stack. */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sigaltstack), 0);
	if (rc < 0) {
		snprintf(errstr, errstr_size, "seccomp rule: %s", strerror(-rc));
		goto err;
	}
	/* A sanitizer report opens /proc/self/maps and asks isatty(): let those fail instead of killing
	 * the child in the middle of the report (the report then names modules and offsets). */
	static const int report_calls[] = {SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(ioctl), SCMP_SYS(readlink),
					   SCMP_SYS(readlinkat)};
	for (size_t i = 0; i < CM_ARRAY_LEN(report_calls); i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), report_calls[i], 0);
		if (rc < 0) {
			snprintf(errstr, errstr_size, "seccomp rule: %s", strerror(-rc));
			goto err;
		}
	}
#endif
	rc = seccomp_load(ctx);
	if (rc < 0) {
		snprintf(errstr, errstr_size, "seccomp_load: %s", strerror(-rc));
		goto err;
	}
	seccomp_release(ctx);
	return 0;
err:
	seccomp_release(ctx);
	return -1;
}

#ifdef SB_ASAN
/* LeakSanitizer stops the world with clone and ptrace, which the filter forbids: the child's code is
 * leak-checked in-process instead (the unit tests run wk_js_run and cm_frame under LSan). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

int sb_jail_try(const char *name)
{
	char buf[16];
	if (strcmp(name, "open") == 0)
		return (int)syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
	if (strcmp(name, "socket") == 0)
		return socket(AF_INET, SOCK_STREAM, 0);
	if (strcmp(name, "execve") == 0) {
		char *argv[] = {(char *)"true", NULL};
		return execve("/bin/true", argv, argv + 1);
	}
	if (strcmp(name, "fork") == 0)
		return (int)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (strcmp(name, "kill") == 0)
		return kill(1, 0);
	if (strcmp(name, "ptrace") == 0)
		return (int)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	if (strcmp(name, "mmap-exec") == 0)
		return mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1
														 : 0;
	if (strcmp(name, "read-stderr") == 0)
		return (int)read(STDERR_FILENO, buf, sizeof(buf));
	errno = EINVAL;
	return -1;
}
