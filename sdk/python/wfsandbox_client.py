"""Client for the wfsandbox daemon's control socket (stdlib only, Python 3.9+).

Speaks the control protocol of docs/protocol.md §2 over the daemon's Unix socket::

    import wfsandbox_client

    with wfsandbox_client.Client() as client:          # /run/wfsandbox/control.sock
        client.start("/opt/plugins/energy/manifest.json")
        for plugin in client.list()["plugins"]:
            print(plugin["name"], plugin["state"])
        with client.subscribe_events(topics=["ui.render"]) as events:
            for event in events:
                print(event["topic"], event["payload"])

Every verb method returns the verb's ``result`` object (a dict, exactly as documented);
``logs(..., follow=True)``, ``subscribe_events()`` and ``follow_violations()`` return a
``Subscription`` to iterate.
A refusal raises ``WfsandboxError`` with the daemon's stable ``code``, its ``message`` and
its ``details`` dict. A few codes come from this module, never from the daemon:
``daemon_not_running``, ``permission_denied``, ``connection_closed``, ``protocol_error``
and ``timeout``; after any of them the client is unusable.

Frames are checked like the Rust reference (``wf-protocol``): length checked against the
cap before the body is read, UTF-8, nesting depth, one object with nothing after it, no
duplicate keys, known message type and exact field set. Requests over 64 KiB are refused
before sending. A ``Client`` is not thread-safe; use one per thread.
"""

import collections
import json
import os
import re
import socket
import struct
from typing import Any, Deque, Dict, Iterator, List, Optional

PROTOCOL_VERSION = 1
DEFAULT_SOCKET_PATH = "/run/wfsandbox/control.sock"
HEADER_LEN = 4
MAX_REQUEST_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
# Stream items kept for a subscription that is not being iterated while other calls run.
MAX_BUFFERED_ITEMS = 10_000

ERROR_CODES = frozenset(
    """bad_request unknown_verb unsupported_version too_large not_authorised auth_backoff
    rate_limited session_expired no_such_plugin already_exists invalid_manifest invalid_policy
    refused conflict internal shutting_down""".split()
)
# Keys of `details` per code: (required, allowed). Codes not listed carry no details.
_DETAILS = {
    "unsupported_version": ({"supported"}, {"supported"}),
    "too_large": ({"max_bytes"}, {"max_bytes"}),
    "auth_backoff": ({"retry_after_ms"}, {"retry_after_ms"}),
    "rate_limited": ({"retry_after_ms"}, {"retry_after_ms"}),
    "no_such_plugin": ({"name"}, {"name"}),
    "already_exists": ({"name"}, {"name"}),
    "invalid_manifest": ({"problems"}, {"problems"}),
    "invalid_policy": ({"problems"}, {"problems"}),
    "refused": (set(), {"layer", "step", "errno"}),
    "conflict": ({"name", "state"}, {"name", "state"}),
}
STREAM_ITEM_KINDS = frozenset(["event", "log", "violation"])
STREAM_END_REASONS = frozenset(["complete", "cancelled", "lagged", "plugin_ended", "shutting_down"])

# Exit statuses of the wfsandbox CLI, by error code (docs/protocol.md §2).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_DAEMON_NOT_RUNNING = 0, 1, 2, 3
EXIT_NOT_AUTHORISED, EXIT_NO_SUCH_PLUGIN, EXIT_INVALID, EXIT_CONFLICT, EXIT_PROTOCOL = 4, 5, 6, 7, 8
EXIT_REFUSED = 125
_EXIT_CODES = {
    "bad_request": EXIT_USAGE, "unknown_verb": EXIT_USAGE,
    "not_authorised": EXIT_NOT_AUTHORISED, "auth_backoff": EXIT_NOT_AUTHORISED,
    "session_expired": EXIT_NOT_AUTHORISED, "permission_denied": EXIT_NOT_AUTHORISED,
    "no_such_plugin": EXIT_NO_SUCH_PLUGIN,
    "invalid_manifest": EXIT_INVALID, "invalid_policy": EXIT_INVALID,
    "already_exists": EXIT_CONFLICT, "conflict": EXIT_CONFLICT,
    "unsupported_version": EXIT_PROTOCOL, "too_large": EXIT_PROTOCOL,
    "protocol_error": EXIT_PROTOCOL, "connection_closed": EXIT_PROTOCOL,
    "refused": EXIT_REFUSED, "daemon_not_running": EXIT_DAEMON_NOT_RUNNING,
}

_U64_MAX = 2**64 - 1
_MAX_DETAIL_CHARS = 200
_SIGNIFICANT = re.compile(r'[\\"\[\]{}]')


def exit_code(code: str) -> int:
    """The wfsandbox CLI's exit status for an error code."""
    return _EXIT_CODES.get(code, EXIT_FAILURE)


class WfsandboxError(Exception):
    """A refusal by the daemon (``code`` is one of ERROR_CODES) or a local failure."""

    def __init__(self, code: str, message: str = "", details: Optional[Dict[str, Any]] = None):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def exit_code(self) -> int:
        return exit_code(self.code)


def _protocol_error(detail: str) -> WfsandboxError:
    return WfsandboxError("protocol_error", detail[:_MAX_DETAIL_CHARS])


# ---------------------------------------------------------------------------- framing


def check_structure(text: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """One object, nothing after its closing brace, nesting at most `max_depth`; brackets
    inside strings (including after escapes) do not count."""
    if not text.startswith("{"):
        raise _protocol_error("frame body is not a JSON object")
    depth, in_string, escaped_at, last = 0, False, -1, len(text) - 1
    for match in _SIGNIFICANT.finditer(text):
        index, char = match.start(), match.group()
        if index == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = index + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
            if depth > max_depth:
                raise _protocol_error(f"JSON nesting deeper than {max_depth} levels")
        else:
            if depth == 0:
                raise _protocol_error("unbalanced closing bracket")
            depth -= 1
            if depth == 0 and index != last:
                raise _protocol_error("trailing bytes after the JSON object")
    if depth or in_string:
        raise _protocol_error("unterminated JSON object")


def _reject_duplicate_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _protocol_error(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name):
    raise _protocol_error(f"{name} is not JSON")


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _protocol_error("number out of range")
    return value


def _reject_lone_surrogates(value) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _protocol_error("lone surrogate in string") from None
    elif isinstance(value, list):
        for item in value:
            _reject_lone_surrogates(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_lone_surrogates(key)
            _reject_lone_surrogates(item)


def decode_body(body: bytes, max_bytes: int = MAX_RESPONSE_BYTES) -> dict:
    """Checks one server frame body and returns the message as a dict."""
    if not body:
        raise _protocol_error("frame with a zero length prefix")
    if len(body) > max_bytes:
        raise _protocol_error(f"frame of {len(body)} bytes exceeds the cap of {max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _protocol_error("frame body is not valid UTF-8") from None
    check_structure(text)
    try:
        obj = json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise _protocol_error(f"malformed JSON: {err}") from None
    _reject_lone_surrogates(obj)
    check_server_message(obj)
    return obj


def encode(message: dict, max_bytes: int = MAX_REQUEST_BYTES) -> bytes:
    """One frame (header + body); refuses what the daemon would refuse for size or depth."""
    try:
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as err:
        raise WfsandboxError("bad_request", f"not encodable as JSON: {err}") from None
    if len(body) > max_bytes:
        raise WfsandboxError("too_large", f"request of {len(body)} bytes exceeds the cap", {"max_bytes": max_bytes})
    try:
        check_structure(body.decode("utf-8"))
    except WfsandboxError as err:
        raise WfsandboxError("bad_request", err.message) from None
    return struct.pack(">I", len(body)) + body


# ---------------------------------------------------------------------------- message checks


def _is_u64(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX


def _check_keys(obj: dict, required, allowed, what: str) -> None:
    unknown = set(obj) - set(allowed)
    if unknown:
        raise _protocol_error(f"unknown field {sorted(unknown)[0]!r} in {what}")
    missing = set(required) - set(obj)
    if missing:
        raise _protocol_error(f"missing field {sorted(missing)[0]!r} in {what}")


def _check_error(error) -> None:
    if not isinstance(error, dict):
        raise _protocol_error("error is not an object")
    _check_keys(error, {"code", "message"}, {"code", "message", "details"}, "error")
    code = error["code"]
    if not isinstance(code, str) or code not in ERROR_CODES or not isinstance(error["message"], str):
        raise _protocol_error(f"error code {str(code)[:64]!r} is not a known code")
    if code not in _DETAILS:
        if "details" in error:
            raise _protocol_error(f"error code {code} takes no details")
        return
    details = error.get("details")
    if not isinstance(details, dict):
        raise _protocol_error(f"error code {code} needs a details object")
    required, allowed = _DETAILS[code]
    _check_keys(details, required, allowed, f"details of {code}")


def check_server_message(obj: dict) -> None:
    """Checks the type and exact field set of one server → client message."""
    kind = obj.get("type")
    fields = set(obj) - {"type"}
    if kind == "welcome":
        keys = {"protocol", "server", "session", "rights", "idle_timeout_ms"}
        _check_keys(fields, keys, keys, kind)
        if obj["rights"] not in ("read", "control") or not _is_u64(obj["protocol"]) or not _is_u64(
            obj["idle_timeout_ms"]
        ):
            raise _protocol_error("malformed welcome")
    elif kind == "response":
        payload = "result" if obj.get("ok") is True else "error"
        _check_keys(fields, {"id", "ok", payload}, {"id", "ok", payload}, kind)
        if not _is_u64(obj["id"]) or not isinstance(obj["ok"], bool):
            raise _protocol_error("malformed response")
        if obj["ok"] and not isinstance(obj["result"], dict):
            raise _protocol_error("result is not an object")
        if not obj["ok"]:
            _check_error(obj["error"])
    elif kind == "stream":
        _check_keys(fields, {"id", "item"}, {"id", "item"}, kind)
        item = obj["item"]
        if not _is_u64(obj["id"]) or not isinstance(item, dict) or item.get("kind") not in STREAM_ITEM_KINDS:
            raise _protocol_error("malformed stream item")
        if item["kind"] == "violation":
            _check_keys(item, {"kind", "violation"}, {"kind", "violation"}, "violation item")
            if not isinstance(item["violation"], dict):
                raise _protocol_error("malformed violation item")
    elif kind == "stream_end":
        _check_keys(fields, {"id", "reason"}, {"id", "reason"}, kind)
        if not _is_u64(obj["id"]) or not isinstance(obj["reason"], str) or obj["reason"] not in STREAM_END_REASONS:
            raise _protocol_error("malformed stream_end")
    elif kind == "error":
        _check_keys(fields, {"error"}, {"error"}, kind)
        _check_error(obj["error"])
    else:
        raise _protocol_error(f"unknown message type {str(kind)[:64]!r}")


def _raise_error(error: dict) -> None:
    raise WfsandboxError(error["code"], error["message"], error.get("details"))


# ---------------------------------------------------------------------------- client


class Subscription:
    """An open stream (``logs`` with ``follow``, ``subscribe_events``, ``list_violations``
    with ``follow``). Iterating yields items (``kind`` removed; a ``violation`` item yields the
    violation record itself, its own ``kind`` kept) until the stream ends; ``end_reason`` then
    says why. Use it as a context manager or call ``cancel()`` to end it early."""

    def __init__(self, client: "Client", request_id: int, result: dict, initial: List[dict]):
        self.id = request_id
        self.result = result
        self.end_reason: Optional[str] = None
        self._client = client
        self._items: Deque[dict] = collections.deque(initial)

    def _push(self, item: dict) -> None:
        if len(self._items) >= MAX_BUFFERED_ITEMS:
            self._client._abandon(self, "lagged")
            return
        if item.get("kind") == "violation":
            self._items.append(item["violation"])
            return
        item = dict(item)
        item.pop("kind", None)
        self._items.append(item)

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        while not self._items:
            if self.end_reason is not None:
                raise StopIteration
            self._client._read_one()
        return self._items.popleft()

    def cancel(self) -> Optional[str]:
        """Ends the stream (items still buffered are discarded); returns why it ended."""
        self._items.clear()
        if self.end_reason is None:
            self._client._cancel(self)
        return self.end_reason

    close = cancel

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        if self._client._sock is not None and not self._client._broken:
            self.cancel()


class Client:
    """One session with the daemon. Connects and performs the handshake on creation;
    ``welcome`` holds the server's answer (``session``, ``rights``, ...)."""

    def __init__(
        self,
        socket_path: str = DEFAULT_SOCKET_PATH,
        token: Optional[str] = None,
        client_name: str = "wfsandbox-python",
        timeout: Optional[float] = None,
        sock: Optional[socket.socket] = None,
        server_uid: Optional[int] = 0,
    ):
        """``server_uid``: the uid the daemon must run as (checked with SO_PEERCRED before
        anything, the token included, is sent); ``None`` skips the check (a socket handed in
        with ``sock`` is not checked)."""
        self._next_id = 1
        self._streams: Dict[int, Subscription] = {}
        self._pending: set = set()  # ids of requests whose response someone waits for
        self._discard: set = set()  # ids of requests whose response nobody waits for
        self._responses: Dict[int, dict] = {}
        self._broken = False
        self._sock = sock if sock is not None else self._connect(socket_path, server_uid)
        try:
            self.welcome = self._handshake(client_name, token, timeout)
        except BaseException:
            self.close()
            raise
        self.session, self.rights, self.server = self.welcome["session"], self.welcome["rights"], self.welcome["server"]

    def _handshake(self, client_name: str, token: Optional[str], timeout: Optional[float]) -> dict:
        self._sock.settimeout(timeout)
        hello = {"type": "hello", "protocol": PROTOCOL_VERSION, "client": client_name}
        if token is not None:
            hello["token"] = token
        self._send(hello)
        first = self._read_message()
        if first["type"] == "error":
            _raise_error(first["error"])
        if first["type"] != "welcome" or first["protocol"] != PROTOCOL_VERSION:
            raise _protocol_error(f"expected a version {PROTOCOL_VERSION} welcome, got {first['type']}")
        return first

    @staticmethod
    def _connect(path: str, server_uid: Optional[int]) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as err:
            sock.close()
            raise WfsandboxError("daemon_not_running", f"nothing listens on {path}: {err.strerror}") from None
        except PermissionError as err:
            sock.close()
            raise WfsandboxError("permission_denied", f"{path}: {err.strerror}") from None
        except OSError:
            sock.close()
            raise
        if server_uid is not None:
            _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            if uid != server_uid:
                sock.close()
                # Whoever could put a listener there is not the daemon: it gets no hello, no token.
                raise WfsandboxError("permission_denied", f"{path} is served by uid {uid}, not uid {server_uid}")
        return sock

    # -- transport

    def _fail(self, code: str, message: str) -> WfsandboxError:
        self._broken = True
        return WfsandboxError(code, message)

    def _send(self, message: dict) -> None:
        if self._broken or self._sock is None:
            raise WfsandboxError("connection_closed", "the connection is no longer usable")
        frame = encode(message)
        try:
            self._sock.sendall(frame)
        except socket.timeout:
            raise self._fail("timeout", "sending timed out") from None
        except OSError as err:
            raise self._fail("connection_closed", f"send failed: {err}") from None

    def _recv_exact(self, count: int, at_boundary: bool) -> Optional[bytes]:
        buffer = bytearray(count)
        view, filled = memoryview(buffer), 0
        while filled < count:
            try:
                received = self._sock.recv_into(view[filled:], count - filled)
            except socket.timeout:
                raise self._fail("timeout", "no answer from the daemon in time") from None
            except OSError as err:
                raise self._fail("connection_closed", f"receive failed: {err}") from None
            if received == 0:
                if filled == 0 and at_boundary:
                    return None
                raise self._fail("connection_closed", "the daemon closed the connection inside a frame")
            filled += received
        return bytes(buffer)

    def _read_message(self) -> dict:
        if self._broken or self._sock is None:
            raise WfsandboxError("connection_closed", "the connection is no longer usable")
        header = self._recv_exact(HEADER_LEN, at_boundary=True)
        if header is None:
            raise self._fail("connection_closed", "the daemon closed the connection")
        (length,) = struct.unpack(">I", header)
        if length == 0 or length > MAX_RESPONSE_BYTES:
            raise self._fail("protocol_error", f"frame length {length} outside 1..{MAX_RESPONSE_BYTES}")
        body = self._recv_exact(length, at_boundary=False)
        try:
            return decode_body(body)
        except WfsandboxError as err:
            raise self._fail(err.code, err.message) from None

    def _read_one(self) -> None:
        """Reads one message and files it: a response by id, a stream item into its
        subscription. A connection-level error raises."""
        msg = self._read_message()
        kind = msg["type"]
        if kind == "response":
            if msg["id"] in self._discard:
                self._discard.discard(msg["id"])
            elif msg["id"] in self._pending:
                self._pending.discard(msg["id"])
                self._responses[msg["id"]] = msg
            else:
                raise self._fail("protocol_error", f"response to unknown request {msg['id']}")
        elif kind in ("stream", "stream_end"):
            subscription = self._streams.get(msg["id"])
            if subscription is None:
                return  # an abandoned stream's late items
            if kind == "stream":
                subscription._push(msg["item"])
            else:
                subscription.end_reason = msg["reason"]
                del self._streams[msg["id"]]
        elif kind == "error":
            self._broken = True
            _raise_error(msg["error"])
        else:
            raise self._fail("protocol_error", f"unexpected {kind} message")

    def _request(self, verb: str, args: Optional[dict] = None, discard: bool = False) -> int:
        request_id = self._next_id
        self._next_id += 1
        self._send({"type": "request", "id": request_id, "verb": verb, "args": args or {}})
        (self._discard if discard else self._pending).add(request_id)
        return request_id

    def _await(self, request_id: int) -> dict:
        while request_id not in self._responses:
            self._read_one()
        response = self._responses.pop(request_id)
        if not response["ok"]:
            _raise_error(response["error"])
        return response["result"]

    def _abandon(self, subscription: Subscription, reason: str) -> None:
        subscription.end_reason = reason
        subscription._items.clear()
        self._streams.pop(subscription.id, None)
        self._request("cancel", {"id": subscription.id}, discard=True)

    def _cancel(self, subscription: Subscription) -> None:
        result = self._await(self._request("cancel", {"id": subscription.id}))
        if not result.get("cancelled") and subscription.end_reason is None:
            raise self._fail("protocol_error", f"the daemon knows no stream {subscription.id} to cancel")
        while subscription.end_reason is None:
            self._read_one()
        subscription._items.clear()

    # -- generic entry points

    def call(self, verb: str, args: Optional[dict] = None) -> dict:
        """Sends one request and returns its result object."""
        return self._await(self._request(verb, args))

    def open_stream(self, verb: str, args: Optional[dict] = None, initial: Optional[List[dict]] = None) -> Subscription:
        request_id = self._request(verb, args)
        subscription = Subscription(self, request_id, {}, initial or [])
        self._streams[request_id] = subscription
        try:
            subscription.result = self._await(request_id)
        except WfsandboxError:
            self._streams.pop(request_id, None)
            raise
        return subscription

    # -- verbs

    @staticmethod
    def _manifest(path: Optional[str], manifest: Optional[dict], plugin_dir: Optional[str]) -> dict:
        if (path is None) == (manifest is None):
            raise WfsandboxError("bad_request", "give either a manifest path or an inline manifest")
        if path is not None:
            return {"path": os.path.abspath(path)}
        if plugin_dir is None:
            raise WfsandboxError("bad_request", "an inline manifest needs plugin_dir")
        return {"inline": {"document": manifest, "plugin_dir": os.path.abspath(plugin_dir)}}

    def load(self, manifest_path: Optional[str] = None, *, manifest: Optional[dict] = None,
             plugin_dir: Optional[str] = None) -> dict:
        return self.call("load", {"manifest": self._manifest(manifest_path, manifest, plugin_dir)})

    def validate(self, manifest_path: Optional[str] = None, *, manifest: Optional[dict] = None,
                 plugin_dir: Optional[str] = None) -> dict:
        return self.call("validate", {"manifest": self._manifest(manifest_path, manifest, plugin_dir)})

    def start(self, manifest_path: Optional[str] = None, *, name: Optional[str] = None,
              manifest: Optional[dict] = None, plugin_dir: Optional[str] = None) -> dict:
        """Starts a loaded plugin by ``name``, or loads and starts a manifest."""
        if name is not None:
            if manifest_path is not None or manifest is not None:
                raise WfsandboxError("bad_request", "give either a name or a manifest")
            return self.call("start", {"name": name})
        return self.call("start", {"manifest": self._manifest(manifest_path, manifest, plugin_dir)})

    def stop(self, name: str, grace_ms: Optional[int] = None) -> dict:
        args: Dict[str, Any] = {"name": name}
        if grace_ms is not None:
            args["grace_ms"] = grace_ms
        return self.call("stop", args)

    def restart(self, name: str) -> dict:
        return self.call("restart", {"name": name})

    def release(self, name: str) -> dict:
        """Lift the quarantine a violation response put ``name`` in; it becomes ``stopped``
        (not started). ``conflict`` unless it is quarantined."""
        return self.call("release", {"name": name})

    def list(self) -> dict:
        return self.call("list")

    def status(self, name: str) -> dict:
        return self.call("status", {"name": name})

    def logs(self, name: str, follow: bool = False, tail_bytes: Optional[int] = None):
        """The newest output as ``{"chunks": [...], "dropped_bytes": n}``; with
        ``follow=True`` a Subscription yielding those chunks and then new ones."""
        args: Dict[str, Any] = {"name": name, "follow": follow}
        if tail_bytes is not None:
            args["tail_bytes"] = tail_bytes
        if not follow:
            return self.call("logs", args)
        subscription = self.open_stream("logs", args)
        subscription._items.extendleft(reversed(subscription.result.get("chunks", [])))
        return subscription

    def stats(self, name: Optional[str] = None) -> dict:
        return self.call("stats", {} if name is None else {"name": name})

    def publish(self, topic: str, payload: Any) -> dict:
        return self.call("publish", {"topic": topic, "payload": payload})

    def subscribe_events(self, topics: Optional[List[str]] = None, backlog: int = 0, follow: bool = True) -> Subscription:
        args: Dict[str, Any] = {"backlog": backlog, "follow": follow}
        if topics is not None:
            args["topics"] = list(topics)
        return self.open_stream("subscribe_events", args)

    def list_violations(self, name: Optional[str] = None, limit: Optional[int] = None) -> dict:
        return self.call("list_violations", self._violations_args(name, limit))

    def follow_violations(self, name: Optional[str] = None, limit: Optional[int] = None) -> Subscription:
        """``list_violations`` with ``follow``: a Subscription yielding the recorded
        violations (of ``name``, or of every plugin), oldest first, then each one the daemon
        records afterwards until cancelled. ``result`` is the response (newest first, with
        ``truncated``)."""
        args = self._violations_args(name, limit)
        args["follow"] = True
        subscription = self.open_stream("list_violations", args)
        # Newest first in the response; extendleft reverses them into oldest first.
        subscription._items.extendleft(subscription.result.get("violations", []))
        return subscription

    @staticmethod
    def _violations_args(name: Optional[str], limit: Optional[int]) -> Dict[str, Any]:
        args: Dict[str, Any] = {}
        if name is not None:
            args["name"] = name
        if limit is not None:
            args["limit"] = limit
        return args

    def reload_policy(self, path: Optional[str] = None) -> dict:
        return self.call("reload_policy", {} if path is None else {"path": os.path.abspath(path)})

    def shutdown(self) -> dict:
        return self.call("shutdown")

    # -- lifetime

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
