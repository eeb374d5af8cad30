// Sandbox attack suite: run as a native wfsandbox plugin; argv[1] selects tests ("all" = every safe one).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define R(name, expr)                                                                          \
    do {                                                                                       \
        errno = 0;                                                                             \
        long _r = (long)(expr);                                                                \
        printf("%-28s rc=%ld errno=%d (%s)\n", name, _r, _r < 0 ? errno : 0,                     \
               _r < 0 ? strerror(errno) : "ok");                                               \
        fflush(stdout);                                                                        \
    } while (0)

static void cat(const char *path, int max) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("cat %s: %s\n", path, strerror(errno));
        return;
    }
    char buf[8192];
    int n = read(fd, buf, sizeof buf - 1 < (unsigned)max ? sizeof buf - 1 : max);
    close(fd);
    if (n < 0) {
        printf("cat %s: read %s\n", path, strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++)
        if (buf[i] == 0) buf[i] = ' ';
    buf[n] = 0;
    printf("cat %s (%d bytes):\n%s\n", path, n, buf);
}

static void ls(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        printf("ls %s: %s\n", path, strerror(errno));
        return;
    }
    printf("ls %s:", path);
    struct dirent *e;
    while ((e = readdir(d))) printf(" %s", e->d_name);
    printf("\n");
    closedir(d);
}

static long int80(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

static long raw_syscall_nr64(unsigned long nr) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr) : "rcx", "r11", "memory");
    return ret;
}

static void t_seccomp(void) {
    R("x32 getpid", syscall(0x40000000 | 39));
    R("getpid nr|1<<32 (raw)", raw_syscall_nr64(0x100000027UL));
    R("nr 0xffffffff", raw_syscall_nr64(0xffffffffUL));
    R("unshare(NEWUSER)", unshare(CLONE_NEWUSER));
    R("unshare(NEWNS)", unshare(CLONE_NEWNS));
    R("unshare(0)", unshare(0));
    R("setns(-1,0)", syscall(SYS_setns, 0, 0));
    R("clone(NEWUSER)", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    R("clone(NEWUSER<<32 junk)", syscall(SYS_clone, (1UL << 40) | CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    R("clone(NEWTIME 0x80)", -1);
    struct clone_args ca = {0};
    ca.flags = CLONE_NEWUSER;
    ca.exit_signal = SIGCHLD;
    R("clone3(NEWUSER)", syscall(SYS_clone3, &ca, sizeof ca));
    R("ptrace(TRACEME)", syscall(SYS_ptrace, 0, 0, 0, 0));
    struct iovec l = {0}, r = {0};
    R("process_vm_readv(1)", syscall(SYS_process_vm_readv, 1, &l, 1, &r, 1, 0));
    R("pidfd_open(1)", syscall(SYS_pidfd_open, 1, 0));
    R("pidfd_getfd", syscall(SYS_pidfd_getfd, 0, 0, 0));
    R("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, 0, 0));
    R("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/", 0, 0, 0));
    R("io_uring_setup", syscall(SYS_io_uring_setup, 8, 0));
    R("fsopen(tmpfs)", syscall(SYS_fsopen, "tmpfs", 0));
    R("open_tree(/)", syscall(SYS_open_tree, AT_FDCWD, "/", 1));
    R("mount tmpfs", syscall(SYS_mount, "x", "/tmp", "tmpfs", 0, 0));
    R("umount2(/plugin)", syscall(SYS_umount2, "/plugin", 2));
    R("chroot", syscall(SYS_chroot, "/tmp"));
    R("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    R("personality(0xffffffff)", syscall(SYS_personality, 0xffffffff));
    R("personality(READ_IMPLIES_EXEC)", syscall(SYS_personality, 0x0400000));
    R("memfd_create", syscall(SYS_memfd_create, "x", 0));
    R("bpf", syscall(SYS_bpf, 0, 0, 0));
    R("perf_event_open", syscall(SYS_perf_event_open, 0, 0, -1, -1, 0));
    R("userfaultfd", syscall(SYS_userfaultfd, 0));
    R("keyctl", syscall(SYS_keyctl, 0, 0));
    R("seccomp(GET_NOTIF_SIZES)", syscall(SYS_seccomp, 3, 0, 0));
    R("mknod /tmp/n", syscall(SYS_mknod, "/tmp/n", S_IFIFO | 0644, 0));
    R("mknodat /tmp/n", syscall(SYS_mknodat, AT_FDCWD, "/tmp/n", S_IFIFO | 0644, 0));
    R("symlink /tmp/s", symlink("/", "/tmp/s"));
    R("link", link("/plugin/attack", "/tmp/hl"));
    R("chmod", syscall(SYS_chmod, "/tmp", 0777));
    R("fchmodat", syscall(SYS_fchmodat, AT_FDCWD, "/tmp", 0777));
    R("chown", syscall(SYS_chown, "/tmp", 0, 0));
    R("setuid(0)", syscall(SYS_setuid, 0));
    R("setsid", syscall(SYS_setsid));
    R("setpgid", syscall(SYS_setpgid, 0, 0));
    R("vfork", -1);
    R("execveat", syscall(SYS_execveat, AT_FDCWD, "/plugin/attack", 0, 0, 0));
    R("shmget", syscall(SYS_shmget, 0, 4096, 01000));
    R("msgget", syscall(SYS_msgget, 0, 01000));
    R("mq_open", syscall(SYS_mq_open, "x", O_CREAT | O_RDWR, 0600, 0));
    R("sched_setaffinity", syscall(SYS_sched_setaffinity, 0, 0, 0));
    R("modify_ldt", syscall(SYS_modify_ldt, 0, 0, 0));
    R("ioperm", syscall(SYS_ioperm, 0, 1, 1));
    R("kcmp", syscall(SYS_kcmp, 1, 1, 0, 0, 0));
    R("rt_tgsigqueueinfo", syscall(SYS_rt_tgsigqueueinfo, 1, 1, 0, 0));
    R("landlock_create_ruleset", syscall(SYS_landlock_create_ruleset, 0, 0, 1));
    R("socket AF_INET", socket(AF_INET, SOCK_STREAM, 0));
    R("socket AF_INET6", socket(AF_INET6, SOCK_DGRAM, 0));
    R("socket AF_NETLINK", socket(AF_NETLINK, SOCK_RAW, 0));
    R("socket AF_PACKET", socket(AF_PACKET, SOCK_RAW, 0));
    R("socket AF_VSOCK", socket(40, SOCK_STREAM, 0));
    R("socket (1<<32)|AF_INET", syscall(SYS_socket, (1UL << 32) | AF_INET, SOCK_STREAM, 0));
    R("socket AF_UNIX", socket(AF_UNIX, SOCK_STREAM, 0));
    R("socketpair AF_INET", syscall(SYS_socketpair, AF_INET, SOCK_STREAM, 0, 0));
    int sv[2];
    R("socketpair AF_NETLINK", syscall(SYS_socketpair, AF_NETLINK, SOCK_RAW, 0, sv));
    R("socketpair AF_UNIX", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    char c = 'x';
    for (int fd = 0; fd < 4; fd++) {
        char n[64];
        snprintf(n, sizeof n, "ioctl(%d,TIOCSTI)", fd);
        R(n, ioctl(fd, TIOCSTI, &c));
        snprintf(n, sizeof n, "ioctl(%d,TIOCSTI|hi)", fd);
        R(n, syscall(SYS_ioctl, fd, 0xdead00000000UL | TIOCSTI, &c));
    }
    R("prctl(PR_SET_MM)", prctl(PR_SET_MM, PR_SET_MM_START_CODE, 0, 0, 0));
    R("prctl(CAP_AMBIENT_RAISE)", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 21, 0, 0));
    R("prctl(SET_DUMPABLE 1)", prctl(PR_SET_DUMPABLE, 1));
    R("prctl(SET_SECCOMP strict?)", 0);
    R("prctl(CHILD_SUBREAPER)", prctl(PR_SET_CHILD_SUBREAPER, 1));
    R("prctl(SET_SECUREBITS 0)", prctl(PR_SET_SECUREBITS, 0));
    R("prctl(CAPBSET_READ 21)", prctl(PR_CAPBSET_READ, 21));
    R("prctl(GET_SECCOMP)", prctl(PR_GET_SECCOMP));
    R("prctl(GET_NO_NEW_PRIVS)", prctl(PR_GET_NO_NEW_PRIVS));
}

static void t_int80(void) {
    printf("int 0x80 getpid (i386 nr 20) ...\n");
    fflush(stdout);
    long r = int80(20, 0, 0, 0);
    printf("SURVIVED int80 getpid = %ld\n", r);
    fflush(stdout);
}

static void t_int80_fork(void) {
    pid_t p = fork();
    if (p == 0) {
        int80(20, 0, 0, 0);
        _exit(42);
    }
    int st;
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st))
        printf("int80 child killed by signal %d\n", WTERMSIG(st));
    else
        printf("int80 child exited %d\n", WEXITSTATUS(st));
    printf("parent still alive after child int80\n");
}

static void t_fs(void) {
    ls("/");
    ls("/proc");
    ls("/dev");
    ls("/tmp");
    ls("/plugin");
    ls("/opt/wfsandbox/python");
    ls("/usr");
    ls("/usr/bin");
    ls("/proc/1");
    cat("/proc/1/cmdline", 200);
    cat("/proc/1/environ", 400);
    cat("/proc/self/status", 4000);
    cat("/proc/self/mountinfo", 4000);
    cat("/proc/self/cgroup", 400);
    cat("/proc/self/uid_map", 200);
    cat("/proc/self/setgroups", 200);
    cat("/proc/self/limits", 2000);
    cat("/proc/sys/kernel/hostname", 200);
    cat("/proc/cpuinfo", 100);
    cat("/proc/meminfo", 100);
    cat("/proc/kcore", 10);
    cat("/etc/passwd", 100);
    cat("/etc/shadow", 100);
    char buf[512];
    ssize_t n;
    n = readlink("/proc/1/root", buf, sizeof buf - 1);
    printf("readlink /proc/1/root = %.*s (%zd)\n", (int)(n < 0 ? 0 : n), buf, n);
    n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    printf("readlink /proc/self/exe = %.*s (%zd)\n", (int)(n < 0 ? 0 : n), buf, n);
    n = readlink("/proc/self/cwd", buf, sizeof buf - 1);
    printf("readlink /proc/self/cwd = %.*s (%zd)\n", (int)(n < 0 ? 0 : n), buf, n);
    for (int fd = 0; fd < 300; fd++) {
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        n = readlink(p, buf, sizeof buf - 1);
        if (n >= 0) printf("fd %d -> %.*s flags=%x\n", fd, (int)n, buf, fcntl(fd, F_GETFD));
    }
    R("open /proc/1/root/.. dir", open("/proc/1/root/..", O_RDONLY | O_DIRECTORY));
    R("write /plugin/x", open("/plugin/x", O_CREAT | O_WRONLY, 0644));
    R("write /x", open("/x", O_CREAT | O_WRONLY, 0644));
    R("mkdir /y", mkdir("/y", 0755));
    R("write /dev/x", open("/dev/x", O_CREAT | O_WRONLY, 0644));
    R("mkdir /dev/d", mkdir("/dev/d", 0755));
    R("rename /dev/null", rename("/dev/null", "/dev/nul2"));
    R("unlink /dev/zero", unlink("/dev/zero"));
    R("unlink /dev/fd", unlink("/dev/fd"));
    R("write /opt/.../wfplugin.py", open("/opt/wfsandbox/python/wfplugin.py", O_WRONLY));
    R("fchmod sdk", ({ int f = open("/opt/wfsandbox/python/wfplugin.py", O_RDONLY); fchmod(f, 0777); }));
    R("write /tmp/f", open("/tmp/f", O_CREAT | O_WRONLY, 0644));
    R("write /proc/self/attr?", open("/proc/self/oom_score_adj", O_WRONLY));
    R("write /proc/1/mem", open("/proc/1/mem", O_RDWR));
    R("open /proc/self/exe rw", open("/proc/self/exe", O_RDWR));
    R("open /usr/lib/x86_64-linux-gnu/libc.so.6 rw", open("/usr/lib/x86_64-linux-gnu/libc.so.6", O_RDWR));
    R("open /dev/full rw", open("/dev/full", O_RDWR));
    R("open /dev/tty", open("/dev/tty", O_RDWR));
    R("open /dev/ptmx", open("/dev/ptmx", O_RDWR));
    R("chdir /proc/1/cwd/..", chdir("/proc/self/root/../../.."));
    getcwd(buf, sizeof buf);
    printf("cwd=%s\n", buf);
    ls(".");
}

static void t_unix(const char *abs) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    a.sun_path[0] = 0;
    strncpy(a.sun_path + 1, abs, sizeof a.sun_path - 2);
    R("connect abstract", connect(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abs)));
    close(s);
    s = socket(AF_UNIX, SOCK_DGRAM, 0);
    R("sendto abstract dgram", sendto(s, "x", 1, 0, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abs)));
    // bind an abstract name in the sandbox
    int b = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un m = {.sun_family = AF_UNIX};
    strcpy(m.sun_path + 1, "wfatk-inside");
    R("bind abstract inside", bind(b, (struct sockaddr *)&m, offsetof(struct sockaddr_un, sun_path) + 13));
    R("listen", listen(b, 1));
    R("bind fs socket /tmp/s", ({ int q = socket(AF_UNIX, SOCK_STREAM, 0); struct sockaddr_un z = {.sun_family = AF_UNIX}; strcpy(z.sun_path, "/tmp/s"); bind(q, (struct sockaddr *)&z, sizeof z); }));
    const char *paths[] = {"/run/systemd/private", "/var/run/docker.sock", "/run/dbus/system_bus_socket", "/tmp/.X11-unix/X0", "/dev/log", 0};
    for (int i = 0; paths[i]; i++) {
        int q = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un z = {.sun_family = AF_UNIX};
        strcpy(z.sun_path, paths[i]);
        R(paths[i], connect(q, (struct sockaddr *)&z, sizeof z));
        close(q);
    }
    sleep(1);
}

static void t_signals(void) {
    R("kill(-1, 0)", kill(-1, 0));
    R("kill(2, 0)", kill(2, 0));
    R("kill(0, 0)", kill(0, 0));
    R("getppid", getppid());
    R("getpgrp", getpgrp());
    R("getsid", getsid(0));
    R("fcntl F_SETOWN -1", fcntl(3, F_SETOWN, -1));
}

static void t_survive(void) {
    pid_t p = fork();
    if (p == 0) {
        if (fork() == 0) {
            signal(SIGHUP, SIG_IGN);
            signal(SIGTERM, SIG_IGN);
            for (;;) pause();
        }
        _exit(0);
    }
    waitpid(p, 0, 0);
    printf("grandchild left running; init exiting\n");
}

static void t_tmpfill(long mb) {
    int fd = open("/tmp/fill", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    static char buf[1 << 20];
    memset(buf, 'A', sizeof buf);
    long i;
    for (i = 0; i < mb; i++) {
        if (write(fd, buf, sizeof buf) != sizeof buf) {
            printf("tmp write stopped at %ld MiB: %s\n", i, strerror(errno));
            break;
        }
    }
    printf("tmp wrote %ld MiB\n", i);
    fflush(stdout);
}

static void t_multi_tmpfill(long mb_each) {
    // several files, each below FSIZE
    static char buf[1 << 20];
    memset(buf, 'B', sizeof buf);
    long total = 0;
    for (int f = 0; f < 8; f++) {
        char p[64];
        snprintf(p, sizeof p, "/tmp/f%d", f);
        int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        for (long i = 0; i < mb_each; i++) {
            if (write(fd, buf, sizeof buf) != sizeof buf) {
                printf("file %d stopped at %ld MiB: %s\n", f, i, strerror(errno));
                goto out;
            }
            total++;
        }
        close(fd);
    }
out:
    printf("total tmp written %ld MiB\n", total);
    fflush(stdout);
}

static void t_anon(long mb) {
    long i;
    for (i = 0; i < mb; i++) {
        char *p = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("mmap failed at %ld\n", i);
            break;
        }
        memset(p, 1, 1 << 20);
        if (i % 8 == 0) {
            printf("anon %ld MiB\n", i);
            fflush(stdout);
        }
    }
    printf("anon total %ld MiB\n", i);
}

static void t_devfill(void) {
    static char buf[4096];
    int fd = open("/dev/fillme", O_CREAT | O_WRONLY, 0600);
    long t = 0;
    while (fd >= 0 && write(fd, buf, sizeof buf) == sizeof buf) t += 4096;
    printf("/dev fill: fd=%d wrote %ld bytes (%s)\n", fd, t, strerror(errno));
}

static void t_forkbomb(void) {
    int n = 0, fails = 0;
    for (int i = 0; i < 2000; i++) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0) fails++;
        else n++;
    }
    printf("forked %d, failed %d\n", n, fails);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *t = argv[i];
        printf("=== %s (pid %d uid %d)\n", t, getpid(), getuid());
        if (!strcmp(t, "seccomp")) t_seccomp();
        else if (!strcmp(t, "int80")) t_int80();
        else if (!strcmp(t, "int80fork")) t_int80_fork();
        else if (!strcmp(t, "fs")) t_fs();
        else if (!strcmp(t, "unix")) t_unix(argv[++i]);
        else if (!strcmp(t, "signals")) t_signals();
        else if (!strcmp(t, "survive")) t_survive();
        else if (!strcmp(t, "tmpfill")) t_tmpfill(atol(argv[++i]));
        else if (!strcmp(t, "multitmp")) t_multi_tmpfill(atol(argv[++i]));
        else if (!strcmp(t, "anon")) t_anon(atol(argv[++i]));
        else if (!strcmp(t, "devfill")) t_devfill();
        else if (!strcmp(t, "forkbomb")) t_forkbomb();
        else if (!strcmp(t, "sleep")) sleep(atoi(argv[++i]));
        else printf("unknown test %s\n", t);
    }
    return 0;
}
