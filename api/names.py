"""Name rules shared by validation and the CLI (DNS-1123, DNS-1035, IANA service names).

Every pattern is matched against the whole value (`fullmatch`): `re.match` with `^...$` would let
a trailing newline through, since `$` also matches before one.
"""

from __future__ import annotations

import re

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def dns1123_label(value: str) -> str | None:
    """Why `value` is not a DNS-1123 label, or None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not DNS1123_LABEL.fullmatch(value):
        return ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character")
    return None


def dns1123_subdomain(value: str) -> str | None:
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not DNS1123_SUBDOMAIN.fullmatch(value):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                "'.', and must start and end with an alphanumeric character")
    return None


def dns1035_label(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not DNS1035_LABEL.fullmatch(value):
        return ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character")
    return None


def iana_svc_name(value: str) -> str | None:
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not IANA_SVC_NAME.fullmatch(value) or "--" in value:
        return "must contain only lowercase alphanumeric characters or '-' and no '--'"
    if not any(c.isalpha() for c in value):
        return "must contain at least one letter (a-z)"
    return None
