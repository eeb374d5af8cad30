"""wfsandbox_client against a real `wfsandbox serve` (root; the workspace built).

Run with: sudo python3 -m unittest discover -s sdk/python
Skipped when not root or the binaries are missing, unless WFSANDBOX_REQUIRE_DAEMON=1 (set by
scripts/test), which turns a skip into a failure so CI cannot pass without running them.

The platform's own flow: the Python example plugin is started from its manifest, the
orchestrator publishes `energy.update`, and the plugin's `ui.render` reaches a subscription.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import wfsandbox_client as wc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WFSANDBOX = os.path.join(TARGET, "debug", "wfsandbox")
PROBE = os.path.join(TARGET, "debug", "wf-probe")
ENERGY_MONITOR = os.path.join(ROOT, "examples", "plugins", "energy-monitor", "manifest.json")


def unavailable():
    if os.geteuid() != 0:
        return "needs root (the daemon clones namespaces)"
    if not (os.path.exists(WFSANDBOX) and os.path.exists(PROBE)):
        return "build the workspace first (cargo build --workspace)"
    return None


def skip_or_fail(reason):
    if os.environ.get("WFSANDBOX_REQUIRE_DAEMON") == "1":
        raise AssertionError("daemon tests required but cannot run: " + reason)
    raise unittest.SkipTest(reason)


class Daemon:
    """A daemon with its own socket, state directory and audit log."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wf-pydaemon-")
        os.chmod(self.dir, 0o755)
        with open(os.path.join(ROOT, "schemas", "default-security-policy.json")) as f:
            policy = json.load(f)
        policy["audit"]["path"] = os.path.join(self.dir, "audit", "audit.jsonl")
        self.policy = os.path.join(self.dir, "policy.json")
        with open(self.policy, "w") as f:
            json.dump(policy, f)
        self.socket = os.path.join(self.dir, "run", "control.sock")
        self.log = open(os.path.join(self.dir, "daemon.log"), "w")
        self.proc = subprocess.Popen(
            [WFSANDBOX, "serve", "--socket", self.socket, "--state-dir", os.path.join(self.dir, "state"),
             "--policy", self.policy], stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                wc.Client(socket_path=self.socket).close()
                return
            except wc.WfsandboxError:
                time.sleep(0.02)
        self.stop()
        raise AssertionError("the daemon did not start")

    def client(self):
        return wc.Client(socket_path=self.socket, client_name="python-test")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def probe_plugin(directory, name, args, extra=None):
    plugin = os.path.join(directory, name)
    os.mkdir(plugin)
    os.chmod(plugin, 0o755)
    shutil.copy(PROBE, os.path.join(plugin, "probe"))
    os.chmod(os.path.join(plugin, "probe"), 0o755)
    manifest = {"name": name, "version": "1.0.0", "entry_point": "probe"}
    manifest.update(extra or {})
    for file_name, content in (("manifest.json", manifest), ("probe-args.json", args)):
        with open(os.path.join(plugin, file_name), "w") as f:
            json.dump(content, f)
        os.chmod(os.path.join(plugin, file_name), 0o644)
    return os.path.join(plugin, "manifest.json")


class AgainstARealDaemon(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        reason = unavailable()
        if reason:
            skip_or_fail(reason)
        cls.daemon = Daemon()
        cls.plugins = tempfile.mkdtemp(prefix="wf-pyplugins-")
        os.chmod(cls.plugins, 0o755)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        shutil.rmtree(cls.plugins, ignore_errors=True)

    def test_the_python_example_renders_what_the_orchestrator_publishes(self):
        with self.daemon.client() as client:
            started = client.start(ENERGY_MONITOR)
            self.assertEqual((started["name"], started["state"]), ("energy_monitor", "running"))
            with client.subscribe_events(topics=["ui.render"]) as events:
                deadline = time.monotonic() + 10
                # The plugin may still be importing when the first reading arrives.
                while time.monotonic() < deadline:
                    client.publish("energy.update", {"watts": 42.5})
                    try:
                        event = next(events)
                        break
                    except StopIteration:
                        self.fail("the subscription ended")
                self.assertEqual(event["payload"]["text"], "42.5 W")
                self.assertEqual(event["sender"], "plugin:energy_monitor")
            stopped = client.stop("energy_monitor")
            self.assertEqual(stopped["state"], "stopped")

    def test_every_verb_and_its_errors(self):
        manifest = probe_plugin(self.plugins, "verbs", ["sleep", "60"])
        with self.daemon.client() as client:
            self.assertEqual(client.validate(manifest)["name"], "verbs")
            with self.assertRaises(wc.WfsandboxError) as invalid:
                client.validate(manifest=({"name": "Bad Name", "version": "1", "entry_point": "x"}),
                                plugin_dir=self.plugins)
            self.assertEqual(invalid.exception.code, "invalid_manifest")
            self.assertEqual(invalid.exception.exit_code, wc.EXIT_INVALID)
            self.assertTrue(any(p["pointer"] == "/name" for p in invalid.exception.details["problems"]))

            self.assertEqual(client.load(manifest)["plugin"]["state"], "validated")
            with self.assertRaises(wc.WfsandboxError) as again:
                client.load(manifest)
            self.assertEqual(again.exception.code, "already_exists")
            running = client.start(name="verbs")
            self.assertEqual(running["state"], "running")
            names = [p["name"] for p in client.list()["plugins"]]
            self.assertIn("verbs", names)
            status = client.status("verbs")
            self.assertEqual(status["enforcement"]["seccomp"]["status"], "enforced")
            stats = client.stats("verbs")["plugins"][0]
            self.assertGreater(stats["memory"]["current"], 0)
            self.assertEqual(stats["processes"][0]["pid"], running["pid"])
            logs = client.logs("verbs")
            self.assertIn("dropped_bytes", logs)
            restarted = client.restart("verbs")
            self.assertNotEqual(restarted["pid"], running["pid"])
            self.assertEqual(client.stop("verbs", grace_ms=100)["state"], "stopped")
            with self.assertRaises(wc.WfsandboxError) as missing:
                client.status("ghost")
            self.assertEqual((missing.exception.code, missing.exception.exit_code), ("no_such_plugin", wc.EXIT_NO_SUCH_PLUGIN))
            self.assertEqual(client.reload_policy()["path"], self.daemon.policy)
            self.assertIn("violations", client.list_violations())

    def test_a_followed_log_and_a_cancelled_subscription(self):
        manifest = probe_plugin(self.plugins, "talker", ["sleep", "0.5"])
        with self.daemon.client() as client:
            client.start(manifest)
            with client.logs("talker", follow=True, tail_bytes=0) as follow:
                text = "".join(item.get("text", "") for item in follow)
            self.assertIn('"probe":"sleep"', text)
            subscription = client.subscribe_events(topics=["nothing.here"])
            self.assertEqual(subscription.cancel(), "cancelled")
            self.assertIn("plugins", client.list())

    def test_a_followed_violation_arrives_as_the_plugin_misbehaves(self):
        manifest = probe_plugin(self.plugins, "offender", ["publish", "secret.topic", "{}"])
        follower = wc.Client(socket_path=self.daemon.socket, client_name="python-test", timeout=20)
        with follower, self.daemon.client() as client:
            with follower.follow_violations("offender") as live:
                self.assertEqual(live.result["violations"], [])
                client.start(manifest)
                violation = next(live)
                self.assertEqual((violation["plugin"], violation["layer"], violation["kind"]),
                                 ("offender", "broker", "topic_denied"))
                self.assertEqual(violation["detail"]["topic"], "secret.topic")
                self.assertEqual(set(violation), {"time_ms", "plugin", "instance", "layer", "kind", "detail",
                                                  "rule", "action"})
            self.assertEqual(live.end_reason, "cancelled")


if __name__ == "__main__":
    unittest.main()
