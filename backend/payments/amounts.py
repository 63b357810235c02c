import re
from decimal import Decimal

# ASCII digits only (str.isdigit and \d accept ² and other scripts' digits);
# groups of three may be split by a space: «1 000».
_AMOUNT = re.compile(r"[0-9]{1,3}(?:[ \u00a0\u202f][0-9]{3})+|[0-9]{1,12}")


def amount_parse(text: str | None, *, minimum: Decimal, maximum: Decimal) -> int | None:
    """A whole number of rubles within [minimum, maximum], or None."""
    if not text:
        return None
    text = text.strip()
    if not _AMOUNT.fullmatch(text):
        return None
    value = int(re.sub(r"[ \u00a0\u202f]", "", text))
    return value if minimum <= value <= maximum else None
