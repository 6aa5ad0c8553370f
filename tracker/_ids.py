"""Run ids: unique and sortable by creation time, with a short form that tells runs apart.

An id is 10 characters of milliseconds, then 6 random ones. Its first characters are shared by
every run made near the same time (runs of one second share 8), so a listing shows the
*last* 8 instead (:func:`short_id`): 10 bits of milliseconds and 30 random, about one in a
million million. A reference is a full id, a prefix of one (as before), or a prefix of a short
id; ids keep their order, so a run's rows stay together in the catalog's row groups.
"""

from __future__ import annotations

import hashlib
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case: no i, l, o, u
#: A run id as a POSIX regular expression (a PostgreSQL catalog checks ids with it)
RUN_ID_PATTERN = f"^[{_ALPHABET}]{{16}}$"
_WORDS_A = (
    "amber", "bold", "brisk", "calm", "clever", "cosmic", "crisp", "daring", "eager", "fancy",
    "gentle", "golden", "happy", "jolly", "keen", "lively", "lucky", "mellow", "nimble", "proud",
    "quiet", "rapid", "silent", "snowy", "sunny", "swift", "tidy", "vivid", "witty", "zesty",
)
_WORDS_B = (
    "badger", "bison", "crane", "dolphin", "eagle", "falcon", "ferret", "gecko", "heron", "ibis",
    "jaguar", "koala", "lemur", "lynx", "marten", "narwhal", "otter", "panda", "puffin", "quail",
    "raven", "salmon", "seal", "tapir", "tiger", "toucan", "walrus", "wombat", "yak", "zebra",
)


def new_run_id() -> str:
    """16 characters: 10 of milliseconds since the epoch, then 6 random (30 bits)."""
    return _stamp(time.time_ns() // 1_000_000) + "".join(secrets.choice(_ALPHABET)
                                                         for _ in range(6))


def derived_run_id(millis: int, seed: bytes) -> str:
    """The id of a run started at ``millis``, its last 6 characters taken from a hash of
    ``seed``: a run imported from another tracker (MLflow) gets the same id at every import."""
    digest = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "big")
    return _stamp(millis) + "".join(_ALPHABET[(digest >> shift) & 31]
                                    for shift in range(25, -1, -5))


def _stamp(millis: int) -> str:
    """10 characters that sort as the time ``millis`` (clamped to what 50 bits hold)."""
    millis = min(max(millis, 0), 2**50 - 1)
    return "".join(_ALPHABET[(millis >> shift) & 31] for shift in range(45, -1, -5))


SHORT = 8  # characters in a run's short id
MIN_REF = 4  # characters a prefix needs, as in git: fewer would name too many runs


def short_id(run_id: str) -> str:
    """The id as listings show it: its last :data:`SHORT` characters, the varying ones."""
    return run_id[-SHORT:]


def is_run_id(text: str) -> bool:
    """Whether ``text`` has the shape :func:`new_run_id` gives (ids from files are checked)."""
    return len(text) == 16 and is_id_text(text)


def is_id_text(text: str) -> bool:
    """Whether ``text`` holds only the characters ids are made of (a prefix may)."""
    return all(c in _ALPHABET for c in text)


def new_run_name() -> str:
    """A readable name such as ``swift-otter-42``."""
    return f"{secrets.choice(_WORDS_A)}-{secrets.choice(_WORDS_B)}-{secrets.randbelow(100)}"


def run_key(project: str, run_id: str) -> str:
    """The run's URI-style key, ``tracker://<project>/runs/<id>``."""
    return f"tracker://{project}/runs/{run_id}"


def parse_ref(ref: str) -> tuple[str | None, str]:
    """The project a reference names (None unless it is a key) and the id or id prefix in it."""
    ref = ref.strip()
    if ref.startswith("tracker://") and "/runs/" in ref:
        project, run_id = ref.removeprefix("tracker://").rsplit("/runs/", 1)
        return project, run_id.strip("/")
    return None, ref
