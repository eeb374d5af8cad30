# Plugin entry point. Run "-- hog 5" in one sandbox, then "-- victim" in another while it runs:
# both sandboxes map root to the same outside uid 200000, so the per-user in-flight fd count
# (and other per-user kernel quotas) is shared and one plugin can deny SCM_RIGHTS to all others.
import socket, os, sys, time
a, b = socket.socketpair()
if sys.argv[1] == "hog":
    r, w = os.pipe(); n = 0
    try:
        while True:
            socket.send_fds(a, [b"x"], [r, w]); n += 2
    except OSError as e: print("HOG: in flight", n, "fds, then", e, file=sys.stderr)
    time.sleep(float(sys.argv[2]))
else:
    try: socket.send_fds(a, [b"x"], [0]); print("VICTIM: fd passing works", file=sys.stderr)
    except OSError as e: print("VICTIM: fd passing fails:", e, file=sys.stderr)
