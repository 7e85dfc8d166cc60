"""A real etcd (Debian's etcd-server) for the registry tests: started on free loopback ports
with a temporary data folder, waited for until it answers, stopped by pid, restarted on the
same ports (optionally with its data wiped). etcdctl (etcd-client) reads keys and leases."""

import base64
import json
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

from harness import HOST, free_port, wait_until

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
PREFIX = "/micro/registry/"


def available():
    return os.access(ETCD, os.X_OK) and os.access(ETCDCTL, os.X_OK)


class EtcdServer:
    def __init__(self, tmp_dir):
        self.dir = Path(tmp_dir) / f"etcd-{os.getpid()}-{free_port()}"
        self.dir.mkdir(parents=True)
        self.data = self.dir / "data"
        self.port = free_port()
        self.peer_port = free_port()
        self.proc = None
        self.log_path = self.dir / "etcd.log"
        self.starts = 0

    @property
    def address(self):
        return f"{HOST}:{self.port}"

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def start(self, wait=True):
        client = f"http://{HOST}:{self.port}"
        peer = f"http://{HOST}:{self.peer_port}"
        self.starts += 1
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "default", "--data-dir", str(self.data),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"default={peer}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if wait:
            wait_until(self.healthy, 20, interval=0.1, message="etcd to answer")
        return self

    def healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd exited with {self.proc.returncode}\n{self.log()}")
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return json.loads(r.read()).get("health") == "true"
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def restart(self, wipe=False):
        self.stop()
        if wipe:
            shutil.rmtree(self.data, ignore_errors=True)
        return self.start()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # -- reading the store

    def ctl(self, *args, timeout=10):
        r = subprocess.run([ETCDCTL, f"--endpoints={self.address}", *args],
                           capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "ETCDCTL_API": "3"})
        if r.returncode != 0:
            raise AssertionError(f"etcdctl {' '.join(args)}: {r.stderr}")
        return r.stdout

    def keys(self, prefix=PREFIX):
        """{key: parsed JSON value} under prefix, through etcdctl get --prefix."""
        out = json.loads(self.ctl("get", "--prefix", prefix, "-w", "json"))
        kvs = {}
        for kv in out.get("kvs", []):
            kvs[base64.b64decode(kv["key"]).decode()] = {
                "value": json.loads(base64.b64decode(kv["value"])),
                "lease": kv.get("lease", 0),
            }
        return kvs

    def leases(self):
        """Lease ids (hex, as etcdctl prints them) through etcdctl lease list."""
        return [l.split()[0] for l in self.ctl("lease", "list").splitlines()[1:] if l.strip()]

    def ttl(self, lease_id):
        """(remaining, granted) seconds of a lease (decimal id) through lease timetolive."""
        out = json.loads(self.ctl("lease", "timetolive", format(int(lease_id), "x"), "-w", "json"))
        return out.get("ttl", -1), out.get("granted-ttl", 0)

    def metric(self, name, **labels):
        """Sum of a Prometheus counter from /metrics over the series matching labels."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total
