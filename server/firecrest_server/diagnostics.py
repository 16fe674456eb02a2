"""The error message a program would have written, for operations answered without running it.

FirecREST v2 runs ``stat``, ``ls``, ``dd``, ``mkdir``, ``ln`` ... on the cluster and passes their
stderr through, and clients match on that text: aiida-firecrest 1.0 takes a 404 from ``ops/stat``
as "file not found" only when the message holds ``cannot statx``, pyfirecrest looks for ``No such
file or directory``. This server answers those operations over SFTP, so when one fails it writes
the diagnostic the program would have printed, in the frame FirecREST v2 puts around it:

    Remote process failed with exit status:1 and error message:stat: cannot statx '/x': No such
    file or directory

Names are quoted as GNU coreutils quotes them in the C locale (``LC_ALL=C``, what a
non-interactive SSH session usually gets): see ``quote_always`` and ``quote_if_needed``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


class Failure(enum.Enum):
    """Why a file-system request failed, worded as ``strerror`` words the errno."""

    NOT_FOUND = "No such file or directory"
    PERMISSION_DENIED = "Permission denied"
    NOT_PERMITTED = "Operation not permitted"
    EXISTS = "File exists"
    NOT_A_DIRECTORY = "Not a directory"
    IS_A_DIRECTORY = "Is a directory"
    NOT_EMPTY = "Directory not empty"
    NAME_TOO_LONG = "File name too long"


# ------------------------------------------------------------------------------ quoting

# Characters that make coreutils quote a name at all (besides control and non-ASCII bytes);
# '#' and '~' only at the start of the name, where a shell would treat them specially.
_NEEDS_QUOTES = frozenset(" !\"$&'()*:;<=>?[\\^`|")
_NEEDS_QUOTES_FIRST = frozenset("#~")
# With a single quote inside, coreutils uses double quotes when every other character is one of
# these (then nothing in the name is special between double quotes); otherwise single quotes
# with each ' written as '\''.
_PLAIN_IN_DOUBLE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 %+,-./:@]_"
)
# How $'...' writes the control characters that have a C escape; others are octal.
_C_ESCAPES = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r"}


def _printable(byte: int) -> bool:
    # The C locale: only printable ASCII is printable; UTF-8 bytes are escaped one by one.
    return 0x20 <= byte < 0x7F


def _escape(byte: int) -> str:
    return "\\" + _C_ESCAPES[byte] if byte in _C_ESCAPES else f"\\{byte:03o}"


def quote_always(name: str) -> str:
    """``name`` quoted as coreutils' ``quoteaf`` does in the C locale (``stat``, ``ls``,
    ``mkdir``, ``rm``, ``ln``, ``chmod``, ``dd``, ``head``: ``'/x'``).

    Plain names, names with spaces or shell characters, with single quotes, and with control
    or non-ASCII bytes (written as ``'$'\\303\\251''`` segments) come out as coreutils writes them;
    for names that mix single quotes with such bytes coreutils sometimes adds a redundant
    leading ``''``, which this does not.
    """
    data = name.encode("utf-8", "surrogateescape")
    if all(_printable(b) for b in data):
        text = data.decode("ascii")
        if "'" not in text:
            return f"'{text}'"
        if all(c in _PLAIN_IN_DOUBLE or c == "'" for c in text):
            return f'"{text}"'
    out = ["'"]
    quoted = True  # inside a '...' segment
    i = 0
    while i < len(data):
        byte = data[i]
        if _printable(byte):
            if not quoted:
                out.append("'")
                quoted = True
            out.append("'\\''" if byte == 0x27 else chr(byte))
            i += 1
            continue
        run = []
        while i < len(data) and not _printable(data[i]):
            run.append(_escape(data[i]))
            i += 1
        out.append("'$'" + "".join(run) + "'")
        quoted = False
    if quoted:
        out.append("'")
    return "".join(out)


def quote_if_needed(name: str) -> str:
    """``name`` quoted as coreutils' ``quotef`` does (``sha256sum``, ``base64``): bare when no
    character in it is special to a shell, else as ``quote_always``."""
    data = name.encode("utf-8", "surrogateescape")
    if (
        data
        and all(_printable(b) for b in data)
        and not any(c in _NEEDS_QUOTES for c in name)
        and name[0] not in _NEEDS_QUOTES_FIRST
    ):
        return name
    return quote_always(name)


def _quote_backtick(name: str) -> str:
    # file(1) writes `name' around the name as given, unescaped.
    return f"`{name}'"


# ------------------------------------------------------------------------------ wording


@dataclass(frozen=True)
class Wording:
    """How one program words a failure on a path: ``template`` gets ``path`` (quoted with
    ``quote``) and ``reason``; ``special`` replaces it for some failures."""

    template: str
    quote: Callable[[str], str] = quote_always
    exit_status: int = 1
    special: Mapping[Failure, str] = field(default_factory=dict)

    def stderr(self, failure: Failure, path: str) -> str:
        template = self.special.get(failure, self.template)
        return template.format(path=self.quote(path), reason=failure.value)


# The program FirecREST v2 runs for each operation, and how it words a failure (checked
# against GNU coreutils 9, tar 1.34, file 5 and bash 5 in the C locale by test_diagnostics).
# Operations this server answers by running the same program pass its stderr through instead;
# their rows keep the table whole (and checked) for when one is answered another way.
WORDINGS: dict[str, Wording] = {
    "stat": Wording("stat: cannot statx {path}: {reason}"),
    "ls": Wording(
        "ls: cannot access {path}: {reason}",
        exit_status=2,
        special={Failure.PERMISSION_DENIED: "ls: cannot open directory {path}: {reason}"},
    ),
    # ops/view reads with dd.
    "view": Wording(
        "dd: failed to open {path}: {reason}",
        special={Failure.IS_A_DIRECTORY: "dd: error reading {path}: {reason}"},
    ),
    "head": Wording(
        "head: cannot open {path} for reading: {reason}",
        special={Failure.IS_A_DIRECTORY: "head: error reading {path}: {reason}"},
    ),
    "tail": Wording(
        "tail: cannot open {path} for reading: {reason}",
        special={Failure.IS_A_DIRECTORY: "tail: error reading {path}: {reason}"},
    ),
    "checksum": Wording("sha256sum: {path}: {reason}", quote=quote_if_needed),
    "file": Wording("file: cannot open {path} ({reason})", quote=_quote_backtick),
    # "cannot access" when the path cannot be looked up; not the owner: NOT_PERMITTED.
    "chmod": Wording(
        "chmod: cannot access {path}: {reason}",
        special={Failure.NOT_PERMITTED: "chmod: changing permissions of {path}: {reason}"},
    ),
    "chown": Wording(
        "chown: cannot access {path}: {reason}",
        special={Failure.NOT_PERMITTED: "chown: changing ownership of {path}: {reason}"},
    ),
    "mkdir": Wording("mkdir: cannot create directory {path}: {reason}"),
    "rm": Wording("rm: cannot remove {path}: {reason}"),
    "mv": Wording("mv: cannot stat {path}: {reason}"),
    "cp": Wording("cp: cannot stat {path}: {reason}"),
    "symlink": Wording("ln: failed to create symbolic link {path}: {reason}"),
    # ops/download encodes with base64; a directory fails on the first read.
    "download": Wording(
        "base64: {path}: {reason}",
        quote=quote_if_needed,
        special={Failure.IS_A_DIRECTORY: "base64: read error: {reason}"},
    ),
    # ops/upload decodes into `> path`: the login shell (bash) opens the file.
    "upload": Wording("bash: line 1: {path}: {reason}", quote=str),
    "extract": Wording("tar: {path}: Cannot open: {reason}", quote=str, exit_status=2),
}


def program_stderr(operation: str, failure: Failure, path: str) -> str:
    """What the program behind ``operation`` writes on stderr when it fails on ``path``."""
    return WORDINGS[operation].stderr(failure, path)


def framed(exit_status: int, stderr: str) -> str:
    """FirecREST v2's message for a failed remote command (clients match on parts of it:
    pyfirecrest reads ``exit status:124`` as a timeout)."""
    message = f"Remote process failed with exit status:{exit_status}"
    if stderr.strip():
        message += f" and error message:{stderr.strip()}"
    return message


def message(operation: str, failure: Failure, path: str) -> str:
    """The whole API error message for ``operation`` failing on ``path`` with ``failure``."""
    wording = WORDINGS[operation]
    return framed(wording.exit_status, wording.stderr(failure, path))
