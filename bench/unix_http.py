"""An HTTP connection to rkstack's API over its unix socket (shared by the benches)."""
import http.client, socket


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("rkstack")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)
