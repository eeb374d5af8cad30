"""energy_monitor: renders every energy.update reading as a ui.render widget.

Runs inside the wfsandbox sandbox; `wfplugin` is provided there on PYTHONPATH.
"""

import sys

import wfplugin

HIGH_WATTS = 1000.0


def render(payload):
    """The ui.render payload for one energy.update payload like {"watts": 42.5}."""
    watts = payload.get("watts") if isinstance(payload, dict) else None
    if isinstance(watts, bool) or not isinstance(watts, (int, float)):
        return {"widget": "energy", "text": "invalid reading", "level": "unknown"}
    level = "high" if watts >= HIGH_WATTS else "normal"
    return {"widget": "energy", "text": f"{watts:.1f} W", "watts": watts, "level": level}


def main():
    channel = wfplugin.Channel()
    for message in channel.messages():
        if isinstance(message, wfplugin.Denial):
            print(f"energy_monitor: publish on {message.topic} denied: {message.reason}", file=sys.stderr)
        elif isinstance(message, wfplugin.Event) and message.topic == "energy.update":
            channel.publish("ui.render", render(message.payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
