"""Python plugin (entry point): the 64 MiB publish budget counts payload bytes only.

Every publish below carries a 1-byte payload on a 128-byte topic that the ui.render grant
covers (ui.render.<one segment>), so the budget is charged 1 byte while wfsandbox writes a
~153-byte JSON line to its stdout. At the 1000/s rate limit that is ~150 KB/s for the whole
wall clock: ~46 MB at the default 300 s, ~550 MB at the 3600 s ceiling, with ~3.6 MB of
"budget" used.

manifest: {"name":"tb","version":"1.0.0","entry_point":"publish_budget_envelope.py",
           "permissions":{"system":{"ui":{"render":true}},"resources":{"wall_clock":{"max_seconds":30}}}}
run: wfsandbox run DIR/manifest.json --report r.json -- 10 | wc -c    (10 = seconds to flood)

Also shown by the same manifest with "events":{"write":["ui.*"]}: a wildcard write grant
opens every one-level ui topic (ui.admin, ...), though docs and code call the extra ui grant
"literal".
"""
import os, socket, struct, sys, time

sock = socket.socket(fileno=os.dup(3))
topic = "ui.render." + "w" * 118
body = ('{"type":"publish","topic":"%s","payload":0}' % topic).encode()
frames = (struct.pack(">I", len(body)) + body) * 50
end = time.time() + float(sys.argv[1])
while time.time() < end:
    sock.sendall(frames)
    time.sleep(0.05)
