"""How people type amounts, read the same way by the bot and the admin."""

import re
from decimal import Decimal

# ASCII digits only (str.isdigit, \d and Decimal() accept ², ١٢, １２ and other scripts'
# digits); groups of three may be split by a space: «1 000». Twelve digits at most:
# MAX_AMOUNT's rubles.
_SPACES = "[ \u00a0\u202f]"
_RUBLES = rf"[0-9]{{1,3}}(?:{_SPACES}[0-9]{{3}})+|[0-9]{{1,12}}"
# Whole rubles as people write them: «100», «1 000», «100,00», «100 руб», «100₽», «100 р.»:
# no kopecks but zeros, the ruble's sign or a short name after, in any case.
_CURRENCY = r"₽|р\.?|руб\.?|рубл(?:ь|я|ей)"
_AMOUNT = re.compile(
    rf"(?P<rubles>{_RUBLES})(?:[.,]0{{1,2}})?(?:{_SPACES}?(?:{_CURRENCY}))?", re.IGNORECASE
)
# A signed sum with kopecks after a comma or a dot: «-50», «+100», «50,5», «1 000.25».
_MONEY = re.compile(rf"(?P<sign>[+-]?)(?P<rubles>{_RUBLES})(?:[.,](?P<kopecks>[0-9]{{1,2}}))?")


def amount_parse(text: str | None, *, minimum: Decimal, maximum: Decimal) -> int | None:
    """A whole number of rubles within [minimum, maximum], or None."""
    if not text:
        return None
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        return None
    value = int(re.sub(_SPACES, "", match["rubles"]))
    return value if minimum <= value <= maximum else None


def money_parse(text: str | None) -> Decimal | None:
    """A signed amount of rubles with up to two decimal places, or None. No exponents,
    no other scripts' digits, at most twelve digits before the separator."""
    if not text:
        return None
    match = _MONEY.fullmatch(text.strip())
    if match is None:
        return None
    rubles = re.sub(_SPACES, "", match["rubles"])
    value = Decimal(f"{match['sign']}{rubles}.{match['kopecks'] or '0'}")
    return value.quantize(Decimal("0.01"))
