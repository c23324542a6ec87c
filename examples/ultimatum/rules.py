"""The ultimatum game's rules: pure functions, no I/O, no randomness of their own.

A proposer offers the responder `offer` of `pot` coins; the responder accepts (both are
paid: the proposer keeps the rest) or rejects (neither is paid). Payoffs are shares of the
pot, so every reward lies in [0, 1].
"""
from __future__ import annotations

import re

OFFER_RE = re.compile(r"-?\d+")


def proposer_prompt(pot: int, table: int) -> str:
    return (f"Table {table}. You have {pot} coins to split with a responder. Offer the responder a "
            f"whole number of coins from 0 to {pot}; they accept or reject, and if they reject "
            f"nobody gets anything. Reply like: offer 4")


def responder_prompt(pot: int, table: int, offer: int) -> str:
    return (f"Table {table}. The proposer offers you {offer} of {pot} coins and keeps {pot - offer}. "
            f"If you reject, nobody gets anything. Reply accept or reject.")


def parse_offer(text: str, pot: int) -> int | None:
    """The first whole number in the text, if it is a legal offer (0..pot); else None."""
    m = OFFER_RE.search(text)
    if not m or len(m.group()) > 9:  # no number, or one no pot could hold (and int() would refuse)
        return None
    k = int(m.group())
    return k if 0 <= k <= pot else None


def parse_reply(text: str) -> bool | None:
    """True for accept, False for reject, None when the text says neither (or both)."""
    t = text.lower()
    accept, reject = "accept" in t, "reject" in t
    return accept if accept != reject else None


def payoffs(offer: int | None, accepted: bool | None, pot: int) -> tuple[float, float]:
    """(proposer, responder) shares of the pot. An invalid offer or reply is no deal."""
    if offer is None or not accepted:
        return 0.0, 0.0
    return (pot - offer) / pot, offer / pot
