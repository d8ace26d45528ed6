/* A static probe for the security tests, copied into a container's rootfs.
 *
 * busybox cannot make raw syscalls or hold a /proc race loop, so the tests
 * compile this with gcc -static (as crun's tests/init.c does) and run it:
 *
 *   probe syscalls          one line per syscall the default profile must block:
 *                           "<name> <errno>" (0 when the call succeeded)
 *   probe fds               the open fds of this process, one per line
 *   probe exe-race SECONDS DEV:INO
 *                           until SECONDS pass, scan /proc for runtime processes
 *                           (comm "python*" or "vessel*") and try to open their exe, cwd, root
 *                           and fd/N. A breach is an exe that opens as the file
 *                           DEV:INO (the host interpreter) or an fd above 2 (stdio
 *                           is what an exec'd program keeps). Prints each breach,
 *                           then "seen <processes> opened <breaches>"
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, long ret)
{
    int err = ret < 0 ? errno : 0;
    printf("%s %d\n", name, err);
}

static long try_clone(unsigned long flags)
{
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        waitpid(pid, NULL, 0);
        return 0;
    }
    return -1;
}

static int syscalls(void)
{
    char handle[16] = {0};
    report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
    report("add_key", syscall(SYS_add_key, "user", "vessel-probe", "x", 1, -3));
    report("request_key", syscall(SYS_request_key, "user", "vessel-probe", NULL, 0));
    report("unshare_newns", syscall(SYS_unshare, CLONE_NEWNS));
    report("unshare_newuser", syscall(SYS_unshare, CLONE_NEWUSER));
    report("unshare_newcgroup", syscall(SYS_unshare, CLONE_NEWCGROUP));
    report("unshare_newnet", syscall(SYS_unshare, CLONE_NEWNET));
    report("clone_newns", try_clone(CLONE_NEWNS));
    report("clone_newuser", try_clone(CLONE_NEWUSER));
    report("setns", syscall(SYS_setns, -1, 0));
    report("mount", syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL));
    report("umount2", syscall(SYS_umount2, "/proc", 2 /* MNT_DETACH */));
    report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0));
    report("bpf", syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, NULL, 0));
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    report("finit_module", syscall(SYS_finit_module, -1, "", 0));
    report("delete_module", syscall(SYS_delete_module, "vessel_probe", 0));
    report("swapon", syscall(SYS_swapon, "/nonexistent", 0));
    report("swapoff", syscall(SYS_swapoff, "/nonexistent"));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    report("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", 0));
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
    report("clock_settime", syscall(SYS_clock_settime, 12345, NULL));
    report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
    report("syslog", syscall(SYS_syslog, 10 /* SIZE_BUFFER */, NULL, 0));
    report("quotactl", syscall(SYS_quotactl, 0, NULL, 0, NULL));
    report("sethostname", syscall(SYS_sethostname, "x", 1));
    report("socket_alg", syscall(SYS_socket, 38 /* AF_ALG */, SOCK_SEQPACKET, 0));
    report("clone3", syscall(SYS_clone3, NULL, 0));
    return 0;
}

static int fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *entry;
    if (dir == NULL) {
        perror("opendir /proc/self/fd");
        return 1;
    }
    while ((entry = readdir(dir)) != NULL) {
        char link[4096];
        char path[64];
        ssize_t n;
        if (entry->d_name[0] == '.' || atoi(entry->d_name) == dirfd(dir))
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        n = readlink(path, link, sizeof link - 1);
        link[n < 0 ? 0 : n] = 0;
        printf("%s %s\n", entry->d_name, link);
    }
    closedir(dir);
    return 0;
}

static int is_runtime(const char *pid)
{
    char path[64], comm[64] = {0};
    int fd, n;
    snprintf(path, sizeof path, "/proc/%s/comm", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, comm, sizeof comm - 1);
    close(fd);
    return n > 0 && (strncmp(comm, "python", 6) == 0 || strncmp(comm, "vessel", 6) == 0);
}

static dev_t host_dev;
static ino_t host_ino;

/* 1 if `path` opens and is a breach: the host file, or any object when `any` */
static int try_open(const char *path, int flags, int any)
{
    struct stat st;
    int breach;
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return 0;
    breach = any || (fstat(fd, &st) == 0 && st.st_dev == host_dev && st.st_ino == host_ino);
    if (breach)
        printf("opened %s flags=%#x\n", path, flags);
    close(fd);
    return breach;
}

static int exe_race(double seconds, const char *host_file)
{
    unsigned long long dev, ino;
    if (sscanf(host_file, "%llu:%llu", &dev, &ino) != 2)
        return 2;
    host_dev = dev;
    host_ino = ino;
    struct timespec start, now;
    long seen = 0, opened = 0;
    pid_t self = getpid();
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        DIR *proc;
        struct dirent *entry;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec + (now.tv_nsec - start.tv_nsec) / 1e9 > seconds)
            break;
        proc = opendir("/proc");
        if (proc == NULL)
            return 1;
        while ((entry = readdir(proc)) != NULL) {
            char path[128];
            DIR *fds;
            struct dirent *fd;
            static const char *links[] = {"exe", "cwd", "root"};
            if (entry->d_name[0] < '1' || entry->d_name[0] > '9' || atoi(entry->d_name) == self)
                continue;
            if (!is_runtime(entry->d_name))
                continue;
            seen++;
            for (int i = 0; i < 3; i++) {
                snprintf(path, sizeof path, "/proc/%s/%s", entry->d_name, links[i]);
                opened += try_open(path, O_PATH, 0);
            }
            snprintf(path, sizeof path, "/proc/%s/exe", entry->d_name);
            opened += try_open(path, O_RDONLY, 0);
            opened += try_open(path, O_WRONLY, 0);
            snprintf(path, sizeof path, "/proc/%s/fd", entry->d_name);
            fds = opendir(path);
            if (fds == NULL)
                continue;
            while ((fd = readdir(fds)) != NULL) {
                if (fd->d_name[0] == '.' || atoi(fd->d_name) <= 2)
                    continue;
                snprintf(path, sizeof path, "/proc/%s/fd/%s", entry->d_name, fd->d_name);
                opened += try_open(path, O_PATH, 1);
            }
            closedir(fds);
        }
        closedir(proc);
    }
    printf("seen %ld opened %ld\n", seen, opened);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "syscalls") == 0)
        return syscalls();
    if (argc >= 2 && strcmp(argv[1], "fds") == 0)
        return fds();
    if (argc >= 4 && strcmp(argv[1], "exe-race") == 0)
        return exe_race(atof(argv[2]), argv[3]);
    fprintf(stderr, "usage: probe syscalls | fds | exe-race SECONDS DEV:INO\n");
    return 2;
}
