"""Plugin-side SDK for the WIRTHFORGE event channel (stdlib only, Python 3.9+).

The supervisor places this file at /opt/wfsandbox/python/wfplugin.py inside the sandbox
and puts that directory on PYTHONPATH, so a plugin only needs::

    import wfplugin

    channel = wfplugin.Channel()
    for event in channel.events():
        channel.publish("ui.render", {"widget": "demo", "text": str(event.payload)})

Subscriptions (a plugin starts subscribed to its whole read grant) are narrowed or widened
with `channel.subscribe([...])` / `channel.unsubscribe([...])`; the answer is a
`Subscribed(topics)` from `.messages()` (`.events()` skips it). For many small events,
`channel.queue(topic, payload)` buffers frames (written at 64 KiB, before every read, and by
`channel.flush()`) instead of one send per publish.

Wire format (docs/protocol.md): a 4-byte big-endian length N (1..cap), then N bytes of
UTF-8 JSON holding exactly one object with a "type" member. Frames read here get the same
checks as in the Rust `wf-protocol` crate: the length is checked before the body is read,
then UTF-8, nesting depth, one object with nothing after it, no duplicate keys, known type,
exact field set.
"""

import fcntl
import json
import os
import re
import socket
import struct
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Union

PROTOCOL_VERSION = 1
HEADER_LEN = 4
DEFAULT_MAX_FRAME_BYTES = 64 * 1024
MAX_FRAME_BYTES_CEILING = 16 * 1024 * 1024
MAX_JSON_DEPTH = 32
CHANNEL_FD_ENV = "WFSANDBOX_CHANNEL_FD"
MAX_FRAME_BYTES_ENV = "WFSANDBOX_MAX_FRAME_BYTES"

# Fields of every message type, by direction; values are the accepted Python types
# (None = any JSON value).
_U32_MAX = 0xFFFFFFFF
SUPERVISOR_MESSAGES = {
    "hello": {"protocol": int, "plugin": str, "instance": str},
    "event": {"topic": str, "payload": None, "sender": str},
    "denied": {"topic": str, "reason": str},
    "subscribed": {"topics": list},
}
PLUGIN_MESSAGES = {
    "publish": {"topic": str, "payload": None},
    "subscribe": {"topics": list},
    "unsubscribe": {"topics": list},
}

# Queued frames are sent once at least this many bytes are waiting (Rust: QUEUE_FLUSH_BYTES).
QUEUE_FLUSH_BYTES = 64 * 1024

# The broker's topic rule (docs/manifest.md, "Topics"): dot-separated segments of a lowercase
# letter followed by a-z, 0-9 or "_", at most MAX_TOPIC_BYTES; subscriptions may end in ".*".
MAX_TOPIC_BYTES = 128
_TOPIC = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")

_MAX_DETAIL_CHARS = 200
_SIGNIFICANT = re.compile(r'[\\"\[\]{}]')
_DIGITS = re.compile(r"[0-9]{1,10}")


class ProtocolError(Exception):
    """A frame was refused. `kind` is one of: oversized, zero_length, truncated,
    invalid_utf8, too_deep, malformed, unknown_type."""

    def __init__(self, kind: str, detail: str = ""):
        detail = detail[:_MAX_DETAIL_CHARS]
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class SdkError(Exception):
    """The channel could not be set up or used (environment, fd, handshake)."""


class InvalidTopic(SdkError, ValueError):
    """A topic or subscription pattern the broker would refuse; nothing was sent."""

    def __init__(self, topic: Any, reason: str):
        shown = topic[:64] if isinstance(topic, str) else topic
        super().__init__(f"invalid topic {shown!r}: {reason}")
        self.topic = topic
        self.reason = reason


class PublishDenied(Exception):
    """The supervisor refused an earlier publish, or one topic of a subscribe/unsubscribe."""

    def __init__(self, topic: str, reason: str):
        super().__init__(f"{topic!r} denied: {reason}")
        self.topic = topic
        self.reason = reason


class Hello(NamedTuple):
    protocol: int
    plugin: str
    instance: str


class Event(NamedTuple):
    topic: str
    payload: Any
    sender: str


class Denial(NamedTuple):
    topic: str
    reason: str


class Subscribed(NamedTuple):
    """The whole subscription set (sorted) after a subscribe or unsubscribe was applied."""

    topics: List[str]


def check_topic(topic: Any, pattern: bool = False) -> None:
    """Raises InvalidTopic unless `topic` is a topic the broker accepts (with `pattern`, also
    a `prefix.*` subscription pattern)."""
    if not isinstance(topic, str):
        raise InvalidTopic(topic, "a topic is a string")
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise InvalidTopic(topic, f"longer than {MAX_TOPIC_BYTES} bytes")
    concrete = topic[:-2] if pattern and topic.endswith(".*") else topic
    if _TOPIC.fullmatch(concrete) is None:
        if not pattern and topic.endswith(".*") and _TOPIC.fullmatch(topic[:-2]):
            raise InvalidTopic(topic, "a `.*` pattern can be subscribed to, not published on")
        raise InvalidTopic(topic, "every `.`-separated segment must be a lowercase letter followed by a-z, 0-9 or `_`")


# ---------------------------------------------------------------------------- framing


def check_structure(text: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Cheap pre-scan: one object, nothing after its closing brace, bounded nesting.
    Brackets inside strings (including after escapes) do not count."""
    if not text.startswith("{"):
        raise ProtocolError("malformed", "frame body is not a JSON object")
    depth = 0
    in_string = False
    escaped_at = -1
    last = len(text) - 1
    for match in _SIGNIFICANT.finditer(text):
        index = match.start()
        if index == escaped_at:
            continue
        char = match.group()
        if in_string:
            if char == "\\":
                escaped_at = index + 1
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
            if depth > max_depth:
                raise ProtocolError("too_deep", f"nesting deeper than {max_depth}")
        elif char in "}]":
            if depth == 0:
                raise ProtocolError("malformed", "unbalanced closing bracket")
            depth -= 1
            if depth == 0 and index != last:
                raise ProtocolError("malformed", "trailing bytes after the JSON object")
    if depth or in_string:
        raise ProtocolError("malformed", "unterminated JSON object")


def _reject_duplicate_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ProtocolError("malformed", f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name):
    raise ProtocolError("malformed", f"{name} is not JSON")


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ProtocolError("malformed", "number out of range")
    return value


def _reject_lone_surrogates(value):
    """JSON escapes can spell lone surrogates, which are not Unicode text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("malformed", "lone surrogate in string") from None
    elif isinstance(value, list):
        for item in value:
            _reject_lone_surrogates(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_lone_surrogates(key)
            _reject_lone_surrogates(item)


def _check_fields(obj: Dict[str, Any], types: Dict[str, Dict[str, Any]]) -> None:
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("malformed", "missing or non-string type")
    fields = types.get(kind)
    if fields is None:
        raise ProtocolError("unknown_type", kind)
    present = set(obj) - {"type"}
    unknown = present - set(fields)
    if unknown:
        raise ProtocolError("malformed", f"unknown field {sorted(unknown)[0]!r} in {kind}")
    missing = set(fields) - present
    if missing:
        raise ProtocolError("malformed", f"missing field {sorted(missing)[0]!r} in {kind}")
    for name, expected in fields.items():
        value = obj[name]
        if expected is int:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U32_MAX:
                raise ProtocolError("malformed", f"{name} is not an unsigned 32-bit integer")
        elif expected is list:
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ProtocolError("malformed", f"{name} is not a list of strings")
        elif expected is not None and not isinstance(value, expected):
            raise ProtocolError("malformed", f"{name} has the wrong type")


def _effective_cap(max_bytes: int) -> int:
    return min(max_bytes, MAX_FRAME_BYTES_CEILING)


def decode_body(body: bytes, types: Dict[str, Dict[str, Any]], max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> dict:
    """Validates one frame body and returns the message as a dict."""
    max_bytes = _effective_cap(max_bytes)
    if not body:
        raise ProtocolError("zero_length")
    if len(body) > max_bytes:
        raise ProtocolError("oversized", f"{len(body)} > {max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("invalid_utf8") from None
    check_structure(text)
    try:
        obj = json.loads(
            text,
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise ProtocolError("malformed", str(err)) from None
    _reject_lone_surrogates(obj)
    _check_fields(obj, types)
    return obj


def encode(message: dict, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Encodes one message dict as a frame (header + body), refusing what a peer with the
    same cap would refuse."""
    max_bytes = _effective_cap(max_bytes)
    try:
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        body = text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as err:
        raise ProtocolError("malformed", f"not encodable as JSON: {err}") from None
    if len(body) > max_bytes:
        raise ProtocolError("oversized", f"{len(body)} > {max_bytes}")
    check_structure(text)
    return struct.pack(">I", len(body)) + body


def _recv_exact(sock: socket.socket, count: int, at_boundary: bool) -> Optional[bytes]:
    """Reads exactly `count` bytes. None on EOF before the first byte if `at_boundary`,
    `truncated` on EOF anywhere else."""
    buffer = bytearray(count)
    view = memoryview(buffer)
    filled = 0
    while filled < count:
        received = sock.recv_into(view[filled:], count - filled)
        if received == 0:
            if filled == 0 and at_boundary:
                return None
            raise ProtocolError("truncated", f"end of stream after {filled} of {count} bytes")
        filled += received
    return bytes(buffer)


class _ReadAhead:
    """A socket's reading side with a read-ahead buffer of at most `_READ_AHEAD` bytes, so a
    stream of small frames costs one `recv` per buffer, not two per frame."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv_into(self, view: memoryview, count: int) -> int:
        if self._pos == len(self._data):
            self._data = self._sock.recv(_READ_AHEAD)
            self._pos = 0
            if not self._data:
                return 0
        taken = min(count, len(self._data) - self._pos)
        view[:taken] = self._data[self._pos:self._pos + taken]
        self._pos += taken
        return taken


_READ_AHEAD = 64 * 1024


def read_message(sock: socket.socket, types: Dict[str, Dict[str, Any]], max_bytes: int) -> Optional[dict]:
    """Reads one frame; None on end of stream at a frame boundary."""
    max_bytes = _effective_cap(max_bytes)
    header = _recv_exact(sock, HEADER_LEN, at_boundary=True)
    if header is None:
        return None
    (length,) = struct.unpack(">I", header)
    if length == 0:
        raise ProtocolError("zero_length")
    if length > max_bytes:
        raise ProtocolError("oversized", f"{length} > {max_bytes}")
    body = _recv_exact(sock, length, at_boundary=False)
    return decode_body(body, types, max_bytes)


# ---------------------------------------------------------------------------- channel


def _env_number(name: str, value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise SdkError(f"{name}={value[:64]!r} is not a plain decimal number")
    return int(value)


def _channel_socket_from_env() -> socket.socket:
    value = os.environ.get(CHANNEL_FD_ENV)
    if value is None:
        raise SdkError(f"{CHANNEL_FD_ENV} is not set: not running inside a wfsandbox sandbox")
    fd = _env_number(CHANNEL_FD_ENV, value)
    if fd < 3:
        raise SdkError(f"{CHANNEL_FD_ENV}={fd}: the channel is never on stdin/stdout/stderr")
    try:
        sock = socket.socket(fileno=fd)
    except OSError as err:
        raise SdkError(f"channel fd {fd} is unusable: {err}") from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise SdkError(f"channel fd {fd} is not an AF_UNIX stream socket")
    # fcntl rather than socket.set_inheritable: CPython implements the latter with
    # ioctl(FIOCLEX), which a seccomp ioctl filter may refuse.
    flags = fcntl.fcntl(fd, fcntl.F_GETFD)
    fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
    return sock


def _max_frame_bytes_from_env() -> int:
    value = os.environ.get(MAX_FRAME_BYTES_ENV)
    if value is None:
        return DEFAULT_MAX_FRAME_BYTES
    max_bytes = _env_number(MAX_FRAME_BYTES_ENV, value)
    if not 1 <= max_bytes <= MAX_FRAME_BYTES_CEILING:
        raise SdkError(f"{MAX_FRAME_BYTES_ENV}={max_bytes} is outside 1..{MAX_FRAME_BYTES_CEILING}")
    return max_bytes


class Channel:
    """The plugin's end of the event channel. Without arguments it adopts the fd named by
    WFSANDBOX_CHANNEL_FD; tests pass a connected socket. Reads the hello immediately.

    publish/subscribe/unsubscribe send at once (behind any queued frames); queue() buffers.
    Frames keep the order of the calls that made them. close() (and leaving a `with` block)
    flushes the queue first."""

    def __init__(self, sock: Optional[socket.socket] = None, max_frame_bytes: Optional[int] = None):
        self.max_frame_bytes = max_frame_bytes if max_frame_bytes is not None else _max_frame_bytes_from_env()
        self._sock = sock if sock is not None else _channel_socket_from_env()
        self._reader = _ReadAhead(self._sock)
        self._queued = bytearray()
        self.hello = self._handshake()

    def _handshake(self) -> Hello:
        first = read_message(self._reader, SUPERVISOR_MESSAGES, self.max_frame_bytes)
        if first is None:
            raise SdkError("channel closed before the hello")
        if first["type"] != "hello":
            raise SdkError(f"first message is {first['type']!r}, not hello")
        if first["protocol"] != PROTOCOL_VERSION:
            raise SdkError(f"supervisor speaks protocol {first['protocol']}, this SDK speaks {PROTOCOL_VERSION}")
        return Hello(first["protocol"], first["plugin"], first["instance"])

    def messages(self) -> Iterator[Union[Event, Denial, Subscribed]]:
        """Events, refusals and subscription sets until the supervisor closes its side. Queued
        frames are flushed before every read."""
        while True:
            self.flush()
            msg = read_message(self._reader, SUPERVISOR_MESSAGES, self.max_frame_bytes)
            if msg is None:
                return
            if msg["type"] == "event":
                yield Event(msg["topic"], msg["payload"], msg["sender"])
            elif msg["type"] == "denied":
                yield Denial(msg["topic"], msg["reason"])
            elif msg["type"] == "subscribed":
                yield Subscribed(msg["topics"])
            else:
                raise SdkError(f"unexpected {msg['type']} message")

    def events(self) -> Iterator[Event]:
        """Events until the supervisor closes its side (in one-shot run mode, after the
        initial events). A refused publish or subscription raises PublishDenied; subscription
        sets are skipped."""
        for msg in self.messages():
            if isinstance(msg, Denial):
                raise PublishDenied(msg.topic, msg.reason)
            if isinstance(msg, Subscribed):
                continue
            yield msg

    def publish(self, topic: str, payload: Any) -> None:
        """Publishes `payload` on `topic` now (after any queued frames); the supervisor decides
        delivery and answers a refusal with a Denial. An invalid topic raises InvalidTopic;
        over-cap or non-JSON payloads raise ProtocolError; either way nothing is sent."""
        self._queued += self._publish_frame(topic, payload)
        self.flush()

    def queue(self, topic: str, payload: Any) -> None:
        """Like publish, but the frame is buffered: sent once QUEUE_FLUSH_BYTES are waiting,
        before every read, by any other send, by flush() and by close(). Every check of publish
        applies here, at the call; a refused frame is not queued."""
        self._queued += self._publish_frame(topic, payload)
        if len(self._queued) >= QUEUE_FLUSH_BYTES:
            self.flush()

    def subscribe(self, topics: Iterable[str]) -> None:
        """Adds topics or `prefix.*` patterns to the subscription set; returns once sent. The
        supervisor answers with a Denial per topic the read grant does not cover, then
        Subscribed(topics) with the whole set. Invalid names raise InvalidTopic, nothing sent."""
        self._send_subscription("subscribe", topics)

    def unsubscribe(self, topics: Iterable[str]) -> None:
        """Removes topics or patterns (compared literally); answered like subscribe."""
        self._send_subscription("unsubscribe", topics)

    def flush(self) -> None:
        """Sends every queued frame. If sending fails, the unsent bytes stay queued (a later
        flush continues at the same byte, so the framing is kept)."""
        if not self._queued:
            return
        view = memoryview(self._queued)
        sent = 0
        try:
            while sent < len(view):
                sent += self._sock.send(view[sent:])
        finally:
            view.release()
            del self._queued[:sent]

    @property
    def queued_bytes(self) -> int:
        """Bytes queued and not yet sent."""
        return len(self._queued)

    def _publish_frame(self, topic: str, payload: Any) -> bytes:
        check_topic(topic)
        return encode({"type": "publish", "topic": topic, "payload": payload}, self.max_frame_bytes)

    def _send_subscription(self, kind: str, topics: Iterable[str]) -> None:
        if isinstance(topics, str):
            raise InvalidTopic(topics, "pass a list of topics, not one string")
        topics = list(topics)
        for topic in topics:
            check_topic(topic, pattern=True)
        self._queued += encode({"type": kind, "topics": topics}, self.max_frame_bytes)
        self.flush()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._sock.close()

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
