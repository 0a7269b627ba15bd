"""An HTTP connection to rkstack's API over its unix socket (shared by the benches)."""
import http.client, socket


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("rkstack")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def pct(xs, p):
    """The p-quantile of xs (seconds), in ms."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000


def busybox_rootfs(fs, applets=("sleep",)):
    """A container root at fs: the host's static busybox and a passwd."""
    import os, shutil
    os.makedirs(os.path.join(fs, "bin"))
    os.makedirs(os.path.join(fs, "etc"))
    shutil.copy("/bin/busybox", os.path.join(fs, "bin/busybox"))
    for a in applets:
        os.symlink("busybox", os.path.join(fs, "bin", a))
    open(os.path.join(fs, "etc/passwd"), "w").write("root:x:0:0:root:/root:/bin/sh\n")


def rkstack_binary(root):
    """The rkstack to measure: $RK (or $BIN), else a release build of root."""
    import os, subprocess
    rk = os.environ.get("RK") or os.environ.get("BIN")
    if not rk:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
        rk = os.path.join(root, "target/release/rkstack")
    return rk


def stack_up(rk, work, name, extra, applets=("sleep",), sleepers=9):
    """`up -d` of a stack in work: `sleepers` busybox containers sleeping,
    then the `extra` TOML. Returns (rkstack with the stack's folders, socket)."""
    import os, subprocess
    fs = os.path.join(work, "rootfs")
    busybox_rootfs(fs, applets)
    stack = os.path.join(work, "stack.toml")
    with open(stack, "w") as f:
        f.write(f'name = "{name}"\n[defaults]\nimage = "dir:{fs}"\n'
                'command = ["/bin/sleep", "1000"]\nstop_signal = "SIGKILL"\n')
        for i in range(sleepers):
            f.write(f"[containers.c{i}]\n")
        f.write(extra)
    base = [rk, "--state-dir", os.path.join(work, "state"), "--data-dir", os.path.join(work, "data")]
    subprocess.run(base + ["up", "-d", stack], check=True, stdout=subprocess.DEVNULL)
    return base, os.path.join(work, f"state/{name}.sock")
