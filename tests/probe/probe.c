/* The sandbox tests' probe: run as a container's command, it prints what it
 * sees as one JSON object and tries forbidden things, reporting each errno.
 * Built static by the tests, so it runs in any rootfs. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <signal.h>

static void str(const char *k, const char *v, int comma) {
    printf("\"%s\":\"", k);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        if (*p == '\n') { printf("\\n"); continue; }
        if (*p == '\t') { printf("\\t"); continue; }
        putchar(*p);
    }
    printf("\"%s", comma ? "," : "");
}

static void file(const char *k, const char *path) {
    char buf[65536] = "";
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0) buf[n] = 0;
        close(fd);
    } else {
        snprintf(buf, sizeof buf, "ERR %d", errno);
    }
    str(k, buf, 1);
}

static void err(const char *k, long r) { printf("\"%s\":%d,", k, r < 0 ? errno : 0); }

static void write_attempt(const char *k, const char *path) {
    int fd = open(path, O_WRONLY);
    int e = 0;
    if (fd < 0) e = errno;
    else {
        if (write(fd, "x", 1) < 0) e = errno;
        close(fd);
    }
    printf("\"%s\":%d,", k, e);
}

#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Modes: "udp PORT" answers datagrams; "hog" allocates until killed; "forkbomb" forks until refused and
 * prints how many children it got; "spin MS" burns CPU for MS of wall time
 * and prints the CPU time it got. */
static int modes(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "hog")) {
        for (;;) {
            char *p = malloc(1 << 20);
            if (!p) return 3;
            memset(p, 1, 1 << 20);
        }
    }
    if (argc > 1 && !strcmp(argv[1], "forkbomb")) {
        int n = 0;
        for (; n < 10000; n++) {
            pid_t p = fork();
            if (p < 0) break;
            if (p == 0) { pause(); _exit(0); }
        }
        printf("{\"forks\":%d,\"errno\":%d}\n", n, errno);
        fflush(stdout);
        kill(0, SIGKILL);
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "spin")) {
        long ms = atol(argv[2]);
        struct timespec a, b, c;
        clock_gettime(CLOCK_MONOTONIC, &a);
        volatile unsigned long x = 0;
        do {
            for (int i = 0; i < 100000; i++) x++;
            clock_gettime(CLOCK_MONOTONIC, &b);
        } while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
        printf("{\"cpu_ms\":%ld}\n", c.tv_sec * 1000 + c.tv_nsec / 1000000);
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "udp")) {
        /* Prints every datagram received on PORT and answers "echo:" + it. */
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("udp"); return 2; }
        printf("udp listening\n");
        fflush(stdout);
        for (;;) {
            char m[512], r[600];
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(s, m, sizeof m - 1, 0, (struct sockaddr *)&from, &fl);
            if (n < 0) continue;
            m[n] = 0;
            printf("udp got %s\n", m);
            fflush(stdout);
            int k = snprintf(r, sizeof r, "echo:%s", m);
            sendto(s, r, k, 0, (struct sockaddr *)&from, fl);
        }
    }
    return -1;
}

int main(int argc, char **argv) {
    char buf[4096];
    int m = modes(argc, argv);
    if (m >= 0) return m;
    printf("{");
    printf("\"pid\":%d,\"uid\":%d,\"gid\":%d,", getpid(), getuid(), getgid());
    gethostname(buf, sizeof buf);
    str("hostname", buf, 1);
    file("status", "/proc/self/status");
    file("uid_map", "/proc/self/uid_map");
    file("gid_map", "/proc/self/gid_map");
    file("cgroup", "/proc/self/cgroup");
    file("mountinfo", "/proc/self/mountinfo");
    file("kcore", "/proc/kcore");
    file("keys", "/proc/keys");
    const char *ns[] = {"pid", "mnt", "uts", "ipc", "net", "cgroup", "user"};
    printf("\"ns\":{");
    for (int i = 0; i < 7; i++) {
        char p[64], l[128] = "";
        snprintf(p, sizeof p, "/proc/self/ns/%s", ns[i]);
        ssize_t n = readlink(p, l, sizeof l - 1);
        if (n > 0) l[n] = 0;
        str(ns[i], l, i < 6);
    }
    printf("},");
    printf("\"fds\":[");
    DIR *d = opendir("/proc/self/fd");
    int first = 1, dfd = d ? dirfd(d) : -1;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dfd) continue;
        printf("%s%s", first ? "" : ",", e->d_name);
        first = 0;
    }
    if (d) closedir(d);
    printf("],");
    /* Forbidden things. */
    err("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    err("add_key", syscall(SYS_add_key, "user", "k", "v", 1, -3));
    err("userfaultfd", syscall(SYS_userfaultfd, 0));
    err("bpf", syscall(SYS_bpf, 0, NULL, 0));
    err("unshare_user", unshare(CLONE_NEWUSER));
    err("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    err("clone3", syscall(SYS_clone3, NULL, 0));
    err("mknod_block", mknod("/tmp/probe-blk", S_IFBLK | 0600, makedev(8, 0)));
    err("open_mem", open("/dev/mem", O_RDONLY));
    err("open_exe_write", open("/proc/self/exe", O_WRONLY));
    write_attempt("core_pattern", "/proc/sys/kernel/core_pattern");
    write_attempt("sysrq", "/proc/sysrq-trigger");
    write_attempt("uevent_helper", "/sys/kernel/uevent_helper");
    {
        int fd = open("/probe-root-write", O_WRONLY | O_CREAT, 0644);
        printf("\"root_write\":%d,", fd < 0 ? errno : 0);
        if (fd >= 0) { close(fd); unlink("/probe-root-write"); }
    }
    {
        int fd = open("/dev/null", O_WRONLY);
        printf("\"dev_null\":%d,", fd < 0 ? errno : 0);
        if (fd >= 0) close(fd);
    }
    /* Optional: create a file where asked (user namespace ownership test). */
    if (argc > 1) {
        int fd = open(argv[1], O_WRONLY | O_CREAT, 0644);
        printf("\"created\":%d,", fd < 0 ? errno : 0);
        if (fd >= 0) close(fd);
    }
    printf("\"end\":true}\n");
    return 0;
}
