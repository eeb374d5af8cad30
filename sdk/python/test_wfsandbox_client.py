"""Tests for wfsandbox_client against an in-process fake daemon.

Run with: python3 -m unittest discover -s sdk/python
The fake daemon builds and reads frames by hand (struct + json), not with the module under
test, so the client is checked against the documented wire format, not against itself.
"""

import json
import os
import random
import socket
import struct
import tempfile
import threading
import unittest
from unittest import mock

import wfsandbox_client as wc

WELCOME = {
    "type": "welcome", "protocol": 1, "server": "wfsandbox 0.1.0", "session": "s-1",
    "rights": "control", "idle_timeout_ms": 3600000,
}
SUMMARY = {
    "name": "energy_monitor", "version": "1.0.0", "state": "running", "pid": 4242,
    "instance": "energy_monitor-1", "restarts": 0, "since_ms": 1733000000000,
}
EVENT = {"kind": "event", "topic": "ui.render", "payload": {"text": "42 W"}, "sender": "plugin:energy_monitor",
         "time_ms": 5, "payload_dropped": False}


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def message(obj) -> bytes:
    return frame(json.dumps(obj).encode("utf-8"))


def ok(request, result):
    return {"type": "response", "id": request["id"], "ok": True, "result": result}


def error(request, code, msg="refused", details=None):
    err = {"code": code, "message": msg}
    if details is not None:
        err["details"] = details
    return {"type": "response", "id": request["id"], "ok": False, "error": err}


def read_frame(sock):
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (length,) = struct.unpack(">I", header)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return json.loads(body)


class FakeDaemon:
    """Answers the hello with `hello_reply`, then each request with handler(request): a
    list of dicts (sent as frames), bytes (sent raw) or None (hang up)."""

    def __init__(self, handler=lambda request: [], hello_reply=WELCOME, sock=None):
        self.handler = handler
        self.hello_reply = hello_reply
        self.requests = []
        self.hello = None
        if sock is None:
            self.server, self.client_sock = socket.socketpair()
        else:
            self.server, self.client_sock = sock, None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _send(self, item):
        self.server.sendall(item if isinstance(item, bytes) else message(item))

    def _run(self):
        try:
            self.hello = read_frame(self.server)
            self._send(self.hello_reply)
            if isinstance(self.hello_reply, dict) and self.hello_reply.get("type") != "welcome":
                return
            while True:
                request = read_frame(self.server)
                if request is None:
                    return
                self.requests.append(request)
                for item in self.handler(request):
                    if item is None:  # hang up
                        return
                    self._send(item)
        except OSError:
            pass
        finally:
            self.server.close()

    def client(self, **kwargs):
        return wc.Client(sock=self.client_sock, **kwargs)

    def join(self):
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "fake daemon did not finish"


def answering(results):
    """A handler answering each verb with results[verb] (a dict, or a callable)."""
    def handler(request):
        result = results[request["verb"]]
        return result(request) if callable(result) else [ok(request, result)]
    return handler


class HandshakeTests(unittest.TestCase):
    def test_hello_and_welcome(self):
        daemon = FakeDaemon()
        with daemon.client(client_name="orchestrator") as client:
            self.assertEqual((client.session, client.rights, client.server), ("s-1", "control", "wfsandbox 0.1.0"))
            self.assertEqual(client.welcome, WELCOME)
        daemon.join()
        self.assertEqual(daemon.hello, {"type": "hello", "protocol": 1, "client": "orchestrator"})

    def test_token_is_sent_only_when_given(self):
        token = "ab" * 32
        daemon = FakeDaemon()
        daemon.client(token=token).close()
        daemon.join()
        self.assertEqual(daemon.hello["token"], token)

    def test_refused_hello_raises_with_code_and_closes(self):
        refusal = {"type": "error", "error": {"code": "not_authorised", "message": "uid 1000 not allowed"}}
        daemon = FakeDaemon(hello_reply=refusal)
        with self.assertRaises(wc.WfsandboxError) as caught:
            daemon.client()
        self.assertEqual((caught.exception.code, caught.exception.exit_code), ("not_authorised", 4))
        self.assertEqual(daemon.client_sock.fileno(), -1, "the socket is closed")
        daemon.join()

    def test_backoff_details_reach_the_caller(self):
        refusal = {"type": "error", "error": {"code": "auth_backoff", "message": "wait",
                                              "details": {"retry_after_ms": 4000}}}
        daemon = FakeDaemon(hello_reply=refusal)
        with self.assertRaises(wc.WfsandboxError) as caught:
            daemon.client(token="00" * 32)
        self.assertEqual(caught.exception.details, {"retry_after_ms": 4000})
        daemon.join()

    def test_unsupported_version(self):
        refusal = {"type": "error", "error": {"code": "unsupported_version", "message": "no",
                                              "details": {"supported": [2]}}}
        daemon = FakeDaemon(hello_reply=refusal)
        with self.assertRaises(wc.WfsandboxError) as caught:
            daemon.client()
        self.assertEqual(caught.exception.details["supported"], [2])
        daemon.join()

    def test_welcome_of_another_version_is_refused(self):
        daemon = FakeDaemon(hello_reply=dict(WELCOME, protocol=2))
        with self.assertRaises(wc.WfsandboxError) as caught:
            daemon.client()
        self.assertEqual(caught.exception.code, "protocol_error")
        daemon.join()

    def test_missing_socket_or_dead_socket_means_daemon_not_running(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "control.sock")
            with self.assertRaises(wc.WfsandboxError) as caught:
                wc.Client(socket_path=path)
            self.assertEqual((caught.exception.code, caught.exception.exit_code), ("daemon_not_running", 3))
            stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stale.bind(path)
            stale.close()
            with self.assertRaises(wc.WfsandboxError) as caught:
                wc.Client(socket_path=path)
            self.assertEqual(caught.exception.code, "daemon_not_running")

    def test_a_socket_served_by_another_uid_gets_neither_hello_nor_token(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "control.sock")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(1)
            received = []

            def impostor():
                conn, _ = listener.accept()
                conn.settimeout(5)
                received.append(conn.recv(65536))
                conn.close()

            thread = threading.Thread(target=impostor)
            thread.start()
            with self.assertRaises(wc.WfsandboxError) as caught:
                wc.Client(socket_path=path, token="a" * 64, server_uid=os.geteuid() + 1)
            thread.join(timeout=5)
            listener.close()
            self.assertEqual(caught.exception.code, "permission_denied")
            self.assertIn(f"uid {os.geteuid()}", caught.exception.message)
            self.assertEqual(received, [b""], "the client closed without sending anything")

    def test_connects_over_a_socket_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "control.sock")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(1)
            daemons = []
            acceptor = threading.Thread(target=lambda: daemons.append(
                FakeDaemon(answering({"list": {"plugins": [SUMMARY]}}), sock=listener.accept()[0])))
            acceptor.start()
            client = wc.Client(socket_path=path, server_uid=os.geteuid())
            acceptor.join(timeout=5)
            self.assertEqual(client.list(), {"plugins": [SUMMARY]})
            client.close()
            daemons[0].join()
            listener.close()


class VerbTests(unittest.TestCase):
    def test_every_verb_sends_its_documented_request_and_returns_the_result(self):
        cases = [
            (lambda c: c.load("/opt/p/manifest.json"), "load", {"manifest": {"path": "/opt/p/manifest.json"}}),
            (lambda c: c.load(manifest={"name": "x"}, plugin_dir="/opt/p"), "load",
             {"manifest": {"inline": {"document": {"name": "x"}, "plugin_dir": "/opt/p"}}}),
            (lambda c: c.validate("/opt/p/manifest.json"), "validate", {"manifest": {"path": "/opt/p/manifest.json"}}),
            (lambda c: c.start("/opt/p/manifest.json"), "start", {"manifest": {"path": "/opt/p/manifest.json"}}),
            (lambda c: c.start(name="energy_monitor"), "start", {"name": "energy_monitor"}),
            (lambda c: c.stop("energy_monitor"), "stop", {"name": "energy_monitor"}),
            (lambda c: c.stop("energy_monitor", grace_ms=2500), "stop", {"name": "energy_monitor", "grace_ms": 2500}),
            (lambda c: c.restart("energy_monitor"), "restart", {"name": "energy_monitor"}),
            (lambda c: c.release("energy_monitor"), "release", {"name": "energy_monitor"}),
            (lambda c: c.list(), "list", {}),
            (lambda c: c.status("energy_monitor"), "status", {"name": "energy_monitor"}),
            (lambda c: c.logs("energy_monitor", tail_bytes=100), "logs",
             {"name": "energy_monitor", "follow": False, "tail_bytes": 100}),
            (lambda c: c.stats(), "stats", {}),
            (lambda c: c.stats("energy_monitor"), "stats", {"name": "energy_monitor"}),
            (lambda c: c.publish("energy.update", {"watts": 1.5}), "publish",
             {"topic": "energy.update", "payload": {"watts": 1.5}}),
            (lambda c: c.list_violations(), "list_violations", {}),
            (lambda c: c.list_violations("energy_monitor", limit=5), "list_violations",
             {"name": "energy_monitor", "limit": 5}),
            (lambda c: c.reload_policy(), "reload_policy", {}),
            (lambda c: c.reload_policy("/etc/wfsandbox/policy.json"), "reload_policy",
             {"path": "/etc/wfsandbox/policy.json"}),
            (lambda c: c.shutdown(), "shutdown", {}),
            (lambda c: c.call("list"), "list", {}),
        ]
        daemon = FakeDaemon(lambda request: [ok(request, {"echo": request["verb"]})])
        client = daemon.client()
        for invoke, verb, args in cases:
            self.assertEqual(invoke(client), {"echo": verb})
            sent = daemon.requests[-1]
            self.assertEqual((sent["type"], sent["verb"], sent["args"]), ("request", verb, args))
        ids = [request["id"] for request in daemon.requests]
        self.assertEqual(ids, list(range(1, len(cases) + 1)))
        client.close()
        daemon.join()

    def test_release_of_a_plugin_that_is_not_quarantined_is_a_conflict(self):
        conflict = {"name": "x", "state": "running"}
        daemon = FakeDaemon(answering({"release": lambda r: [error(r, "conflict", "cannot release", conflict)]}))
        client = daemon.client()
        with self.assertRaises(wc.WfsandboxError) as caught:
            client.release("x")
        self.assertEqual((caught.exception.code, caught.exception.details, caught.exception.exit_code),
                         ("conflict", conflict, 7))
        client.close()
        daemon.join()
        self.assertEqual(daemon.requests[-1]["args"], {"name": "x"})

    def test_relative_paths_are_made_absolute(self):
        daemon = FakeDaemon(lambda request: [ok(request, {})])
        client = daemon.client()
        client.load("plugins/x/manifest.json")
        self.assertEqual(daemon.requests[-1]["args"]["manifest"]["path"],
                         os.path.abspath("plugins/x/manifest.json"))
        client.close()
        daemon.join()

    def test_ambiguous_manifest_arguments_are_refused_without_sending(self):
        daemon = FakeDaemon(lambda request: [ok(request, {})])
        client = daemon.client()
        for invoke in (lambda: client.load(), lambda: client.load("/m.json", manifest={}),
                       lambda: client.validate(manifest={}), lambda: client.start("/m.json", name="x")):
            with self.assertRaises(wc.WfsandboxError) as caught:
                invoke()
            self.assertEqual(caught.exception.code, "bad_request")
        client.close()
        daemon.join()
        self.assertEqual(daemon.requests, [])

    def test_error_responses_raise_structured_errors(self):
        problems = [{"pointer": "/name", "reason": "must match ^[a-z]"}]
        answers = {
            "status": lambda r: [error(r, "no_such_plugin", "no plugin named \"ghost\"", {"name": "ghost"})],
            "load": lambda r: [error(r, "invalid_manifest", "1 problem", {"problems": problems})],
            "start": lambda r: [error(r, "refused", "landlock missing",
                                      {"layer": "landlock", "step": "restrict_self", "errno": 38})],
            "stop": lambda r: [error(r, "conflict", "not running", {"name": "x", "state": "stopped"})],
            "shutdown": lambda r: [error(r, "not_authorised", "read-only session")],
        }
        daemon = FakeDaemon(answering(answers))
        client = daemon.client()
        expected = [
            (lambda: client.status("ghost"), "no_such_plugin", {"name": "ghost"}, 5),
            (lambda: client.load("/m.json"), "invalid_manifest", {"problems": problems}, 6),
            (lambda: client.start("/m.json"), "refused", {"layer": "landlock", "step": "restrict_self", "errno": 38},
             125),
            (lambda: client.stop("x"), "conflict", {"name": "x", "state": "stopped"}, 7),
            (lambda: client.shutdown(), "not_authorised", {}, 4),
        ]
        for invoke, code, details, status in expected:
            with self.assertRaises(wc.WfsandboxError) as caught:
                invoke()
            self.assertEqual((caught.exception.code, caught.exception.details, caught.exception.exit_code),
                             (code, details, status))
        client.close()
        daemon.join()

    def test_oversized_request_is_refused_before_sending(self):
        daemon = FakeDaemon(lambda request: [ok(request, {"delivered": 0})])
        client = daemon.client()
        with self.assertRaises(wc.WfsandboxError) as caught:
            client.publish("t", "x" * wc.MAX_REQUEST_BYTES)
        self.assertEqual((caught.exception.code, caught.exception.details), ("too_large", {"max_bytes": 65536}))
        self.assertEqual(client.publish("t", 1), {"delivered": 0}, "the connection is still usable")
        client.close()
        daemon.join()
        self.assertEqual(len(daemon.requests), 1)

    def test_too_deep_or_non_json_payload_is_refused_before_sending(self):
        daemon = FakeDaemon(lambda request: [ok(request, {"delivered": 0})])
        client = daemon.client()
        deep = 1
        for _ in range(40):
            deep = [deep]
        for payload in (deep, float("nan"), {1, 2}):
            with self.assertRaises(wc.WfsandboxError) as caught:
                client.publish("t", payload)
            self.assertEqual(caught.exception.code, "bad_request")
        client.close()
        daemon.join()
        self.assertEqual(daemon.requests, [])


class StreamTests(unittest.TestCase):
    def test_subscription_yields_items_until_cancelled(self):
        def subscribe(request):
            return [ok(request, {"topics": ["ui.render"]})] + [
                {"type": "stream", "id": request["id"], "item": dict(EVENT, time_ms=n)} for n in range(3)]

        def cancel(request):
            return [{"type": "stream_end", "id": request["args"]["id"], "reason": "cancelled"},
                    ok(request, {"cancelled": True})]

        daemon = FakeDaemon(answering({"subscribe_events": subscribe, "cancel": cancel,
                                       "list": {"plugins": []}}))
        client = daemon.client()
        with client.subscribe_events(topics=["ui.render"]) as events:
            self.assertEqual(events.result, {"topics": ["ui.render"]})
            first = next(events)
            self.assertEqual(first, {k: v for k, v in EVENT.items() if k != "kind"} | {"time_ms": 0})
        self.assertEqual(events.end_reason, "cancelled")
        self.assertEqual(list(events), [], "a cancelled subscription yields nothing more")
        self.assertEqual(client.list(), {"plugins": []})
        self.assertEqual(daemon.requests[0]["args"], {"backlog": 0, "follow": True, "topics": ["ui.render"]})
        self.assertEqual(daemon.requests[1]["args"], {"id": daemon.requests[0]["id"]})
        client.close()
        daemon.join()

    def test_stream_that_completes_ends_iteration(self):
        def subscribe(request):
            items = [{"type": "stream", "id": request["id"], "item": dict(EVENT, time_ms=n)} for n in range(2)]
            return [ok(request, {"topics": None})] + items + [
                {"type": "stream_end", "id": request["id"], "reason": "complete"}]

        daemon = FakeDaemon(answering({"subscribe_events": subscribe}))
        client = daemon.client()
        events = client.subscribe_events(backlog=2, follow=False)
        self.assertEqual([event["time_ms"] for event in events], [0, 1])
        self.assertEqual(events.end_reason, "complete")
        self.assertEqual(events.cancel(), "complete")
        client.close()
        daemon.join()
        self.assertEqual(len(daemon.requests), 1, "cancelling an ended stream sends nothing")

    def test_logs_follow_yields_the_tail_then_new_chunks(self):
        tail = [{"stream": "stdout", "time_ms": 1, "text": "a\n"}, {"stream": "stderr", "time_ms": 2, "text": "b\n"}]

        def logs(request):
            return [ok(request, {"chunks": tail, "dropped_bytes": 0}),
                    {"type": "stream", "id": request["id"],
                     "item": {"kind": "log", "stream": "stdout", "time_ms": 3, "text": "c\n"}},
                    {"type": "stream_end", "id": request["id"], "reason": "plugin_ended"}]

        daemon = FakeDaemon(answering({"logs": logs}))
        client = daemon.client()
        stream = client.logs("energy_monitor", follow=True)
        self.assertEqual([chunk["text"] for chunk in stream], ["a\n", "b\n", "c\n"])
        self.assertEqual(stream.end_reason, "plugin_ended")
        self.assertEqual(daemon.requests[0]["args"], {"name": "energy_monitor", "follow": True})
        client.close()
        daemon.join()

    def test_follow_violations_yields_the_recorded_oldest_first_then_new_ones(self):
        def violation(n, kind="topic_denied"):
            return {"time_ms": n, "plugin": "energy_monitor", "instance": "energy_monitor-1", "layer": "broker",
                    "kind": kind, "detail": {"topic": "secret.keys"}, "rule": "/permissions/events/write",
                    "action": "deny"}

        def follow(request):
            return [ok(request, {"violations": [violation(2), violation(1)], "truncated": False}),
                    {"type": "stream", "id": request["id"],
                     "item": {"kind": "violation", "violation": violation(3, "oversized_event")}},
                    {"type": "stream_end", "id": request["id"], "reason": "shutting_down"}]

        daemon = FakeDaemon(answering({"list_violations": follow}))
        client = daemon.client()
        stream = client.follow_violations("energy_monitor", limit=10)
        items = list(stream)
        self.assertEqual([v["time_ms"] for v in items], [1, 2, 3])
        self.assertEqual(items[2], violation(3, "oversized_event"), "the record itself, its own kind kept")
        self.assertEqual(stream.end_reason, "shutting_down")
        self.assertEqual(stream.result["truncated"], False)
        self.assertEqual(daemon.requests[0]["args"], {"name": "energy_monitor", "limit": 10, "follow": True})
        client.close()
        daemon.join()

    def test_a_violation_item_without_its_record_is_a_protocol_error(self):
        def follow(request):
            return [ok(request, {"violations": [], "truncated": False}),
                    {"type": "stream", "id": request["id"], "item": {"kind": "violation", "plugin": "x"}}]

        daemon = FakeDaemon(answering({"list_violations": follow}))
        client = daemon.client()
        stream = client.follow_violations()
        with self.assertRaises(wc.WfsandboxError) as caught:
            next(stream)
        self.assertEqual(caught.exception.code, "protocol_error")
        client.close()
        daemon.join()

    def test_items_arriving_during_other_calls_are_kept_for_the_subscription(self):
        state = {}

        def subscribe(request):
            state["sub"] = request["id"]
            return [ok(request, {"topics": None})]

        def listing(request):
            items = [{"type": "stream", "id": state["sub"], "item": dict(EVENT, time_ms=n)} for n in range(3)]
            stray = {"type": "stream", "id": 999, "item": EVENT}
            return items + [stray, ok(request, {"plugins": []})]

        daemon = FakeDaemon(answering({"subscribe_events": subscribe, "list": listing}))
        client = daemon.client()
        events = client.subscribe_events()
        self.assertEqual(client.list(), {"plugins": []})
        self.assertEqual([next(events)["time_ms"] for _ in range(3)], [0, 1, 2])
        client.close()
        daemon.join()

    def test_a_subscription_nobody_reads_is_ended_as_lagged_not_grown(self):
        state = {}

        def subscribe(request):
            state["sub"] = request["id"]
            return [ok(request, {"topics": None})]

        def listing(request):
            items = [{"type": "stream", "id": state["sub"], "item": EVENT} for _ in range(5)]
            return items + [ok(request, {"plugins": []})]

        def cancel(request):
            return [{"type": "stream_end", "id": request["args"]["id"], "reason": "cancelled"},
                    ok(request, {"cancelled": True})]

        daemon = FakeDaemon(answering({"subscribe_events": subscribe, "list": listing, "cancel": cancel}))
        client = daemon.client()
        with mock.patch.object(wc, "MAX_BUFFERED_ITEMS", 3):
            events = client.subscribe_events()
            self.assertEqual(client.list(), {"plugins": []})
            self.assertEqual(events.end_reason, "lagged")
            self.assertEqual(list(events), [])
            self.assertEqual(client.list(), {"plugins": []}, "the cancel's answer is skipped")
        client.close()
        daemon.join()
        self.assertEqual([r["verb"] for r in daemon.requests], ["subscribe_events", "list", "cancel", "list"])


class MalformedServerTests(unittest.TestCase):
    def assert_protocol_error(self, raw: bytes):
        daemon = FakeDaemon(lambda request: [raw])
        client = daemon.client()
        with self.assertRaises(wc.WfsandboxError) as caught:
            client.list()
        self.assertEqual(caught.exception.code, "protocol_error", raw[:80])
        with self.assertRaises(wc.WfsandboxError) as again:
            client.list()
        self.assertEqual(again.exception.code, "connection_closed", "a broken client stays broken")
        client.close()
        daemon.join()

    def test_malformed_frames_are_protocol_errors(self):
        bad_bodies = [
            b'{"type":"response","id":1,"ok":true,"result":{},"result":{}}',
            b'{"type":"response","id":1,"ok":true,"result":{},"extra":1}',
            b'{"type":"response","id":1,"ok":true}',
            b'{"type":"response","id":1,"ok":true,"result":[]}',
            b'{"type":"response","id":1,"ok":false,"error":{"code":"teapot","message":"m"}}',
            b'{"type":"response","id":1,"ok":false,"error":{"code":"auth_backoff","message":"m"}}',
            b'{"type":"response","id":1,"ok":false,"error":{"code":"internal","message":"m","details":{}}}',
            b'{"type":"response","id":1,"ok":false,"error":{"code":"too_large","message":"m","details":{"x":1}}}',
            b'{"type":"response","id":-1,"ok":true,"result":{}}',
            b'{"type":"response","id":1,"ok":true,"result":{"x":NaN}}',
            b'{"type":"goodbye"}',
            b'{"type":"stream","id":1,"item":{"kind":"metric"}}',
            b'{"type":"stream_end","id":1,"reason":"bored"}',
            b'{"type":"stream_end","id":1,"reason":["complete"]}',
            b'{"type":"response","id":1,"ok":false,"error":{"code":["internal"],"message":"m"}}',
            b'{"type":"response","id":1,"ok":false,"error":{"code":"internal","message":{}}}',
            b'{"type":"error","error":"internal"}',
            b'{"type":["response"],"id":1}',
            b'{"type":"welcome","protocol":1,"server":"s","session":"x","rights":"read","idle_timeout_ms":1}',
            b'{"type":"response","id":1,"ok":true,"result":{}} ',
            b'[1]',
            b'\xff\xfe',
            b'{"type":"response","id":1,"ok":true,"result":{"s":"\\ud800"}}',
            b'{"type":"response","id":1,"ok":true,"result":' + b'[' * 40 + b']' * 40 + b'}',
        ]
        for body in bad_bodies:
            self.assert_protocol_error(frame(body))

    def test_responses_to_requests_never_sent_are_refused(self):
        self.assert_protocol_error(message({"type": "response", "id": 99, "ok": True, "result": {}}))

    def test_zero_and_oversized_lengths_are_refused_unread(self):
        self.assert_protocol_error(struct.pack(">I", 0))
        self.assert_protocol_error(struct.pack(">I", wc.MAX_RESPONSE_BYTES + 1) + b"{}")

    def test_a_frame_at_the_response_cap_is_read(self):
        skeleton = json.dumps({"type": "response", "id": 1, "ok": True, "result": {"t": ""}}).encode()
        fill = wc.MAX_RESPONSE_BYTES - len(skeleton)
        body = json.dumps({"type": "response", "id": 1, "ok": True, "result": {"t": "x" * fill}}).encode()
        self.assertEqual(len(body), wc.MAX_RESPONSE_BYTES)
        daemon = FakeDaemon(lambda request: [frame(body)])
        client = daemon.client()
        self.assertEqual(len(client.list()["t"]), fill)
        client.close()
        daemon.join()

    def test_hang_up_is_connection_closed(self):
        for answer in ([b"\x00\x00", None], [None]):  # half a header, or nothing, then close
            daemon = FakeDaemon(lambda request: answer)
            client = daemon.client()
            with self.assertRaises(wc.WfsandboxError) as caught:
                client.list()
            self.assertEqual((caught.exception.code, caught.exception.exit_code), ("connection_closed", 8))
            client.close()
            daemon.join()

    def test_session_expiry_is_reported(self):
        expired = {"type": "error", "error": {"code": "session_expired", "message": "idle"}}
        daemon = FakeDaemon(lambda request: [expired])
        client = daemon.client()
        with self.assertRaises(wc.WfsandboxError) as caught:
            client.list()
        self.assertEqual((caught.exception.code, caught.exception.exit_code), ("session_expired", 4))
        client.close()
        daemon.join()

    def test_timeout(self):
        daemon = FakeDaemon(lambda request: [])
        client = daemon.client(timeout=0.05)
        with self.assertRaises(wc.WfsandboxError) as caught:
            client.list()
        self.assertEqual(caught.exception.code, "timeout")
        client.close()
        daemon.join()

    def test_mutated_frames_raise_only_wfsandbox_errors(self):
        rng = random.Random(7)
        valid = [
            json.dumps(ok({"id": 1}, {"plugins": [SUMMARY]})).encode(),
            json.dumps(error({"id": 1}, "conflict", "m", {"name": "x", "state": "running"})).encode(),
            json.dumps({"type": "stream", "id": 1, "item": EVENT}).encode(),
        ]
        alphabet = b'{}[]":,\\ 0123456789.-eEtrufalsn\x00\xff'
        for _ in range(3000):
            body = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(body))
                body[at] = rng.choice(alphabet) if rng.random() < 0.7 else rng.randrange(256)
            try:
                wc.decode_body(bytes(body))
            except wc.WfsandboxError:
                pass


class ExitCodeTests(unittest.TestCase):
    def test_main_failures_have_distinct_documented_statuses(self):
        self.assertEqual(wc.exit_code("daemon_not_running"), 3)
        self.assertEqual(wc.exit_code("not_authorised"), 4)
        self.assertEqual(wc.exit_code("no_such_plugin"), 5)
        self.assertEqual(wc.exit_code("refused"), 125)
        for code in wc.ERROR_CODES:
            self.assertNotEqual(wc.exit_code(code), 0, code)


if __name__ == "__main__":
    unittest.main()
