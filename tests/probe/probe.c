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


/* "snoop OUT": the audit's exec attack. Until the file /stop appears, it
 * scans /proc for processes that entered this container and tries to get
 * hold of each while it is still rkstack (before its execve): an O_PATH
 * handle to its binary, its memory, its descriptors. A handle is counted
 * only while the process's exe still names rkstack. When /stop appears
 * it tries to reopen every binary handle for writing (the supervisor may
 * be gone by then, so the host's binary is no longer busy) and writes one
 * JSON line to OUT. */
#include <sys/ptrace.h>
#include <sys/wait.h>
static int names_rkstack(const char *link) {
    char l[512];
    ssize_t n = readlink(link, l, sizeof l - 1);
    if (n <= 0) return 0;
    l[n] = 0;
    return strstr(l, "rkstack") != NULL;
}
static int snoop(const char *out) {
    int exe_fds[256], nexe = 0, seen = 0, mem = 0, fdirs = 0, fd_open = 0, traced = 0, secret = 0;
    int me = getpid();
    char secret_seen[128] = "";
    while (access("/stop", F_OK) != 0) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 1 || pid == me) continue;
            char p[64], l[64];
            snprintf(l, sizeof l, "/proc/%d/exe", pid);
            if (!names_rkstack(l)) continue;
            seen++;
            int fd = open(l, O_PATH | O_CLOEXEC);
            if (fd >= 0) {
                snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
                if (names_rkstack(p) && nexe < 256) exe_fds[nexe++] = fd;
                else close(fd);
            }
            snprintf(p, sizeof p, "/proc/%d/mem", pid);
            fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                if (names_rkstack(l)) {
                    mem++;
                    /* Look for another container's secret in its heap. */
                    char maps[64], line[256];
                    snprintf(maps, sizeof maps, "/proc/%d/maps", pid);
                    FILE *m = fopen(maps, "r");
                    while (m && fgets(line, sizeof line, m)) {
                        unsigned long a, b;
                        if (!strstr(line, "[heap]") || sscanf(line, "%lx-%lx", &a, &b) != 2) continue;
                        for (unsigned long at = a; at < b; at += 65536) {
                            static char chunk[65536 + 64];
                            ssize_t k = pread(fd, chunk, 65536, at);
                            if (k <= 0) break;
                            chunk[k] = 0;
                            for (ssize_t i = 0; i + 14 < k; i++)
                                if (!memcmp(chunk + i, "RKT_SECRET_", 11)) {
                                    secret++;
                                    memcpy(secret_seen, chunk + i, 20);
                                    secret_seen[20] = 0;
                                    break;
                                }
                        }
                    }
                    if (m) fclose(m);
                }
                close(fd);
            }
            snprintf(p, sizeof p, "/proc/%d/fd", pid);
            DIR *f = opendir(p);
            if (f) {
                struct dirent *fe;
                while ((fe = readdir(f))) {
                    if (atoi(fe->d_name) < 3) continue;
                    char q[300];
                    snprintf(q, sizeof q, "/proc/%d/fd/%s", pid, fe->d_name);
                    int g = open(q, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
                    if (g >= 0) { fd_open++; close(g); }
                }
                closedir(f);
                if (names_rkstack(l)) fdirs++;
            }
            if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
                int st;
                if (names_rkstack(l)) traced++;
                ptrace(PTRACE_INTERRUPT, pid, 0, 0);
                waitpid(pid, &st, __WALL);
                ptrace(PTRACE_DETACH, pid, 0, 0);
            }
        }
        if (d) closedir(d);
    }
    int writable = 0;
    for (int i = 0; i < nexe; i++) {
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", exe_fds[i]);
        int w = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (w >= 0) { writable++; close(w); }
    }
    FILE *o = fopen(out, "w");
    if (!o) return 2;
    fprintf(o, "{\"seen\":%d,\"exe\":%d,\"exe_writable\":%d,\"mem\":%d,\"secret\":%d,\"secret_text\":\"%s\","
               "\"fd_dirs\":%d,\"fd_opened\":%d,\"ptrace\":%d}\n",
            seen, nexe, writable, mem, secret, secret_seen, fdirs, fd_open, traced);
    fclose(o);
    return 0;
}

/* Whether `pid`, once stopped, is still on its way in: its exe is rkstack
 * or unreadable (not dumpable until its execve). */
static int entering_when_stopped(int pid) {
    char p[64], st[512], t[512];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    for (int i = 0; i < 2000; i++) {
        FILE *f = fopen(p, "r");
        if (!f) return 0;
        size_t n = fread(st, 1, sizeof st - 1, f);
        fclose(f);
        st[n] = 0;
        char *r = strrchr(st, ')');
        if (r && r[1] == ' ' && (r[2] == 'T' || r[2] == 't')) break;
        usleep(500);
    }
    snprintf(p, sizeof p, "/proc/%d/exe", pid);
    ssize_t n = readlink(p, t, sizeof t - 1);
    if (n > 0) t[n] = 0;
    return (n < 0 && errno == EACCES) || (n > 0 && strstr(t, "rkstack"));
}

/* "stopper OUT": stops (SIGSTOP) every process that enters this container
 * before it has exec'd (its exe is rkstack, or unreadable: non-dumpable),
 * until /stop appears; writes how many it stopped to OUT. */
static int stopper(const char *out) {
    int me = getpid(), stopped = 0;
    while (access("/stop", F_OK) != 0) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 1 || pid == me) continue;
            char l[64], t[512];
            snprintf(l, sizeof l, "/proc/%d/exe", pid);
            ssize_t n = readlink(l, t, sizeof t - 1);
            if (n > 0) t[n] = 0;
            if ((n < 0 && errno == EACCES) || (n > 0 && strstr(t, "rkstack"))) {
                if (kill(pid, SIGSTOP) != 0) continue;
                /* It may have exec'd between the look and the signal: a
                 * process that already runs its program is let go. */
                if (entering_when_stopped(pid)) stopped++;
                else kill(pid, SIGCONT);
            }
        }
        if (d) closedir(d);
    }
    FILE *o = fopen(out, "w");
    if (!o) return 2;
    fprintf(o, "{\"stopped\":%d}\n", stopped);
    fclose(o);
    return 0;
}

/* socket(AF_VSOCK) through every door: the native call, and on x86_64 the
 * i386 ABI's socket (359) and socketcall(SYS_SOCKET) (102), entered with
 * int $0x80. Returns the errno (0: a socket was made). */
static int vsock_native(void) {
    int s = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
    if (s < 0) return errno;
    close(s);
    return 0;
}
#ifdef __x86_64__
static unsigned int i386_args[3] = {40, SOCK_STREAM, 0};
static long int80(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
static int vsock_i386(void) {
    long r = int80(359, 40, SOCK_STREAM, 0);
    if (r < 0) return (int)-r;
    close((int)r);
    return 0;
}
static int inet_i386(void) {
    long r = int80(359, AF_INET, SOCK_DGRAM, 0);
    if (r < 0) return (int)-r;
    close((int)r);
    return 0;
}
static int vsock_socketcall(void) {
    long r = int80(102, 1 /* SYS_SOCKET */, (long)(unsigned long)i386_args, 0);
    if (r < 0) return (int)-r;
    close((int)r);
    return 0;
}
/* socket(AF_VSOCK) under the x32 bit: EPERM where the kernel runs x32
 * (the filter covers it), ENOSYS where it has no x32 ABI. */
static int vsock_x32(void) {
    long r = syscall(0x40000000 | SYS_socket, 40, SOCK_STREAM, 0);
    if (r < 0) return errno;
    close((int)r);
    return 0;
}
#else
static int vsock_i386(void) { return -1; }
static int vsock_socketcall(void) { return -1; }
static int inet_i386(void) { return -1; }
static int vsock_x32(void) { return -1; }
#endif

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
    if (argc > 2 && !strcmp(argv[1], "snoop")) return snoop(argv[2]);
    if (argc > 1 && !strcmp(argv[1], "euid")) { printf("euid %d\n", geteuid()); return 0; }
    if (argc > 2 && !strcmp(argv[1], "stopper")) return stopper(argv[2]);
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
    printf("\"vsock\":%d,\"vsock_i386\":%d,\"vsock_socketcall\":%d,\"inet_i386\":%d,\"vsock_x32\":%d,",
           vsock_native(), vsock_i386(), vsock_socketcall(), inet_i386(), vsock_x32());
    {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        printf("\"inet\":%d,", s < 0 ? errno : 0);
        if (s >= 0) close(s);
    }
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
