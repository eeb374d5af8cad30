#!/usr/bin/env python3
"""Finding: the plugin outlives `wfsandbox run` when the supervisor is signalled.

The child sets PR_SET_PDEATHSIG(SIGKILL) *before* setresuid/setresgid(0); the kernel clears
the parent-death signal on that credential change, so nothing kills the plugin when the
supervisor dies. The supervisor has no SIGTERM/SIGINT/SIGHUP handler either, and `run` never
sweeps orphaned cgroups. Usage (root, from the repo root, after `cargo build --workspace`):

    integration-tests/attacks/orphan_after_supervisor_signal.py [TERM|INT|HUP|KILL]

Cleans up after itself: kills only the plugin it started and removes that instance's cgroups.
"""
import glob, os, shutil, signal, subprocess, sys, tempfile, time

WFSANDBOX = os.path.abspath("target/debug/wfsandbox")
sig = getattr(signal, "SIG" + (sys.argv[1] if len(sys.argv) > 1 else "TERM"))
marker = "orphan-marker-%d" % os.getpid()
plugin = tempfile.mkdtemp(prefix="wf-orphan-")
os.chmod(plugin, 0o755)
with open(os.path.join(plugin, "main.py"), "w") as f:
    f.write("import time, sys\ntime.sleep(60)\n")
with open(os.path.join(plugin, "manifest.json"), "w") as f:
    f.write('{"name":"orphan","version":"1.0.0","entry_point":"main.py",'
            '"permissions":{"resources":{"wall_clock":{"max_seconds":5}}}}')
for name in ("main.py", "manifest.json"):
    os.chmod(os.path.join(plugin, name), 0o644)

sup = subprocess.Popen([WFSANDBOX, "run", os.path.join(plugin, "manifest.json"), "--", marker],
                       start_new_session=True, stderr=subprocess.DEVNULL,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
time.sleep(1.5)
os.killpg(sup.pid, sig)  # what Ctrl-C / `timeout` / an orchestrator's stop does
sup.wait()
time.sleep(7)  # longer than the plugin's 5 s wall clock

def ours():
    pids = []
    for p in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if marker.encode() in open(p, "rb").read():
                pids.append(int(p.split("/")[2]))
        except OSError:
            pass
    return pids

survivors = ours()
instance = "orphan-%d-" % sup.pid
left = [d for d in glob.glob("/sys/fs/cgroup/**/" + instance + "*", recursive=True) if os.path.isdir(d)]
print("supervisor ended with", sup.returncode)
print("plugin processes still alive 7 s later (wall clock was 5 s):", survivors)
print("cgroups left behind:", left)
for pid in survivors:
    os.kill(pid, signal.SIGKILL)
time.sleep(0.5)
for d in sorted(left, key=len, reverse=True):
    os.rmdir(d)
shutil.rmtree(plugin)
sys.exit(1 if survivors or left else 0)
