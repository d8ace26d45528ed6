#!/usr/bin/env python3
"""Regenerate src/vessel/runtime/data/seccomp_default.json: Docker's default seccomp profile.

Docker keeps its profile in a format with per-capability and per-arch
`includes`/`excludes` that the engine resolves for each container.  This
script writes that resolution for an x86_64 host (x86_64, i386 and x32 ABIs)
and Docker's 14 default capabilities, as an OCI `linux.seccomp` object:

- default action ERRNO(EPERM), the common allowlist below;
- socket() for every family but AF_ALG (38) and AF_VSOCK (40);
- personality() only for PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32
  and the 0xffffffff query;
- ptrace and process_vm_readv/writev (Docker allows them on kernels >= 4.8);
- chroot (CAP_SYS_CHROOT is a default capability);
- clone() without namespace flags, clone3() -> ENOSYS so libc falls back to
  clone() (both are what a container without CAP_SYS_ADMIN gets);
- arch_prctl and modify_ldt (x86 only).

Everything else - keyctl, add_key, request_key, mount, umount2, unshare,
setns, bpf, kexec_*, init_module, open_by_handle_at, io_uring_*,
userfaultfd, reboot, ... - falls to the default and fails with EPERM.
Facts from moby/profiles seccomp/default.json (2026-06).

Usage: scripts/gen_seccomp_default.py [output-file]
"""

import json
import os
import sys

ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat
dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group
faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat
fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64
futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage
getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr
getxattrat
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc
kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listmount listxattr listxattrat llistxattr _llseek lremovexattr
lseek lsetxattr lstat lstat64
madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod
mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2
read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall
riscv_hwprobe rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity
sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget
semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto
setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer
setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32
setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
set_tid_address setuid setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown
sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat
stat64 statfs statfs64 statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo
tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64
ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes
vfork vmsplice wait4 waitid waitpid write writev
""".split()

# Allowed on kernels >= 4.8, where seccomp runs after ptrace and cannot be bypassed by it.
PTRACE = ["process_vm_readv", "process_vm_writev", "ptrace"]
# Unlocked by CAP_SYS_CHROOT, one of Docker's default capabilities.
DEFAULT_CAP_EXTRAS = ["chroot"]
X86_ONLY = ["arch_prctl", "modify_ldt"]

AF_ALG = 38
AF_VSOCK = 40
PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
ENOSYS = 38


def arg(index, op, value):
    return {"index": index, "value": value, "op": f"SCMP_CMP_{op}"}


def allow(names, args=None):
    rule = {"names": names, "action": "SCMP_ACT_ALLOW"}
    if args:
        rule["args"] = args
    return rule


def profile():
    names = sorted(set(ALLOWED + PTRACE + DEFAULT_CAP_EXTRAS + X86_ONLY))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            allow(names),
            allow(["socket"], [arg(0, "LT", AF_ALG)]),
            allow(["socket"], [arg(0, "EQ", AF_ALG + 1)]),
            allow(["socket"], [arg(0, "GT", AF_VSOCK)]),
            *(allow(["personality"], [arg(0, "EQ", value)]) for value in PERSONALITIES),
            allow(["clone"], [{"index": 0, "value": NAMESPACE_FLAGS, "valueTwo": 0,
                               "op": "SCMP_CMP_MASKED_EQ"}]),
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
        ],
    }


def main(argv):
    out = argv[1] if len(argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "src", "vessel", "runtime", "data", "seccomp_default.json")
    with open(out, "w") as fh:
        json.dump(profile(), fh, indent=1)
        fh.write("\n")
    print(f"{out}: {len(profile()['syscalls'][0]['names'])} syscalls allowed outright")


if __name__ == "__main__":
    main(sys.argv)
