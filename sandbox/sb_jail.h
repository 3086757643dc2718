/*
 * sb_jail.h - what locks a sandbox child in: its file descriptors, the lifeline, resource limits,
 * PR_SET_NO_NEW_PRIVS and the seccomp allow-list (wk_sandbox.h describes the child's world).
 *
 * sandbox/main.c calls sb_jail_prepare, warms up, then sb_jail_lock, once each, before it greets
 * its parent. Both fail with one line in errstr; the child then exits without serving.
 */
#ifndef SB_JAIL_H
#define SB_JAIL_H

#include <stddef.h>
#include "cm_compiler.h"

/*
 * Closes every descriptor above the lifeline, checks that fd 3 is a socket, arms the lifeline
 * (SIGIO when the worker's end closes; fails if it already has), and sets RLIMIT_CORE to 0 and
 * RLIMIT_AS to a backstop above heap_max (0 = no cap; not under AddressSanitizer, whose shadow
 * memory needs terabytes of address space).
 *
 * Sanitizer builds differ in three ways: sigaltstack is allowed (AddressSanitizer's longjmp hook),
 * open, openat, ioctl and readlink fail with ENOSYS instead of killing (so a report comes out
 * whole), and LeakSanitizer is off in the child (it needs ptrace).
 */
int sb_jail_prepare(size_t heap_max, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/*
 * PR_SET_NO_NEW_PRIVS and the seccomp filter. Irreversible: afterwards any system call not on
 * the list in sb_jail.c kills the process with SIGSYS.
 */
int sb_jail_lock(char *errstr, size_t errstr_size) CM_MUSTCHECK;

/*
 * For tests (botjobs-sandbox --selftest=NAME): makes one forbidden system call, NAME one of
 * "open", "socket", "execve", "fork", "kill", "ptrace", "mmap-exec", "read-stderr". Returns only if
 * the filter let it through, with its result (-1 and errno set when it failed, as the sanitizer
 * builds make open fail with ENOSYS instead of killing), or -1 with EINVAL for an unknown NAME.
 */
int sb_jail_try(const char *name);

#endif
