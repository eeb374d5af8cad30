#!/usr/bin/env python3
"""Findings around the supervisor's own liveness (root, from the repo root, after
`cargo build --workspace`). Usage: supervisor_liveness.py [stall|tstp|usr1|fifo] ...

stall  The plugin floods ui.render while wfsandbox's stdout consumer does not read. The
       watchdog kills the sandbox at the 3 s wall clock (fix 5 holds), but the main thread
       stays blocked in write(stdout): wfsandbox itself lives on until the consumer reads
       or goes away, and SIGTERM/SIGINT are ignored meanwhile (blocked, read only from
       the signalfd in the poll loop it never returns to).
tstp   Ctrl-Z (SIGTSTP) or SIGSTOP suspends wfsandbox and its watchdog thread; the plugin
       (its own session) keeps running past its wall clock for as long as that lasts.
usr1   Default-fatal signals outside the handled four (SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE
       from a shell, ...) kill wfsandbox without cleanup: PDEATHSIG ends the plugin, but
       its cgroups stay until a later run from the same cgroup sweeps them.
fifo   A plugin package whose manifest.json is a FIFO hangs `wfsandbox validate/run`
       forever in open() (read_capped uses File::open; the file type is never checked).

Kills only what it starts; removes what it creates (a later run sweeps usr1's cgroups).
"""
import glob, os, shutil, signal, subprocess, sys, tempfile, time

W = os.path.abspath("target/debug/wfsandbox")
CHAN = os.path.abspath("integration-tests/attacks/channel_abuse_plugin.py")


def plugin(entry_src, entry_name, manifest):
    d = tempfile.mkdtemp(prefix="wf-live-")
    os.chmod(d, 0o755)
    shutil.copy(entry_src, os.path.join(d, entry_name)) if os.path.exists(entry_src) else \
        open(os.path.join(d, entry_name), "w").write(entry_src)
    open(os.path.join(d, "manifest.json"), "w").write(manifest)
    for n in os.listdir(d):
        os.chmod(os.path.join(d, n), 0o644)
    return d


def alive(pid):
    try:
        os.kill(pid, 0)
        return open("/proc/%d/stat" % pid).read().split()[2] != "Z"
    except OSError:
        return False


def stall():
    d = plugin(CHAN, "main.py", '{"name":"stall","version":"1.0.0","entry_point":"main.py","permissions":'
               '{"system":{"ui":{"render":true}},"resources":{"wall_clock":{"max_seconds":3}}}}')
    r, w = os.pipe()  # we never read r: a stalled consumer
    t0 = time.time()
    sup = subprocess.Popen([W, "run", d + "/manifest.json", "--", "publish_flood", "200"], stdout=w,
                           stderr=subprocess.DEVNULL)
    os.close(w)
    time.sleep(5)
    sup.send_signal(signal.SIGTERM)
    time.sleep(3)
    print("8 s after start (wall clock 3 s), SIGTERM sent at 5 s: wfsandbox alive =", sup.poll() is None)
    os.close(r)  # the consumer goes away: EPIPE finally unblocks it
    sup.wait()
    print("wfsandbox exited after %.1f s with %s" % (time.time() - t0, sup.returncode))
    shutil.rmtree(d)


def tstp():
    d = plugin("import time\ntime.sleep(30)\n", "main.py",
               '{"name":"tstp","version":"1.0.0","entry_point":"main.py","permissions":'
               '{"resources":{"wall_clock":{"max_seconds":2}}}}')
    sup = subprocess.Popen([W, "run", d + "/manifest.json"], stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    sup.send_signal(signal.SIGTSTP)
    time.sleep(5)
    kids = [int(p.split("/")[2]) for p in glob.glob("/proc/[0-9]*/status")
            if "\nUid:\t200000" in open(p).read() and "tstp" in open(p.replace("status", "cgroup")).read()]
    print("5 s after SIGTSTP (wall clock 2 s): plugin processes still running:", kids)
    sup.send_signal(signal.SIGCONT)
    sup.wait()
    print("after SIGCONT wfsandbox exited with", sup.returncode)
    shutil.rmtree(d)


def usr1():
    d = plugin("import time\ntime.sleep(30)\n", "main.py", '{"name":"usr1","version":"1.0.0","entry_point":"main.py"}')
    sup = subprocess.Popen([W, "run", d + "/manifest.json"], stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    sup.send_signal(signal.SIGUSR1)
    sup.wait()
    time.sleep(0.5)
    left = glob.glob("/sys/fs/cgroup/**/usr1-%d-*" % sup.pid, recursive=True)
    print("wfsandbox died of SIGUSR1 (%s); cgroups left behind: %d" % (sup.returncode, len(left)))
    shutil.rmtree(d)


def fifo():
    d = tempfile.mkdtemp(prefix="wf-live-")
    os.mkfifo(d + "/manifest.json", 0o644)
    try:
        subprocess.run([W, "validate", d + "/manifest.json"], timeout=3)
        print("validate returned")
    except subprocess.TimeoutExpired:
        print("wfsandbox validate still blocked after 3 s on a FIFO manifest (killed)")
    shutil.rmtree(d)


for mode in sys.argv[1:] or ["stall", "tstp", "usr1", "fifo"]:
    print("==", mode)
    globals()[mode]()
