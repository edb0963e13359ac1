"""The challenge actions, named after the liveness contract's ``Action`` enum (``ACTION_BLINK`` → ``BLINK``).

The names in settings (AUTH_CHALLENGE_ACTIONS), challenges, the JSON API and the audit log are these; the gRPC
request carries the enum values. A new action in the proto appears here by itself and needs only its prompt.
"""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from faceauth.liveness.v1 import liveness_pb2

_PREFIX = "ACTION_"

#: name → proto enum value, for every action but UNSPECIFIED, in the proto's order.
VALUES: dict[str, int] = {
    name.removeprefix(_PREFIX): value
    for name, value in liveness_pb2.Action.items()
    if value != liveness_pb2.ACTION_UNSPECIFIED
}
NAMES: tuple[str, ...] = tuple(VALUES)

#: What the capture page asks the user to do, per action (lazy: in the language of the request that sends it).
PROMPTS: dict[str, LazyString] = {
    "BLINK": _l("Blink your eyes"),
    "TURN_LEFT": _l("Turn your head to your left"),
    "TURN_RIGHT": _l("Turn your head to your right"),
}
if set(PROMPTS) != set(NAMES):  # a proto action without a prompt (or a stale one) is a bug, found at import
    raise RuntimeError(f"actions.PROMPTS must name exactly the proto's actions {NAMES}, has {tuple(PROMPTS)}")
