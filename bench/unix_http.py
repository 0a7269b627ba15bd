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
