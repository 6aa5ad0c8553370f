"""Secrets never reach the spool or the catalog: they are replaced when recorded.

A param whose key names a secret (``db_password``, ``api_key``, ``GITHUB_TOKEN``...) is stored as
a marker, ``<redacted:str:1f3a9c0b>``: the kind of the value it replaced and the first 8 hex
digits of an HMAC-SHA256 of that value under the catalog's own key (``<catalog>.key``, 32 random
bytes, mode 0600, made when first needed). Equal secrets give equal markers, so runs still
compare; without the key file a marker cannot be checked against a dictionary of guesses, as a
plain hash could. Credential-looking text (AWS, GitHub, Slack, Google, OpenAI-style keys, JWTs,
private-key blocks, ``user:password@`` in URLs) is replaced by markers wherever it appears:
param values, notes, cell sources and errors, the stored copy of a notebook.

Settings: ``TRACKER_REDACT=0`` turns it off; ``TRACKER_REDACT_KEYS`` and
``TRACKER_REDACT_VALUES`` add a regex each (keys: searched case-insensitively in the key;
values: searched in text); a notebook's ``metadata.tracker.redact`` may be ``false`` or
``{"keys": [...], "values": [...]}``.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker import cell_code, notices

if TYPE_CHECKING:
    from tracker.catalog import Catalog

REDACTED = "redacted"  # the kind a param whose whole value was replaced is stored with
_KEY_CACHE_LIMIT = 10_000  # keys whose decision is remembered per redactor
_KNOWN_LIMIT = 1_000  # secret values remembered, to be scrubbed from text wherever they recur
_PARSED_LIMIT = 200_000  # characters of a cell parsed for assignments (it runs after each cell)
_KNOWN_SHORTEST = 6  # shorter secrets are not looked for in text: "admin" would be everywhere

# A key is split into lowercase words (``dbPassword`` -> ``_db_password_``) before these match.
_SECRET_KEY = (
    r"password|passwd|passphrase|credential|_creds?_|_pwd_"
    r"|(?:^|_(?:db|user|sql|mysql|pg|postgres|smtp|ftp|redis|admin|root|login|mail))_pass_$"
    r"|secret(?:s|key)?_"  # client_secret, secrets, secret_key; not secretary
    r"|(?:api|access|private|secret|signing|encryption|master|ssh|account)_?keys?_"
    r"|_(?:auth|authorization|bearer|oauth|cookie)_"
    r"|(?:access|auth|api|refresh|bearer|session|github|gh|hf|slack|oauth|csrf|private|personal"
    r"|deploy|npm|pypi|sas)_?token_"
    r"|^_token_$"
)
# Tokens of a tokenizer are not credentials: pad_token, eos_token, max_token...
_TOKENIZER_WORD = (
    r"_(?:pad|eos|bos|unk|sep|cls|mask|start|end|stop|special|max|min|num|n|total|new|prompt"
    r"|input|output|next|first|last|image|vocab)_token_$"
)
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+")
# Letters of which every match of _SECRET_KEY holds one run: a key whose lowercase holds none
# is no secret under the default rules. One search (~0.2 us; case-insensitive, it took 1 us)
# instead of splitting the key into words and matching them (~1.5 us): every new param key
# pays it on the logging path.
_SECRET_KEY_NEEDLES = re.compile("pass|pwd|cred|secret|key|auth|bearer|cookie|token")
# Two string literals Python joins into one: a quote, then only spaces, line breaks and
# comments, then another literal (a prefix letter or two, and its quote). Loose on purpose: a
# false match costs a parse, a missed one a secret.
_ADJACENT_LITERALS = re.compile(r"[\"'](?:\s|#[^\n]*\n)*[rRbBuUfF]{0,2}[\"']")

# Credential formats, recognised anywhere in text.
_CREDENTIALS = (
    # user:password@ in a URL: the password goes, and the user too if it is a key
    # (``s3://AKIA...:...@bucket``); first, so that a key as the user does not hide the password.
    r"(?<=://)[^\s:/@]+:(?P<userinfo>[^\s@/]+)(?=@)",
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|.*)",
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b",
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    r"\bxox[baprs]-[A-Za-z0-9-]{10,}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+",
    r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",
    r"\bsk-[A-Za-z0-9_-]{20,}",
    r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
    r"\bhf_[A-Za-z0-9]{30,}\b",
    r"\bglpat-[A-Za-z0-9_-]{20,}",
    r"\bnpm_[A-Za-z0-9]{36}\b",
    r"\bpypi-[A-Za-z0-9_-]{50,}",
    # HTTP credentials: the scheme stays. A Basic value is base64 of user:password, which
    # mixes cases and digits; a bare word after "basic" in prose does not.
    r"\b(?:[Bb]earer|BEARER)[ \t]+(?P<bearer>[A-Za-z0-9._~+/-]{16,}=*)",
    r"\bBasic[ \t]+(?=\S*[a-z])(?=\S*[A-Z])(?=\S*[0-9+/=])(?P<basic>[A-Za-z0-9+/]{8,}=*)",
    # An Azure storage connection string's key.
    r"AccountKey=(?P<azure>[A-Za-z0-9+/]{20,}=*)",
    # An AWS secret key is 40 base64 characters: only recognised beside its name, since paths
    # and identifiers look alike.
    r"(?i:aws[\w.-]{0,30}(?:secret|key)[\w.-]{0,30}[\"']?\s*[=:]\s*[\"']?)(?P<aws>[A-Za-z0-9/+]{40})"
    r"(?![A-Za-z0-9/+=])",
)
# Literal pieces of which every credential above holds one: a text without any is not
# searched (the search costs ~10 us on a 50-character param; looking for these, ~0.5 us).
_NEEDLES = ("PRIVATE KEY", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA",
            "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "eyJ", "AIza", "sk-",
            "k_live_", "k_test_", "hf_", "://", "aws", "AWS", "Aws", "glpat-", "npm_", "pypi-",
            "earer", "EARER", "Basic", "AccountKey=")
# name=value / name: value in free text (notes, errors, outputs); the name decides.
# A lookahead, so that a value (`failed: password=...`) may itself start the next pair.
_ASSIGNED = re.compile(r"(?<![\w.-])(?=(?P<name>[A-Za-z_][\w.-]*)(?P<sep>[\"']?\s*[=:]\s*)"
                       r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s\"',;&)}\]]+))")
_MARKER = re.compile(r"<redacted:[a-z]+:(?:[0-9a-f]{8}|unchecked)>")
_SECRET_GROUPS = ("userinfo", "aws", "bearer", "basic", "azure")  # only these parts go
_SCHEMES = ("bearer", "basic")  # `Authorization: Bearer <token>`: the token is the secret
# IPython's `%env NAME VALUE` (no `=`): the name decides, as in a pair.
_ENV_MAGIC = re.compile(r"(?P<head>^[ \t]*%env[ \t]+(?P<name>[A-Za-z_]\w*)[ \t]+)"
                        r"(?P<value>[^=\s].*?)[ \t]*$", re.MULTILINE)
_CONTAINERS = (dict, list)
_MIME_TEXT = ("text/", "application/json")  # output data scrubbed; images are left alone


class Rules:
    """What counts as a secret: key patterns and credential patterns, defaults plus extras."""

    def __init__(self, extra_keys: Sequence[str] = (), extra_values: Sequence[str] = ()) -> None:
        self.keys = re.compile(_SECRET_KEY)
        self.tokenizer = re.compile(_TOKENIZER_WORD)
        self.extra_keys = [re.compile(p, re.IGNORECASE) for p in _checked(extra_keys, "key")]
        extra = _checked(extra_values, "value")
        self.values = re.compile("|".join(f"(?:{p})" for p in [*_CREDENTIALS, *extra]), re.DOTALL)
        # A user's own patterns have no known pieces: then every text is searched.
        self.needles = None if extra else re.compile("|".join(map(re.escape, _NEEDLES)))

    def suspect(self, text: str) -> bool:
        """Whether ``text`` may hold a credential (cheap; :attr:`values` decides)."""
        return self.needles is None or self.needles.search(text) is not None

    def may_name_secrets(self, source: str) -> bool:
        """Whether a cell's ``source`` may give a literal to a secret-named thing (cheap; the
        parse decides). Every name :meth:`secret_key` takes holds a needle, and a name in ASCII
        code is spelt as written: unless an escape or two adjacent literals ("pa" "ss") build it,
        or the user's own key patterns apply."""
        if self.extra_keys or not source.isascii() or "\\" in source:
            return True
        return bool(_SECRET_KEY_NEEDLES.search(source.lower())
                    or _ADJACENT_LITERALS.search(source))

    def secret_key(self, key: str) -> bool:
        """Whether a param, variable or field named ``key`` holds a secret."""
        if self.extra_keys and any(p.search(key) for p in self.extra_keys):
            return True
        if not _SECRET_KEY_NEEDLES.search(key.lower()):
            return False
        # The words of the key, each between underscores ("apiKey" -> "_api_key_"); one sub
        # rather than split, lower and join per word: a third faster on the logging path.
        words = "_" + _WORD_BREAK.sub("_", key).strip("_").lower() + "_"
        return bool(self.keys.search(words)) and not self.tokenizer.search(words)


def _checked(patterns: Any, what: str) -> list[str]:
    """The patterns that compile; a bad one is a warning, not a broken notebook."""
    good = []
    for pattern in [patterns] if isinstance(patterns, str) else list(patterns or ()):
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            _warn(f"tracker: redaction {what} pattern {pattern!r} ignored ({exc})")
            continue
        good.append(f"(?:{pattern})")
    return good


class Redactor:
    """Applies :class:`Rules` with markers keyed by one catalog's key file."""

    def __init__(self, key_path: Path | None, rules: Rules | None) -> None:
        self.key_path = key_path
        self.rules = rules  # None: redaction is off
        self._key: bytes | None = None
        self._decisions: dict[str, bool] = {}
        self._known: dict[str, str] = {}  # secret values met so far -> their markers
        self._lock = threading.Lock()

    def marker(self, value: Any, kind: str) -> str:
        """``<redacted:KIND:HASH>``: HASH is an HMAC of the value under the catalog's key."""
        data = (value if isinstance(value, str) else json.dumps(value, default=str)).encode(
            "utf-8", "surrogatepass")
        digest = hmac.new(self._secret(), data, hashlib.sha256).hexdigest()[:8]
        return f"<redacted:{kind}:{digest}>"

    def _hidden(self, value: Any, kind: str) -> str:
        """The marker of a secret-named value, remembered so that text repeating it (an error
        message, a printed output) loses it too. A marker already (an imported run) is kept."""
        if isinstance(value, str) and _MARKER.fullmatch(value):
            return value
        if kind == "str" and value in self._known:  # no HMAC for a secret logged again
            return self._known[value]
        marker = self.marker(value, kind)
        if isinstance(value, str) and len(value) >= _KNOWN_SHORTEST \
                and len(self._known) < _KNOWN_LIMIT:
            self._known[value] = marker
        return marker

    def param(self, key: str, value: Any, kind: str) -> tuple[Any, str]:
        """The ``(value, kind)`` to store: a marker for a secret key, scrubbed text otherwise.

        On the logging hot path: the key's decision is cached, and only text is scanned.
        """
        rules = self.rules
        if rules is None:
            return value, kind
        try:
            secret = self._decisions.get(key)
            if secret is None:
                secret = self._decide(key)
            if secret:
                return self._hidden(value, kind), REDACTED
            if isinstance(value, str):  # a str, or a path, bytes or enum stored as text
                known = self._known.get(value)
                if known is not None:  # a secret met before, now under an ordinary name
                    return known, REDACTED
                # "=" or ":" may start a `password=...` pair.
                suspect = "=" in value or ":" in value or rules.suspect(value)
                return (self.text(value) if suspect else value), kind
            if isinstance(value, _CONTAINERS):  # containers, and objects stored by description
                return self.value("", value), kind
            return value, kind
        except Exception as exc:  # never into user code, and never stored unchecked
            return _failed(exc, kind), REDACTED

    def _decide(self, key: str) -> bool:
        assert self.rules is not None
        if len(self._decisions) >= _KEY_CACHE_LIMIT:
            self._decisions.clear()
        secret = self._decisions[key] = self.rules.secret_key(key)
        return secret

    def value(self, key: str, value: Any) -> Any:
        """A JSON-able value of a field named ``key``: a marker if the name is secret, and
        every string inside scrubbed (dicts' secret-named entries too)."""
        if self.rules is None:
            return value
        if key and isinstance(value, str | int | float | bool) and self._is_secret(key):
            return self._hidden(value, type(value).__name__)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value("", v) for v in value]
        return value

    def text(self, text: str | None) -> str | None:
        """Free text with credentials, and values of secret-named ``name=value``, replaced."""
        if self.rules is None or not text:
            return text
        try:
            return self._text(text)
        except Exception as exc:  # never into user code, and never stored unchecked
            return _failed(exc, "str")

    def _text(self, text: str) -> str:
        for secret, marker in list(self._known.items()):
            if secret in text:  # only as a whole token: "hunter22x" does not hold "hunter22"
                text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", marker, text)
        assert self.rules is not None
        if self.rules.suspect(text):
            text = self.rules.values.sub(self._credential, text)
        return self._pairs(text) if "=" in text or ":" in text else text

    def source(self, source: str) -> str:
        """A cell's code, same shape: string literals given to secret-named variables, dict
        entries or keyword arguments become the marker, and credentials anywhere too."""
        if self.rules is None or not source:
            return source
        if self.rules.may_name_secrets(source):  # the parse is most of a cell's hook time
            source = self._literals_hidden(source)
        source = _MAGIC_LINE.sub(lambda line: self._magic(line.group(0)), source)
        return self.rules.values.sub(self._credential, source) if self.rules.suspect(
            source) else source

    def _literals_hidden(self, source: str) -> str:
        """``source`` with the literals it gives to secret-named things replaced."""
        assert self.rules is not None
        lines = cell_code.lines(source)
        edits = sorted(_secret_literals(source, self.rules.secret_key), reverse=True)
        for (line, col), (end_line, end_col), literal in edits:
            start, end = _offset(lines, line, col), _offset(lines, end_line, end_col)
            marker = json.dumps(self._hidden(literal, type(literal).__name__))
            head = "".join(lines[:line - 1]) + lines[line - 1][:start]
            tail = lines[end_line - 1][end:] + "".join(lines[end_line:])
            lines = cell_code.lines(head + marker + tail)
        return "".join(lines)

    def _magic(self, line: str) -> str:
        """A magic or shell line: ``name=value`` pairs, and ``%env NAME VALUE``."""
        env = _ENV_MAGIC.match(line)
        if env is not None and self._is_secret(env.group("name")):
            return env.group("head") + self._hidden(env.group("value"), "str") \
                + line[env.end("value"):]
        return self._pairs(line)

    def _credential(self, match: re.Match[str]) -> str:
        if _MARKER.fullmatch(match.group(0)):
            return match.group(0)
        for group in _SECRET_GROUPS:
            secret = match.group(group)
            if secret is not None:
                start, end = match.span(group)
                base = match.start()
                text = match.group(0)
                assert self.rules is not None
                head = self.rules.values.sub(self._credential, text[:start - base])
                return head + self.marker(secret, "str") + text[end - base:]
        return self.marker(match.group(0), "str")

    def _pairs(self, text: str) -> str:
        """``text`` with the values of secret-named ``name=value`` pairs replaced."""
        spans: list[tuple[int, int]] = []
        for match in _ASSIGNED.finditer(text):
            value = match.group("value")
            if _MARKER.search(value) or value.lower() in _SCHEMES \
                    or not self._is_secret(match.group("name")):
                continue
            start, end = match.span("value")
            if value[0] in "\"'" and len(value) > 1:
                start, end = start + 1, end - 1  # the quotes stay
            if not spans or start >= spans[-1][1]:
                spans.append((start, end))
        for start, end in reversed(spans):
            text = text[:start] + self._hidden(text[start:end], "str") + text[end:]
        return text

    def _is_secret(self, key: str) -> bool:
        secret = self._decisions.get(key)
        return self._decide(key) if secret is None else secret

    def notebook(self, raw: bytes) -> bytes:
        """A saved ``.ipynb`` with sources, text outputs and metadata scrubbed; ``raw`` itself
        when nothing needed it. A file that is not JSON is scrubbed as text."""
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            text = raw.decode("utf-8", "surrogateescape")
            return (self.text(text) or "").encode("utf-8", "surrogateescape")
        redactor = self._for_notebook(document)
        if redactor.rules is None:
            return raw
        scrubbed = redactor._notebook(document)
        if scrubbed == document:
            return raw
        return (json.dumps(scrubbed, indent=1, ensure_ascii=False) + "\n").encode(
            "utf-8", "surrogatepass")

    def _for_notebook(self, document: dict[str, Any]) -> Redactor:
        """This redactor with the notebook's own ``metadata.tracker.redact`` applied."""
        metadata = document.get("metadata")
        tracker = metadata.get("tracker") if isinstance(metadata, dict) else None
        setting = tracker.get("redact") if isinstance(tracker, dict) else None
        if setting is None or self.rules is None:
            return self
        return Redactor(self.key_path, rules_from(setting))

    def _notebook(self, document: dict[str, Any]) -> dict[str, Any]:
        cells = document.get("cells")
        for cell in cells if isinstance(cells, list) else ():
            # Secrets assigned anywhere are known before any output is read: a later cell's
            # password may have been printed by an earlier one.
            if isinstance(cell, dict) and cell.get("cell_type") == "code":
                self.source(_joined(cell.get("source")) or "")
        result = {k: (self.value(k, v) if k != "cells" else v) for k, v in document.items()}
        if isinstance(cells, list):
            result["cells"] = [self._cell(c) if isinstance(c, dict) else c for c in cells]
        return result

    def _cell(self, cell: dict[str, Any]) -> dict[str, Any]:
        result = dict(cell)
        source = _joined(cell.get("source"))
        if source is not None:
            scrubbed = self.source(source) if cell.get("cell_type") == "code" else self.text(source)
            if scrubbed != source:
                result["source"] = scrubbed
        if isinstance(cell.get("metadata"), dict):
            result["metadata"] = self.value("metadata", cell["metadata"])
        if isinstance(cell.get("outputs"), list):
            result["outputs"] = [self._output(o) if isinstance(o, dict) else o
                                 for o in cell["outputs"]]
        return result

    def _output(self, output: dict[str, Any]) -> dict[str, Any]:
        result = dict(output)
        for field in ("text", "evalue", "traceback"):
            if field in output:
                result[field] = self._text_field(output[field])
        data = output.get("data")
        if isinstance(data, dict):
            result["data"] = {mime: self._text_field(v) if mime.startswith(_MIME_TEXT) else v
                              for mime, v in data.items()}
        return result

    def _text_field(self, value: Any) -> Any:
        joined = _joined(value)
        if joined is not None:
            scrubbed = self.text(joined)
            return value if scrubbed == joined else scrubbed
        if isinstance(value, list):  # a traceback: one line per entry
            return [self.text(v) if isinstance(v, str) else v for v in value]
        return self.value("", value)

    def _secret(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = _load_key(self.key_path)
        return self._key


def _joined(value: Any) -> str | None:
    """A notebook's multi-line string (a string, or a list of lines) as one string."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "".join(value) if all(v.endswith("\n") for v in value[:-1]) else None
    return None


# -- cell sources ---------------------------------------------------------------------------

Position = tuple[int, int]  # (line, column in UTF-8 bytes), as ast gives them
_MAGIC_LINE = re.compile(r"^[ \t]*[%!].*$", re.MULTILINE)  # `%env DB_PASSWORD=...`


def _secret_literals(source: str, secret: Callable[[str], bool]) -> Iterator[
        tuple[Position, Position, str | bytes]]:
    """The string literals a cell gives to secret-named things, with where they are."""
    if len(source) > _PARSED_LIMIT:
        return
    tree = cell_code.parsed(source)
    if tree is None:
        return
    for node in ast.walk(tree):
        for name, value in _named_values(node):
            if name is not None and secret(name) and isinstance(value, ast.Constant) \
                    and isinstance(value.value, str | bytes) and value.end_lineno is not None:
                yield ((value.lineno, value.col_offset),
                       (value.end_lineno, value.end_col_offset or 0), value.value)


def _named_values(node: ast.AST) -> Iterator[tuple[str | None, ast.AST]]:
    """(name, value) pairs: assignments, annotated assignments, dict entries, keywords, and
    ``setdefault``/``get``-style calls whose first argument is a string key."""
    if isinstance(node, ast.Assign):
        for target in node.targets:
            yield from _assigned(target, node.value)
    elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
        yield _target_name(node.target), node.value
    elif isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            yield _constant_text(key), value
    elif isinstance(node, ast.Call):
        for keyword in node.keywords:
            yield keyword.arg, keyword.value
        if len(node.args) == 2:
            yield _constant_text(node.args[0]), node.args[1]


def _assigned(target: ast.AST, value: ast.AST) -> Iterator[tuple[str | None, ast.AST]]:
    """``user, password = "bob", "..."`` pairs each name with its own value."""
    if isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List) \
            and len(target.elts) == len(value.elts):
        for element, item in zip(target.elts, value.elts):
            yield from _assigned(element, item)
        return
    yield _target_name(target), value


def _target_name(target: ast.AST) -> str | None:
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Subscript):
        return _constant_text(target.slice)
    return None


def _constant_text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _offset(lines: list[str], line: int, col: int) -> int:
    """ast's column (UTF-8 bytes) as a character offset in ``lines[line - 1]``."""
    return len(lines[line - 1].encode("utf-8", "surrogatepass")[:col].decode(
        "utf-8", "surrogatepass"))


# -- settings and keys ----------------------------------------------------------------------


def rules_from(setting: Any = None) -> Rules | None:
    """The rules for the environment plus a notebook's ``metadata.tracker.redact``; None: off."""
    if os.environ.get("TRACKER_REDACT", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if setting is False or (isinstance(setting, dict) and setting.get("enabled") is False):
        return None
    extra = setting if isinstance(setting, dict) else {}
    keys = [os.environ.get("TRACKER_REDACT_KEYS") or None, *_listed(extra.get("keys"))]
    values = [os.environ.get("TRACKER_REDACT_VALUES") or None, *_listed(extra.get("values"))]
    return Rules([k for k in keys if k], [v for v in values if v])


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []


_redactors: dict[tuple[Any, ...], Redactor] = {}


def for_catalog(catalog: Catalog, setting: Any = None) -> Redactor:
    """The redactor of a catalog under the current settings (one per settings, per process)."""
    key_path = key_file(catalog)
    token = (str(key_path), json.dumps(setting, sort_keys=True, default=str),
             *(os.environ.get(name) for name in
               ("TRACKER_REDACT", "TRACKER_REDACT_KEYS", "TRACKER_REDACT_VALUES")))
    redactor = _redactors.get(token)
    if redactor is None:
        redactor = _redactors[token] = Redactor(key_path, rules_from(setting))
    return redactor


def key_file(catalog: Catalog) -> Path:
    """The secret the markers' HMAC uses: ``<catalog>.key`` beside a catalog file, in the local
    folder of a PostgreSQL catalog."""
    return Path(catalog.store.key_file)


def _load_key(path: Path | None) -> bytes:
    """The key in ``path``, made (0600, atomically) when missing. A key that cannot be read or
    made gives a key of this process only: markers then compare within this process alone."""
    if path is None:
        return secrets.token_bytes(32)
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:  # unreadable, or not a key
        return _fallback_key(path, exc)
    try:
        return _create_key(path)
    except (OSError, ValueError) as exc:
        return _fallback_key(path, exc)


def _read_key(path: Path) -> bytes:
    # Non-blocking and checked a regular file: a FIFO planted here must not hang logging.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ValueError(f"{path} is not a regular file")
        key = bytes.fromhex(handle.read(256).decode("ascii").strip() or "invalid")
    if len(key) < 16:
        raise ValueError(f"{path} is not a tracker key file")
    return key


def _create_key(path: Path) -> bytes:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    try:
        os.link(partial, path)  # fails if another process made it first: theirs wins
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)
    return _read_key(path)


def _fallback_key(path: Path, exc: BaseException) -> bytes:
    _warn(f"tracker: the redaction key {path} could not be read or made ({exc}); secrets are "
          "still redacted, but their markers compare only within this process")
    return secrets.token_bytes(32)


def _failed(exc: BaseException, kind: str) -> str:
    """What is stored when redaction itself failed: a marker with no hash, and a warning."""
    _warn(f"tracker: a value could not be checked for secrets ({exc!r}); it is stored as "
          "<redacted:...:unchecked>")
    return f"<redacted:{kind}:unchecked>"


def _warn(message: str) -> None:
    notices.warn(message, stacklevel=3)
