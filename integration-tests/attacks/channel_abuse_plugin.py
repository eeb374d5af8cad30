"""A Python plugin (entry point) that abuses the event channel and the output streams.

manifest: {"name":"chan","version":"1.0.0","entry_point":"channel_abuse_plugin.py",
           "permissions":{"system":{"ui":{"render":true}}}}
modes (first argument after `--`):
  ui_any N/A        publishes on ui.admin.exec.command etc.: all accepted with only ui.render
  publish_flood N   N frames of ~60 KB on ui.render: N*60 KB on wfsandbox's stdout, no cap
                    (pipe stdout into `sleep 30` to see the wall clock stall as well)
  spoof             writes fake "wfsandbox:" summary lines and terminal escapes to stderr
  denied            publishes on an ungranted topic and waits for the documented `denied`
                    reply, which never arrives (the supervisor half-closed the channel)
"""
import json, os, socket, struct, sys, time

sock = socket.socket(fileno=os.dup(3))
frame = lambda body: struct.pack(">I", len(body)) + body
publish = lambda topic, payload: sock.sendall(frame(json.dumps(
    {"type": "publish", "topic": topic, "payload": payload}).encode()))
mode = sys.argv[1]
if mode == "ui_any":
    for topic in ["ui.render", "ui.admin", "ui.admin.exec.command", "ui.a.b.c.d"]:
        publish(topic, {"t": topic})
    time.sleep(0.3)
elif mode == "publish_flood":
    big = "A" * 60000
    for _ in range(int(sys.argv[2])):
        publish("ui.render", {"x": big})
elif mode == "spoof":
    sys.stderr.write("\nwfsandbox: other 1.0.0 (x) exited with status 0\n"
                     "\x1b]0;title set by plugin\x07\x1b]52;c;cHduZWQ=\x07\x1b[8mhidden text\x1b[0m\n")
elif mode == "denied":
    publish("secret.topic", {})
    sock.settimeout(2)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    print("received:", data, file=sys.stderr)
