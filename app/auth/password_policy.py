"""Which new passwords are refused: the ones an attacker guesses first (NIST SP 800-63B 3.1.1.2).

Length alone let `aaaaaaaaaaaa`, `123456789012`, `password1234` and twelve spaces through. The
zxcvbn estimator (Dropbox's, pinned) scores a password against lists of common passwords, words
and names, keyboard patterns, repeats, sequences and dates, and against the account's own
context (its username, this service's name); anything below MIN_SCORE is refused with the
estimator's reason. No composition rules (63B asks for none): a passphrase of ordinary words is
fine. Only new passwords are checked; a login never is.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

# 3 = "safely unguessable" (~10^8 guesses and more), zxcvbn's own advice for accounts.
MIN_SCORE = 3
# zxcvbn refuses longer input (its matching cost grows with length); what follows the first 72
# characters only makes a password stronger, and the whole password is still what gets hashed.
ESTIMATED_CHARACTERS = 72
SERVICE_WORDS = ("paintshop", "paint", "shop", "platform", "matte", "glossy")


def password_problem(password: str, username: str = "") -> str | None:
    """Why `password` is too easy to guess, or None when it is acceptable."""
    context = [username, *SERVICE_WORDS] if username else list(SERVICE_WORDS)
    result = zxcvbn(password[:ESTIMATED_CHARACTERS], user_inputs=context)
    if result["score"] >= MIN_SCORE:
        return None
    feedback = result.get("feedback") or {}
    reason = (feedback.get("warning") or "").rstrip(".")
    advice = " ".join(feedback.get("suggestions") or []) or \
        "Use a few unrelated words, or a longer phrase."
    return f"too easy to guess{f' ({reason})' if reason else ''}. {advice}"
