"""Exceptions of the verifiers package."""

from __future__ import annotations


class VerifierError(Exception):
    """Base class for errors raised by `verifiers` (bad input, bad config)."""


class ParseError(VerifierError):
    """An answer string is outside the whitelisted math grammar (status "unparsable")."""


class TooLargeError(ParseError):
    """An expression would build a number past `VerifyConfig.max_int_bits` (an expression bomb)."""


class VerifierTimeout(BaseException):  # noqa: N818 - mirrors Math-Verify's naming
    """A comparison ran past `VerifyConfig.timeout_s`.

    Derives from BaseException, as in Math-Verify, so that a broad
    `except Exception` around sympy code cannot swallow it.
    """
