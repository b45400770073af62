"""The message catalogue, for developers: extract, update, check and compile, in pure Python.

What ``xgettext``, ``msgmerge`` and ``msgfmt`` do for tinyllm's one catalogue, without
them (and without a new dependency); tinyllm itself only reads the compiled ``.mo``
(:mod:`tinyllm._i18n`)::

    python -m tinyllm._catalogue update    # the .po gets every marked message, in source order
    python -m tinyllm._catalogue compile   # the .mo from the .po
    python -m tinyllm._catalogue check     # what is missing, untranslated or stale; status 1 if any

A marked message is a string literal given to ``_()``, ``N_()`` or ``ngettext()`` in a
module of the package (:func:`extract`). ``update`` keeps the translations of messages
that are still used, drops the others and adds new ones untranslated; translate them
in the ``.po`` (any editor, or Poedit), then ``compile``. The tests check that every
message is translated, that each translation has the same ``{fields}`` as its
original (and no ``%`` the original lacks: argparse %-formats help texts), and that
the committed ``.mo`` is what ``compile`` makes of the ``.po``.

The ``.mo`` is written as Python's ``Tools/i18n/msgfmt.py`` writes it (GNU's format,
version 0, no hash table): keys sorted, untranslated and fuzzy entries left out.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import string
import struct
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from tinyllm._i18n import DOMAIN, LOCALEDIR

__all__ = [
    "Message",
    "PACKAGE",
    "po_path",
    "mo_path",
    "extract",
    "read_po",
    "write_po",
    "format_po",
    "merge",
    "compile_mo",
    "fields",
    "problems",
    "main",
]

PACKAGE = Path(__file__).resolve().parent
MARKERS = {"_": 1, "N_": 2, "ngettext": 2}  # marker -> most string arguments it takes

HEADER = {
    "es": (
        "Project-Id-Version: tinyllm\n"
        "Language: es\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "Plural-Forms: nplurals=2; plural=(n != 1);\n"
    )
}


def po_path(lang: str = "es") -> Path:
    return LOCALEDIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(lang: str = "es") -> Path:
    return po_path(lang).with_suffix(".mo")


@dataclasses.dataclass
class Message:
    """One entry of a catalogue: an original (with its plural) and its translation(s)."""

    msgid: str
    msgid_plural: str | None = None
    msgstr: list[str] = dataclasses.field(default_factory=lambda: [""])
    references: list[str] = dataclasses.field(default_factory=list)  # "tinyllm/cli.py"
    comments: list[str] = dataclasses.field(default_factory=list)  # the translator's
    flags: list[str] = dataclasses.field(default_factory=list)  # "fuzzy", "python-brace-format"

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.msgid, self.msgid_plural)

    @property
    def translated(self) -> bool:
        return all(self.msgstr) and "fuzzy" not in self.flags


# ---------------------------------------------------------------------------
# Extraction: the marked string literals of the package's modules
# ---------------------------------------------------------------------------
def extract(package: Path = PACKAGE) -> list[Message]:
    """Every message marked in ``package``'s modules, in order of first use.

    Raises
    ------
    ValueError
        A marker is given something other than string literals (an f-string, a
        name...), which the catalogue cannot hold; or one text is used both with and
        without a plural.
    """
    found: dict[tuple[str, str | None], Message] = {}
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _marker(n)]
        for call in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):
            texts = _literal_arguments(call, f"{where}:{call.lineno}")
            if texts is None:  # a text marked elsewhere, translated here
                continue
            message = found.setdefault(
                (texts[0], texts[1] if len(texts) > 1 else None),
                Message(texts[0], texts[1] if len(texts) > 1 else None),
            )
            if where not in message.references:  # the file, not the line: fewer changes
                message.references.append(where)
    plain = {msgid for msgid, plural in found if plural is None}
    for msgid, plural in found:
        if plural is not None and msgid in plain:
            raise ValueError(f"{msgid!r} is marked both with and without a plural")
    messages = list(found.values())
    for message in messages:
        message.msgstr = [""] * (1 if message.msgid_plural is None else 2)
        message.flags = _format_flags(message)
    return messages


def _marker(call: ast.Call) -> str | None:
    name = call.func.id if isinstance(call.func, ast.Name) else None
    return name if name in MARKERS else None


def _literal_arguments(call: ast.Call, where: str) -> list[str] | None:
    """The texts a marker is given; None for a variable (``_(template)``: the text is
    marked where it is written)."""
    name = _marker(call)
    assert name is not None
    count = 2 if name == "ngettext" else min(len(call.args), MARKERS[name])
    args = call.args[:count]
    if any(isinstance(a, ast.JoinedStr) for a in args):
        raise ValueError(f"{where}: {name}() of an f-string, which no catalogue can hold")
    if not args or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
        return None
    return [a.value for a in args]  # type: ignore[attr-defined]


def _format_flags(message: Message) -> list[str]:
    texts = [message.msgid] + ([message.msgid_plural] if message.msgid_plural else [])
    return ["python-brace-format"] if any(fields(t) for t in texts) else []


def fields(text: str) -> list[str]:
    """The ``{fields}`` of ``text``, each with its conversion and format spec, sorted:
    ``"{n:>3} of {total}"`` -> ``["n:>3", "total"]``. Literal ``{{`` is no field."""
    found = []
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is not None:
            conversion = f"!{conversion}" if conversion else ""
            found.append(name + conversion + (f":{spec}" if spec else ""))
    return sorted(found)


# ---------------------------------------------------------------------------
# The .po file
# ---------------------------------------------------------------------------
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text: str, where: str) -> str:
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        raise ValueError(f"{where}: expected a quoted string, got {text!r}")
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text[1:-1])


def read_po(path: Path) -> list[Message]:
    """The entries of a ``.po`` file (the header is the entry whose msgid is ``""``).

    Raises
    ------
    ValueError
        A line the format does not allow, with its number.
    """
    messages: list[Message] = []
    current: Message | None = None
    target = ("msgid", 0)  # the string a continuation line extends
    pending = Message("")  # the comments of the next entry

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        where = f"{path.name}:{number}"
        if not line or line.startswith("#~"):  # obsolete entries are dropped
            continue
        if line.startswith("#:"):
            pending.references += line[2:].split()
        elif line.startswith("#,"):
            pending.flags += [f.strip() for f in line[2:].split(",") if f.strip()]
        elif line.startswith("# ") or line == "#":
            pending.comments.append(line[2:])
        elif line.startswith("#"):  # extracted comments, previous msgids: not kept
            continue
        elif line.startswith('"'):
            if current is None:
                raise ValueError(f"{where}: a string outside an entry")
            name, index = target
            value = _unquote(line, where)
            if name == "msgstr":
                current.msgstr[index] += value
            else:
                setattr(current, name, getattr(current, name) + value)
        else:
            keyword, _, rest = line.partition(" ")
            plural = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
            if keyword == "msgid":
                if current is not None:
                    messages.append(current)
                current = dataclasses.replace(pending, msgid=_unquote(rest, where), msgstr=[])
                pending = Message("")
                target = ("msgid", 0)
            elif current is None:
                raise ValueError(f"{where}: {keyword} before any msgid")
            elif keyword == "msgid_plural":
                current.msgid_plural = _unquote(rest, where)
                target = ("msgid_plural", 0)
            elif keyword == "msgstr" or plural:
                index = int(plural.group(1)) if plural else 0
                if index != len(current.msgstr):
                    raise ValueError(f"{where}: {keyword} out of order")
                current.msgstr.append(_unquote(rest, where))
                target = ("msgstr", index)
            else:
                raise ValueError(f"{where}: unexpected {keyword!r}")
    if current is not None:
        messages.append(current)
    for message in messages:
        if not message.msgstr:
            raise ValueError(f"{path.name}: {message.msgid!r} has no msgstr")
    return messages


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return '"' + escaped.replace("\n", "\\n") + '"'


def _po_string(keyword: str, text: str, width: int = 79) -> list[str]:
    """``keyword "text"``, or ``keyword ""`` and the text in lines that fit ``width``
    (cut after spaces and line ends), as msgmerge writes it."""
    if len(keyword) + 1 + len(_quote(text)) <= width and "\n" not in text[:-1]:
        return [f"{keyword} {_quote(text)}"]
    pieces = re.findall(r"[^ \n]*(?: +|\n|$)", text)
    lines, line = [], ""
    for piece in pieces:
        if line and (len(_quote(line + piece)) > width or line.endswith("\n")):
            lines.append(line)
            line = ""
        line += piece
    if line:
        lines.append(line)
    return [f'{keyword} ""'] + [_quote(piece) for piece in lines]


def format_po(messages: Sequence[Message]) -> str:
    """The text of a ``.po`` file holding ``messages`` (the header first)."""
    blocks = []
    for message in messages:
        lines = [f"# {c}".rstrip() for c in message.comments]
        refs = message.references
        for start in range(0, len(refs), 3):
            lines.append("#: " + " ".join(refs[start : start + 3]))
        if message.flags:
            lines.append("#, " + ", ".join(message.flags))
        lines += _po_string("msgid", message.msgid)
        if message.msgid_plural is None:
            lines += _po_string("msgstr", message.msgstr[0])
        else:
            lines += _po_string("msgid_plural", message.msgid_plural)
            for i, text in enumerate(message.msgstr):
                lines += _po_string(f"msgstr[{i}]", text)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_po(messages: Sequence[Message], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_po(messages), encoding="utf-8", newline="\n")


def merge(extracted: Sequence[Message], existing: Sequence[Message], lang: str) -> list[Message]:
    """``extracted`` with the translations (and translator comments) ``existing`` has
    for them, after ``existing``'s header (a new one if it has none)."""
    old = {m.key: m for m in existing}
    header = old.get(("", None)) or Message("", msgstr=[HEADER[lang]])
    merged = [header]
    for message in extracted:
        before = old.get(message.key)
        if before is not None and len(before.msgstr) == len(message.msgstr):
            message = dataclasses.replace(
                message,
                msgstr=list(before.msgstr),
                comments=list(before.comments),
                flags=sorted(set(message.flags) | ({"fuzzy"} & set(before.flags))),
            )
        merged.append(message)
    return merged


# ---------------------------------------------------------------------------
# The .mo file
# ---------------------------------------------------------------------------
def compile_mo(messages: Iterable[Message]) -> bytes:
    """The ``.mo`` of ``messages``: GNU's format as ``msgfmt`` writes it, with the
    untranslated and fuzzy entries left out (they show as the original)."""
    table: dict[bytes, bytes] = {}
    for m in messages:
        if not m.translated and m.msgid:
            continue
        original = m.msgid if m.msgid_plural is None else f"{m.msgid}\0{m.msgid_plural}"
        table[original.encode("utf-8")] = "\0".join(m.msgstr).encode("utf-8")
    keys = sorted(table)
    ids = strs = b""
    offsets = []
    for key in keys:
        offsets.append((len(ids), len(key), len(strs), len(table[key])))
        ids += key + b"\0"
        strs += table[key] + b"\0"
    start_ids = 7 * 4
    start_strs = start_ids + len(keys) * 8
    start_data = start_strs + len(keys) * 8
    id_table, str_table = [], []
    for id_offset, id_length, str_offset, str_length in offsets:
        id_table += [id_length, start_data + id_offset]
        str_table += [str_length, start_data + len(ids) + str_offset]
    header = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), start_ids, start_strs, 0, 0)
    packed = struct.pack(f"{len(id_table)}i", *id_table) + struct.pack(
        f"{len(str_table)}i", *str_table
    )
    return header + packed + ids + strs


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------
def problems(lang: str = "es", package: Path = PACKAGE) -> list[str]:
    """Everything wrong with ``lang``'s catalogue, one line each (none: all is well)."""
    po = po_path(lang)
    if not po.exists():
        return [f"{po} is missing"]
    messages = [m for m in read_po(po) if m.msgid]
    found = []
    keys = {m.key for m in messages}
    used = {m.key for m in extract(package)}
    found += [f"not in the catalogue: {msgid!r}" for msgid, _ in sorted(used - keys)]
    found += [f"no longer used: {msgid!r}" for msgid, _ in sorted(keys - used)]
    for m in messages:
        if not all(m.msgstr):
            found.append(f"untranslated: {m.msgid!r}")
        if "fuzzy" in m.flags:
            found.append(f"fuzzy: {m.msgid!r}")
        originals = [m.msgid] + ([m.msgid_plural] if m.msgid_plural else [])
        want = fields(originals[-1])
        for text in originals[:-1] + [s for s in m.msgstr if s]:
            if fields(text) != want:
                found.append(f"fields {fields(text)} instead of {want}: {text!r}")
            if text.count("%") != m.msgid.count("%"):  # argparse %-formats its help texts
                found.append(f"a % the original does not have: {text!r}")
    mo = mo_path(lang)
    if not mo.exists() or mo.read_bytes() != compile_mo(read_po(po)):
        found.append(
            f"{mo.name} is not what the .po compiles to: python -m tinyllm._catalogue compile"
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 1 or argv[0] not in ("update", "compile", "check"):
        print("usage: python -m tinyllm._catalogue {update,compile,check}", file=sys.stderr)
        return 2
    lang = "es"
    po = po_path(lang)
    if argv[0] == "update":
        existing = read_po(po) if po.exists() else []
        merged = merge(extract(), existing, lang)
        write_po(merged, po)
        todo = sum(1 for m in merged[1:] if not m.translated)
        print(f"{po}: {len(merged) - 1} messages, {todo} to translate")
    elif argv[0] == "compile":
        mo_path(lang).write_bytes(compile_mo(read_po(po)))
        print(f"wrote {mo_path(lang)}")
    else:
        found = problems(lang)
        for line in found:
            print(line)
        return 1 if found else 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
