"""Tests for wfplugin against a fake supervisor on a socketpair.

Run with: python3 -m unittest discover -s sdk/python
Frames from the fake supervisor are built by hand (not with wfplugin.encode) so the SDK is
checked against the documented wire format, not against itself.
"""

import json
import os
import random
import socket
import struct
import threading
import time
import unittest

import wfplugin


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def message(obj) -> bytes:
    return frame(json.dumps(obj).encode("utf-8"))


HELLO = {"type": "hello", "protocol": 1, "plugin": "energy_monitor", "instance": "run-1"}


def energy(watts):
    return {"type": "event", "topic": "energy.update", "payload": {"watts": watts}, "sender": "cli"}


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
        body += sock.recv(length - len(body))
    return json.loads(body)


def nested_lists(depth):
    """A payload of `depth` nested lists: with the message object, one level over the cap."""
    value = 1
    for _ in range(depth):
        value = [value]
    return value


class Pair:
    """A fake supervisor socket and a connected plugin Channel."""

    def __init__(self, max_frame_bytes=None, hello=HELLO):
        self.supervisor, plugin = socket.socketpair()
        self.supervisor.sendall(message(hello))
        self.channel = wfplugin.Channel(sock=plugin, max_frame_bytes=max_frame_bytes)

    def send(self, *frames):
        for raw in frames:
            self.supervisor.sendall(raw)

    def close_supervisor(self):
        self.supervisor.shutdown(socket.SHUT_WR)

    def close(self):
        self.supervisor.close()
        self.channel.close()


def decode(body, types=None, max_bytes=wfplugin.DEFAULT_MAX_FRAME_BYTES):
    return wfplugin.decode_body(body, types or wfplugin.PLUGIN_MESSAGES, max_bytes)


class HandshakeTest(unittest.TestCase):
    def test_hello_is_exposed(self):
        pair = Pair()
        self.addCleanup(pair.close)
        self.assertEqual(pair.channel.hello, wfplugin.Hello(1, "energy_monitor", "run-1"))
        self.assertEqual(pair.channel.max_frame_bytes, wfplugin.DEFAULT_MAX_FRAME_BYTES)

    def test_wrong_first_message_or_version(self):
        for first in (energy(1), dict(HELLO, protocol=2)):
            supervisor, plugin = socket.socketpair()
            self.addCleanup(supervisor.close)
            self.addCleanup(plugin.close)
            supervisor.sendall(message(first))
            with self.assertRaises(wfplugin.SdkError):
                wfplugin.Channel(sock=plugin)

    def test_eof_before_hello(self):
        supervisor, plugin = socket.socketpair()
        self.addCleanup(plugin.close)
        supervisor.close()
        with self.assertRaises(wfplugin.SdkError):
            wfplugin.Channel(sock=plugin)


class EventsTest(unittest.TestCase):
    def setUp(self):
        self.pair = Pair()
        self.addCleanup(self.pair.close)

    def test_events_until_half_close(self):
        self.pair.send(message(energy(42.5)), message(energy(7)))
        self.pair.close_supervisor()
        events = list(self.pair.channel.events())
        self.assertEqual(
            events,
            [
                wfplugin.Event("energy.update", {"watts": 42.5}, "cli"),
                wfplugin.Event("energy.update", {"watts": 7}, "cli"),
            ],
        )
        topic, payload, sender = events[0]
        self.assertEqual((topic, payload["watts"], sender), ("energy.update", 42.5, "cli"))
        # Publishing still works after the supervisor's half-close.
        self.pair.channel.publish("ui.render", {"text": "bye"})
        self.assertEqual(read_frame(self.pair.supervisor), {"type": "publish", "topic": "ui.render", "payload": {"text": "bye"}})

    def test_denied_raises_from_events_and_yields_from_messages(self):
        denied = {"type": "denied", "topic": "net.raw", "reason": "not writable"}
        self.pair.send(message(denied), message(energy(1)))
        self.pair.close_supervisor()
        with self.assertRaises(wfplugin.PublishDenied) as ctx:
            next(self.pair.channel.events())
        self.assertEqual((ctx.exception.topic, ctx.exception.reason), ("net.raw", "not writable"))
        # The channel is still usable; messages() carries refusals as values.
        pair = Pair()
        self.addCleanup(pair.close)
        pair.send(message(denied), message(energy(1)))
        pair.close_supervisor()
        self.assertEqual(
            list(pair.channel.messages()),
            [wfplugin.Denial("net.raw", "not writable"), wfplugin.Event("energy.update", {"watts": 1}, "cli")],
        )

    def test_second_hello_is_unexpected(self):
        self.pair.send(message(HELLO))
        with self.assertRaises(wfplugin.SdkError):
            next(self.pair.channel.events())

    def test_byte_at_a_time_delivery(self):
        raw = message(energy(3)) + message(energy(4))
        for i in range(len(raw)):
            self.pair.supervisor.send(raw[i : i + 1])
        self.pair.close_supervisor()
        self.assertEqual([e.payload["watts"] for e in self.pair.channel.events()], [3, 4])


class CountingSocket(socket.socket):
    """A socket that counts its reads."""

    recvs = 0

    def recv(self, *args, **kwargs):
        CountingSocket.recvs += 1
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        CountingSocket.recvs += 1
        return super().recv_into(*args, **kwargs)


class ReadAheadTest(unittest.TestCase):
    def test_many_small_frames_cost_few_reads_and_keep_their_boundaries(self):
        supervisor, plugin = socket.socketpair()
        counted = CountingSocket(fileno=plugin.detach())
        self.addCleanup(supervisor.close)
        self.addCleanup(counted.close)
        frames = [message(energy(n)) for n in range(200)]
        supervisor.sendall(message(HELLO) + b"".join(frames))
        supervisor.shutdown(socket.SHUT_WR)
        CountingSocket.recvs = 0
        channel = wfplugin.Channel(sock=counted)
        watts = [event.payload["watts"] for event in channel.events()]
        self.assertEqual(watts, list(range(200)))
        self.assertLessEqual(CountingSocket.recvs, 4, "frames were read one recv at a time")

    def test_a_frame_split_across_reads_is_reassembled_and_a_cut_one_is_truncated(self):
        pair = Pair()
        self.addCleanup(pair.close)
        raw = message(energy(1))
        pair.send(raw[:3])
        threading.Timer(0.05, pair.send, args=(raw[3:9],)).start()
        threading.Timer(0.1, pair.send, args=(raw[9:] + raw[:5],)).start()
        threading.Timer(0.15, pair.close_supervisor).start()
        messages = pair.channel.messages()
        self.assertEqual(next(messages).payload, {"watts": 1})
        with self.assertRaises(wfplugin.ProtocolError) as cut:
            next(messages)
        self.assertEqual(cut.exception.kind, "truncated")


class PublishTest(unittest.TestCase):
    def test_publish_writes_one_documented_frame(self):
        pair = Pair()
        self.addCleanup(pair.close)
        pair.channel.publish("ui.render", {"widget": "energy", "text": "42.5 W ü"})
        header = pair.supervisor.recv(4)
        (length,) = struct.unpack(">I", header)
        body = pair.supervisor.recv(length)
        self.assertEqual(len(body), length)
        self.assertEqual(
            json.loads(body.decode("utf-8")),
            {"type": "publish", "topic": "ui.render", "payload": {"widget": "energy", "text": "42.5 W ü"}},
        )

    def test_over_cap_and_unencodable_publish_is_refused_unsent(self):
        pair = Pair(max_frame_bytes=128)
        self.addCleanup(pair.close)
        with self.assertRaises(wfplugin.ProtocolError) as ctx:
            pair.channel.publish("ui.render", "x" * 200)
        self.assertEqual(ctx.exception.kind, "oversized")
        for bad in (float("nan"), {1, 2}, object()):
            with self.assertRaises(wfplugin.ProtocolError):
                pair.channel.publish("t", bad)
        deep = nested_lists(wfplugin.MAX_JSON_DEPTH)
        roomy = Pair()
        self.addCleanup(roomy.close)
        with self.assertRaises(wfplugin.ProtocolError) as ctx:
            roomy.channel.publish("t", deep)
        self.assertEqual(ctx.exception.kind, "too_deep")
        pair.channel.close()
        self.assertEqual(pair.supervisor.recv(10), b"", "nothing may reach the wire")


class TopicRuleTest(unittest.TestCase):
    """The client-side check follows the broker's documented rule (docs/manifest.md, Topics):
    ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$, at most 128 bytes; subscriptions may end in .*"""

    VALID = ["energy", "energy.update", "ui.render", "a1_b.c_2", "a.b.c.d", "z9", "a_", "a" * 128]
    INVALID = ["", ".", "a.", ".a", "a..b", "A", "a.B", "1a", "a.1b", "_a", "a-b", "a b", "*", "a/b", "é",
               "a\0", " a", "a\n", "a" * 129, None, 7, b"energy"]

    def test_documented_topics_and_patterns(self):
        for topic in self.VALID:
            wfplugin.check_topic(topic)
            wfplugin.check_topic(topic, pattern=True)
        for topic in self.INVALID:
            for pattern in (False, True):
                with self.subTest(topic=topic, pattern=pattern), self.assertRaises(wfplugin.InvalidTopic):
                    wfplugin.check_topic(topic, pattern=pattern)

    def test_a_final_wildcard_is_a_pattern_only(self):
        for pattern in ("energy.*", "a.b.*", "a" * 126 + ".*"):
            wfplugin.check_topic(pattern, pattern=True)
            with self.assertRaises(wfplugin.InvalidTopic) as ctx:
                wfplugin.check_topic(pattern)
            self.assertIn("pattern", ctx.exception.reason)
        for bad in ("*", ".*", "*.a", "a.*.b", "a.**", "a*", "a.*.*", "A.*", "a" * 127 + ".*"):
            with self.subTest(bad=bad), self.assertRaises(wfplugin.InvalidTopic):
                wfplugin.check_topic(bad, pattern=True)

    def test_invalid_topic_is_both_an_sdk_error_and_a_value_error(self):
        with self.assertRaises(wfplugin.SdkError):
            wfplugin.check_topic("Bad")
        with self.assertRaises(ValueError):
            wfplugin.check_topic("Bad")


class SubscriptionTest(unittest.TestCase):
    def setUp(self):
        self.pair = Pair()
        self.addCleanup(self.pair.close)

    def test_subscribe_and_unsubscribe_send_one_documented_frame_each(self):
        self.pair.channel.subscribe(["energy.update", "energy.*"])
        self.assertEqual(read_frame(self.pair.supervisor), {"type": "subscribe", "topics": ["energy.update", "energy.*"]})
        self.pair.channel.unsubscribe(("energy.*",))
        self.assertEqual(read_frame(self.pair.supervisor), {"type": "unsubscribe", "topics": ["energy.*"]})
        self.pair.channel.subscribe([])
        self.assertEqual(read_frame(self.pair.supervisor), {"type": "subscribe", "topics": []})

    def test_answers_are_messages_and_events_skips_the_set(self):
        denied = {"type": "denied", "topic": "secrets.*", "reason": "not readable"}
        subscribed = {"type": "subscribed", "topics": ["energy.update"]}
        self.pair.send(message(subscribed), message(energy(1)), message(subscribed), message(denied))
        self.pair.close_supervisor()
        self.assertEqual(
            list(self.pair.channel.messages()),
            [
                wfplugin.Subscribed(["energy.update"]),
                wfplugin.Event("energy.update", {"watts": 1}, "cli"),
                wfplugin.Subscribed(["energy.update"]),
                wfplugin.Denial("secrets.*", "not readable"),
            ],
        )
        pair = Pair()
        self.addCleanup(pair.close)
        pair.send(message(subscribed), message(energy(2)), message(subscribed), message(denied))
        pair.close_supervisor()
        events = pair.channel.events()
        self.assertEqual(next(events), wfplugin.Event("energy.update", {"watts": 2}, "cli"))
        with self.assertRaises(wfplugin.PublishDenied) as ctx:
            next(events)
        self.assertEqual(ctx.exception.topic, "secrets.*")

    def test_a_subscribed_frame_is_validated(self):
        for body in (
            {"type": "subscribed", "topics": "energy.update"},
            {"type": "subscribed", "topics": [1]},
            {"type": "subscribed"},
            {"type": "subscribed", "topics": [], "extra": 1},
        ):
            with self.subTest(body=body), self.assertRaises(wfplugin.ProtocolError) as ctx:
                decode(json.dumps(body).encode(), wfplugin.SUPERVISOR_MESSAGES)
            self.assertEqual(ctx.exception.kind, "malformed")
        self.assertEqual(decode(b'{"type":"subscribe","topics":["a.*"]}'), {"type": "subscribe", "topics": ["a.*"]})

    def test_invalid_names_are_refused_unsent(self):
        channel = self.pair.channel
        for call, arg in (
            (channel.subscribe, ["energy.update", "*"]),
            (channel.unsubscribe, ["energy.*.raw"]),
            (channel.subscribe, "energy.update"),  # one string, not a list of topics
            (channel.subscribe, [None]),
        ):
            with self.subTest(arg=arg), self.assertRaises(wfplugin.InvalidTopic):
                call(arg)
        for topic in ("Energy", "energy.*", "", 5):
            with self.subTest(topic=topic), self.assertRaises(wfplugin.InvalidTopic):
                channel.publish(topic, 1)
            with self.subTest(topic=topic), self.assertRaises(wfplugin.InvalidTopic):
                channel.queue(topic, 1)
        self.assertEqual(channel.queued_bytes, 0)
        channel.close()
        self.assertEqual(self.pair.supervisor.recv(10), b"", "nothing may reach the wire")


def nothing_pending(sock):
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


class QueueTest(unittest.TestCase):
    def setUp(self):
        self.pair = Pair()
        self.addCleanup(self.pair.close)
        self.pair.supervisor.settimeout(10)

    def test_queued_frames_wait_for_flush_and_keep_their_order(self):
        channel = self.pair.channel
        for seq in range(100):
            channel.queue("energy.update", {"watts": seq / 4, "seq": seq})
        self.assertTrue(nothing_pending(self.pair.supervisor), "queued frames are not sent before a flush")
        self.assertGreater(channel.queued_bytes, 100 * 30)
        channel.flush()
        self.assertEqual(channel.queued_bytes, 0)
        for seq in range(100):
            self.assertEqual(read_frame(self.pair.supervisor)["payload"], {"watts": seq / 4, "seq": seq})
        channel.flush()
        self.assertTrue(nothing_pending(self.pair.supervisor))

    def test_sends_go_out_behind_the_queue(self):
        channel = self.pair.channel
        channel.queue("a", 1)
        channel.publish("a", 2)
        channel.queue("a", 3)
        channel.subscribe(["a"])
        self.assertEqual(channel.queued_bytes, 0)
        got = [read_frame(self.pair.supervisor) for _ in range(4)]
        self.assertEqual([g.get("payload") for g in got], [1, 2, 3, None])
        self.assertEqual(got[3], {"type": "subscribe", "topics": ["a"]})

    def test_the_queue_flushes_itself_at_64_kib(self):
        received = []

        def drain():
            while True:
                got = read_frame(self.pair.supervisor)
                if got is None:
                    return
                received.append(got["payload"])

        reader = threading.Thread(target=drain)
        reader.start()
        channel = self.pair.channel
        flushed_at = None
        for seq in range(5000):
            before = channel.queued_bytes
            channel.queue("energy.update", {"seq": seq, "source": "test"})
            self.assertLess(channel.queued_bytes, wfplugin.QUEUE_FLUSH_BYTES)
            if flushed_at is None and channel.queued_bytes < before:
                flushed_at = before
        self.assertIsNotNone(flushed_at, "the queue flushed by itself")
        self.assertGreater(flushed_at, wfplugin.QUEUE_FLUSH_BYTES - 100)
        channel.close()
        reader.join(10)
        self.assertEqual(received, [{"seq": seq, "source": "test"} for seq in range(5000)])

    def test_the_queue_is_flushed_before_every_read(self):
        def answer():
            got = read_frame(self.pair.supervisor)
            self.pair.send(message(energy(got["payload"]["ping"])))
            self.pair.close_supervisor()

        answerer = threading.Thread(target=answer)
        answerer.start()
        self.pair.channel._sock.settimeout(10)  # a read before the flush fails instead of hanging
        self.pair.channel.queue("energy.update", {"ping": 7})
        self.assertEqual([e.payload for e in self.pair.channel.events()], [{"watts": 7}])
        answerer.join(10)

    def test_queued_frames_get_the_same_checks_as_publish(self):
        pair = Pair(max_frame_bytes=128)
        self.addCleanup(pair.close)
        pair.channel.queue("t", 1)
        before = pair.channel.queued_bytes
        with self.assertRaises(wfplugin.ProtocolError) as ctx:
            pair.channel.queue("t", "x" * 200)
        self.assertEqual(ctx.exception.kind, "oversized")
        deep = nested_lists(wfplugin.MAX_JSON_DEPTH)
        roomy = Pair()
        self.addCleanup(roomy.close)
        with self.assertRaises(wfplugin.ProtocolError) as ctx:
            roomy.channel.queue("t", deep)
        self.assertEqual(ctx.exception.kind, "too_deep")
        for bad in (float("nan"), {1, 2}, object()):
            with self.assertRaises(wfplugin.ProtocolError):
                pair.channel.queue("t", bad)
        self.assertEqual(pair.channel.queued_bytes, before, "a refused frame is not queued")
        self.assertEqual(roomy.channel.queued_bytes, 0)
        pair.channel.close()
        self.assertEqual(read_frame(pair.supervisor), {"type": "publish", "topic": "t", "payload": 1})
        self.assertIsNone(read_frame(pair.supervisor), "only the valid frame was sent")

    def test_a_flush_that_fails_part_way_keeps_the_framing(self):
        channel = self.pair.channel
        channel._sock.setblocking(False)
        text = "y" * 1000
        sent = 0
        with self.assertRaises(BlockingIOError):
            while sent < 100000:
                channel.queue("energy.update", {"n": sent, "text": text})
                sent += 1
        sent += 1  # the frame whose queueing triggered the failed flush is queued
        self.assertGreater(channel.queued_bytes, 0)
        numbers = []

        def drain():
            while True:
                got = read_frame(self.pair.supervisor)
                if got is None:
                    return
                numbers.append(got["payload"]["n"])

        reader = threading.Thread(target=drain)
        reader.start()
        while channel.queued_bytes:
            try:
                channel.flush()
            except BlockingIOError:
                time.sleep(0.001)
        channel._sock.setblocking(True)
        channel.close()
        reader.join(10)
        self.assertEqual(numbers, list(range(sent)))


class FrameValidationTest(unittest.TestCase):
    def read_error(self, raw, max_frame_bytes=None, close=True):
        pair = Pair(max_frame_bytes=max_frame_bytes)
        self.addCleanup(pair.close)
        pair.channel._sock.settimeout(5)  # a reader that waits for a body fails instead of hanging
        pair.send(raw)
        if close:
            pair.close_supervisor()
        with self.assertRaises(wfplugin.ProtocolError) as ctx:
            list(pair.channel.events())
        return ctx.exception.kind

    def test_oversized_header_is_refused_before_reading(self):
        # Only the header is sent and the socket stays open: a reader that tried to read
        # the body would block forever instead of failing.
        self.assertEqual(self.read_error(b"\xff\xff\xff\xff", close=False), "oversized")
        body = json.dumps(energy(1)).encode()
        self.assertEqual(self.read_error(frame(body), max_frame_bytes=len(body) - 1), "oversized")

    def test_cap_is_inclusive(self):
        body = json.dumps(energy(1)).encode()
        pair = Pair(max_frame_bytes=max(len(body), 100))
        self.addCleanup(pair.close)
        pair.channel.max_frame_bytes = len(body)
        pair.send(frame(body))
        pair.close_supervisor()
        self.assertEqual(len(list(pair.channel.events())), 1)

    def test_zero_length_and_truncation(self):
        self.assertEqual(self.read_error(b"\x00\x00\x00\x00"), "zero_length")
        self.assertEqual(self.read_error(b"\x00\x00"), "truncated")
        self.assertEqual(self.read_error(b"\x00\x00\x00\x10{}"), "truncated")

    def test_every_body_error_kind(self):
        cases = {
            b'{"type":"publish","topic":"\xff","payload":1}': "invalid_utf8",
            b'{"type":"publish","topic":"\xed\xa0\x80","payload":1}': "invalid_utf8",
            b'{"type":"publish","topic":"t","payload":' + b"[" * 40 + b"]" * 40 + b"}": "too_deep",
            b'{"payload":' + b"[" * 60000: "too_deep",
            b'{"type":"publish","topic":"t"}': "malformed",
            b'{"type":"publish","topic":"t","payload":1,"extra":1}': "malformed",
            b'{"type":"publish","topic":7,"payload":1}': "malformed",
            b'{"type":"publish","topic":"a","topic":"b","payload":1}': "malformed",
            b'{"type":"publish","topic":"t","payload":{"k":1,"k":2}}': "malformed",
            b'{"type":"publish","topic":"t","payload":NaN}': "malformed",
            b'{"type":"publish","topic":"t","payload":1e400}': "malformed",
            b'{"type":"publish","topic":"\\ud800","payload":1}': "malformed",
            b'{"type":"publish","topic":"t","payload":1} ': "malformed",
            b'{"type":"publish","topic":"t","payload":1}{}': "malformed",
            b' {"type":"publish","topic":"t","payload":1}': "malformed",
            b'["publish","t",1]': "malformed",
            b'{"topic":"t","payload":1}': "malformed",
            b'{"type":5}': "malformed",
            b'{"type":"hello","protocol":1,"plugin":"p","instance":"i"}': "unknown_type",
            b'{"type":"shutdown_host"}': "unknown_type",
        }
        for body, kind in cases.items():
            with self.subTest(body=body[:60]):
                with self.assertRaises(wfplugin.ProtocolError) as ctx:
                    decode(body)
                self.assertEqual(ctx.exception.kind, kind, str(ctx.exception))
        with self.assertRaises(wfplugin.ProtocolError) as ctx:
            decode(b"")
        self.assertEqual(ctx.exception.kind, "zero_length")

    def test_field_types_of_supervisor_messages(self):
        for hello in (dict(HELLO, protocol=True), dict(HELLO, protocol=-1), dict(HELLO, protocol=2**32), dict(HELLO, plugin=None)):
            with self.subTest(hello=hello):
                with self.assertRaises(wfplugin.ProtocolError):
                    decode(json.dumps(hello).encode(), wfplugin.SUPERVISOR_MESSAGES)
        self.assertEqual(decode(json.dumps(HELLO).encode(), wfplugin.SUPERVISOR_MESSAGES), HELLO)

    def test_depth_limit_is_inclusive_and_strings_do_not_count(self):
        ok = '{"type":"publish","topic":"t","payload":' + "[" * 31 + "]" * 31 + "}"
        decode(ok.encode())
        tricky = '{"type":"publish","topic":"\\"[[[\\\\","payload":"' + "{[" * 50 + '"}'
        self.assertEqual(decode(tricky.encode())["topic"], '"[[[\\')
        wfplugin.check_structure(tricky, max_depth=1)

    def test_random_bytes_never_escape_as_other_exceptions(self):
        rng = random.Random(1234)
        alphabet = b'{}[]":,\\ 0123456789.-eEtrufalsn\x00\xff\xc3\xa9publishtopicpayloadtype'
        seed = message({"type": "publish", "topic": "t", "payload": {"a": [1, "x\\\"y", None]}})[4:]
        for _ in range(3000):
            if rng.random() < 0.5:
                body = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
            else:
                body = bytearray(seed)
                for _ in range(rng.randrange(1, 4)):
                    body[rng.randrange(len(body))] = rng.choice(alphabet)
                body = bytes(body)
            try:
                decode(body)
            except wfplugin.ProtocolError:
                pass


class EncodeTest(unittest.TestCase):
    def test_encode_is_compact_utf8_with_header(self):
        raw = wfplugin.encode({"type": "publish", "topic": "t", "payload": "é"})
        self.assertEqual(raw[:4], struct.pack(">I", len(raw) - 4))
        self.assertEqual(raw[4:], '{"type":"publish","topic":"t","payload":"é"}'.encode("utf-8"))


class FromEnvTest(unittest.TestCase):
    def setUp(self):
        saved = {k: os.environ.get(k) for k in (wfplugin.CHANNEL_FD_ENV, wfplugin.MAX_FRAME_BYTES_ENV)}

        def restore():
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

        self.addCleanup(restore)

    def test_adopts_a_stream_socket_and_marks_it_cloexec(self):
        supervisor, plugin = socket.socketpair()
        self.addCleanup(supervisor.close)
        supervisor.sendall(message(HELLO))
        plugin.set_inheritable(True)
        os.environ[wfplugin.CHANNEL_FD_ENV] = str(plugin.detach())
        os.environ[wfplugin.MAX_FRAME_BYTES_ENV] = "1000"
        channel = wfplugin.Channel()
        self.addCleanup(channel.close)
        self.assertEqual(channel.hello.plugin, "energy_monitor")
        self.assertEqual(channel.max_frame_bytes, 1000)
        self.assertFalse(channel._sock.get_inheritable())

    def test_rejects_bad_environment_and_fds(self):
        os.environ.pop(wfplugin.CHANNEL_FD_ENV, None)
        with self.assertRaises(wfplugin.SdkError):
            wfplugin.Channel()
        for value in ("", "1", "-3", " 3", "3x", "99999999999"):
            os.environ[wfplugin.CHANNEL_FD_ENV] = value
            with self.subTest(value=value), self.assertRaises(wfplugin.SdkError):
                wfplugin.Channel()
        with open("/dev/null", "rb") as not_a_socket:
            os.environ[wfplugin.CHANNEL_FD_ENV] = str(not_a_socket.fileno())
            with self.assertRaises(wfplugin.SdkError):
                wfplugin.Channel()
            os.fstat(not_a_socket.fileno())  # still open: a refused fd is not closed
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        os.environ[wfplugin.CHANNEL_FD_ENV] = str(a.fileno())
        with self.assertRaises(wfplugin.SdkError):
            wfplugin.Channel()
        os.fstat(a.fileno())
        supervisor, plugin = socket.socketpair()
        self.addCleanup(supervisor.close)
        self.addCleanup(plugin.close)
        os.environ[wfplugin.CHANNEL_FD_ENV] = str(plugin.fileno())
        for value in ("0", "16777217", "64k"):
            os.environ[wfplugin.MAX_FRAME_BYTES_ENV] = value
            with self.subTest(max=value), self.assertRaises(wfplugin.SdkError):
                wfplugin.Channel()


if __name__ == "__main__":
    unittest.main()
