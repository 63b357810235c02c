"""Hostile input: amount text of any shape, forged or replayed buttons, odd first names,
blocked users pressing forged buttons.

The amount rule is checked with Hypothesis against a model written without a regex;
the rest goes end to end through the real bot (see test_bot_dialog.py for the plain
dialog, the first forged buttons and the first blocked-user reactions)."""

import itertools
import random
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backend.bot import texts
from backend.payments.amounts import amount_parse
from backend.payments.models import Bill, LedgerEntry
from tests.helpers import block, button, db_bills, db_ledger, db_user, open_bill

MIN, MAX = Decimal(1), Decimal(100000)
# Pure function calls: quick. No example database: a failure prints its example.
PROPERTY = settings(max_examples=100, deadline=None, database=None)


def parse(text: str | None) -> int | None:
    return amount_parse(text, minimum=MIN, maximum=MAX)


# --- the amount rule, as a model ------------------------------------------------------

ASCII_DIGITS = "0123456789"
SEPARATORS = " \u00a0\u202f"  # space, no-break space, narrow no-break space
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
OTHER_DIGITS = {
    "fullwidth": "０１２３４５６７８９",
    "arabic-indic": "٠١٢٣٤٥٦٧٨٩",
    "extended arabic-indic": "۰۱۲۳۴۵۶۷۸۹",
    "devanagari": "०१२३४५६७८९",
    "bengali": "০১২৩৪৫৬৭৮৯",
    "thai": "๐๑๒๓๔๕๖๗๘๙",
    "superscript": "⁰¹²³⁴⁵⁶⁷⁸⁹",
    "subscript": "₀₁₂₃₄₅₆₇₈₉",
    "circled": "⓪①②③④⑤⑥⑦⑧⑨",
    "mathematical bold": "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗",
}


# What may follow the number, in any case, after at most one separator: the ruble.
CURRENCY = ("рублей", "рубля", "рубль", "руб.", "руб", "р.", "р", "₽")


def model(text: str | None) -> int | None:
    """What the amount rule says, written without a regex: after stripping surrounding
    whitespace and then a name or sign of the ruble (with one separator before it) and
    zero kopecks («,00», «.0»), ASCII digits only, either in one run or as a group of 1–3
    digits followed by groups of exactly 3, each group after one separator; the value
    within the limits."""
    body = (text or "").strip()
    for name in CURRENCY:
        if body.lower().endswith(name):
            body = body[: -len(name)]
            if body[-1:] in SEPARATORS:
                body = body[:-1]
            break
    for zeros in (",00", ".00", ",0", ".0"):
        if body.endswith(zeros):
            body = body[: -len(zeros)]
            break
    if not body or any(c not in ASCII_DIGITS + SEPARATORS for c in body):
        return None
    groups = [""]
    for c in body:
        if c in SEPARATORS:
            groups.append("")
        else:
            groups[-1] += c
    if len(groups) > 1 and not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
        return None
    value = int("".join(groups))
    return value if MIN <= value <= MAX else None


def zero_padded(text: str) -> bool:
    body = text.strip()
    return len(body) > 1 and body[0] == "0"


def assert_as_the_model_says(text: str) -> None:
    got, want = parse(text), model(text)
    assert got is None or type(got) is int, (text, got)
    if want is not None and zero_padded(text):
        # The rule does not say how many leading zeros «0 100» or «000007» may carry:
        # refusing them, or reading the right value, are both fine.
        assert got in (None, want), (text, got)
    else:
        assert got == want, (text, got, want)


# --- strategies -----------------------------------------------------------------------


def group_digits(digits: str, separators: list[str]) -> str:
    """«1234567» with separators [a, b] → «1a234b567»."""
    head = len(digits) % 3 or 3
    groups = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return groups[0] + "".join(s + g for s, g in zip(separators, groups[1:], strict=True))


surrounding = st.text(alphabet=st.sampled_from(WHITESPACE), max_size=3)


@st.composite
def written(draw, values) -> tuple[int, str, str]:
    """A number as a person may type it: (value, body, text with surrounding whitespace)."""
    n = draw(values)
    digits = str(abs(n))
    if len(digits) > 3 and draw(st.booleans()):
        seps = [draw(st.sampled_from(SEPARATORS)) for _ in range((len(digits) - 1) // 3)]
        digits = group_digits(digits, seps)
    body = ("-" if n < 0 else "") + digits
    return n, body, draw(surrounding) + body + draw(surrounding)


in_range = st.integers(min_value=1, max_value=100000)
out_of_range = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=100001),
    st.integers(min_value=-3, max_value=0),
    st.integers(min_value=100_001, max_value=100_010),
)

JUNK = [
    "_", ".", ",", "'", "/", "+", "-", "\u2212", "e", "E", "e3", "E+2", "0x", ".00", ",50",
    "NaN", "inf", "₽", "р", "k", "%", "\x00", "\u200b", "\u200c", "\u200d", "\u200e",
    "\u200f", "\u2060", "\ufeff", "\u0301", "\u20e3",
]  # fmt: skip
INNER_WHITESPACE = ["\u2009", "\u2007", "\u3000", "\t", "\n", "  "]


@st.composite
def near_misses(draw) -> str:
    """A valid amount, spoiled: junk inserted, non-ASCII digits, a wrong separator."""
    _, body, text = draw(written(in_range))
    start = text.index(body)
    end = start + len(body)
    how = draw(st.sampled_from(["junk", "digits", "separator", "sign"]))
    if how == "separator" and not any(c in SEPARATORS for c in body):
        how = "junk"
    if how == "junk":
        junk = draw(st.sampled_from(JUNK + (INNER_WHITESPACE if len(body) > 1 else [])))
        if junk in INNER_WHITESPACE:  # whitespace spoils only between the digits
            at = draw(st.integers(start + 1, end - 1))
        else:
            at = draw(st.integers(0, len(text)))
        return text[:at] + junk + text[at:]
    if how == "digits":
        script = OTHER_DIGITS[draw(st.sampled_from(sorted(OTHER_DIGITS)))]
        spots = [i for i in range(start, end) if text[i] in ASCII_DIGITS]
        chosen = draw(st.sets(st.sampled_from(spots), min_size=1))
        table = str.maketrans(ASCII_DIGITS, script)
        return "".join(c.translate(table) if i in chosen else c for i, c in enumerate(text))
    if how == "separator":
        spots = [i for i in range(start, end) if text[i] in SEPARATORS]
        at = draw(st.sampled_from(spots))
        wrong = draw(st.sampled_from([",", ".", "'", "_", "-", *INNER_WHITESPACE]))
        return text[:at] + wrong + text[at + 1 :]
    sign = draw(st.sampled_from(["+", "-", "\u2212", "±", "\uff0d", "\ufe63"]))
    return text[:start] + sign + text[start:]


@st.composite
def regrouped(draw) -> str:
    """ASCII digits split into groups at random: sometimes right («100 000»), mostly not."""
    digits = draw(st.text(alphabet=st.sampled_from(ASCII_DIGITS), min_size=2, max_size=9))
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), min_size=1)))
    parts = [digits[i:j] for i, j in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    seps = [draw(st.sampled_from(SEPARATORS)) for _ in parts[1:]]
    return parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True))


# Mostly the characters a number is made of, and the ones that look like them.
NEAR_CHARS = list(ASCII_DIGITS * 4 + SEPARATORS * 2 + "\t\n\u2009\u3000_.,+-eE'")
NEAR_CHARS += ["١", "٣", "１", "²", "۳", "०", "𝟗", "\u200b", "\u200f"]
near_text = st.text(alphabet=st.sampled_from(NEAR_CHARS), max_size=20)
# Up to 4096 characters (a Telegram message) made by repeating a short piece.
long_text = st.builds(
    lambda piece, times: (piece * times)[:4096],
    st.one_of(near_text.filter(bool), st.text(min_size=1, max_size=8)),
    st.integers(min_value=200, max_value=4096),
)


# --- amount properties ----------------------------------------------------------------


@PROPERTY
@given(st.integers())
@example(0)
@example(1)
@example(100000)
@example(100001)
@example(-1)
@example(10**30)
def test_oracle_str_of_any_int_is_accepted_iff_in_range(n):
    assert parse(str(n)) == (n if 1 <= n <= 100000 else None)


@PROPERTY
@given(written(in_range))
def test_numbers_in_range_are_read_exactly(case):
    n, _, text = case
    value = parse(text)
    assert value == n and type(value) is int, text


@PROPERTY
@given(written(out_of_range))
def test_numbers_out_of_range_are_refused(case):
    _, _, text = case
    assert parse(text) is None, text


@PROPERTY
@given(near_misses())
@example("1_000")
@example("1e3")
@example("1 000.50")
@example("+500")
@example("５００")
@example("٣")
@example("1\u2009000")
@example("500 руб..")
@example("５００₽")
def test_near_misses_are_refused(text):
    """A spoiled amount is refused, unless the spoiling happened to write it as people
    do («500₽», «500.00»): then it is read as the model says."""
    if model(text) is None:
        assert parse(text) is None, text
    else:
        assert_as_the_model_says(text)


@PROPERTY
@given(regrouped())
@example("10 00")
@example("1 0000")
@example("100 000")
def test_digit_groups_must_be_threes(text):
    assert_as_the_model_says(text)


@PROPERTY
@given(st.one_of(st.text(), near_text))
@example("")
@example(" \t\n")
@example("NaN")
@example("Infinity")
@example("-inf")
@example("²")
@example("0")
@example("007")
@example("0 100")
@example("000000000000001")
@example("1 000,00 РУБ.")
@example("100\u202f₽")
@example("100,0р")
def test_any_text_is_read_as_the_model_says(text):
    assert_as_the_model_says(text)


@settings(max_examples=40, deadline=None, database=None)
@given(long_text)
@example("9" * 4096)
@example(("1 000 " * 700)[:4096])
@example(" " * 4093 + "500")
@example("١" * 4096)
def test_long_messages_are_read_as_the_model_says(text):
    assert_as_the_model_says(text)


def test_none_and_a_message_of_4096_characters_are_quick_refusals():
    assert parse(None) is None
    hostile = ["1 000" * 819 + "x", "1" * 4095 + "x", "1 " * 2047 + "xy"]
    assert {len(text) for text in hostile} == {4096}
    started = time.perf_counter()
    for text in hostile:
        assert parse(text) is None
    assert time.perf_counter() - started < 0.5  # no catastrophic backtracking


# --- the bot --------------------------------------------------------------------------

WARM_UP = 3000  # a user whose /start is waiting when the bot starts


async def started(make_bot, tg):
    """`make_bot()` with an update already queued, so the bot's first long poll returns
    at once instead of waiting out the fake's 1 s on an empty queue; returns once that
    update is answered."""
    tg.send_text(tg.user(WARM_UP), "/start")
    process = await make_bot()
    await tg.wait_call("sendMessage", lambda p: p["chat_id"] == WARM_UP)
    return process


@pytest.fixture
async def quick_bot(make_bot, tg):
    return await started(make_bot, tg)


# --- amounts through the bot ----------------------------------------------------------

HOSTILE_AMOUNTS = [
    "9" * 4096,
    ("١٢٣ ５00 ² NaN " * 300)[:4096],
    "NaN",
    "Infinity",
    "１２３",
    "٣",
    "\u200b",  # zero-width space: looks empty, is not whitespace
    "\u3164",  # Hangul filler: the usual «empty» message
    "\u2800",  # Braille blank
    "\u3000\n\t",
    "\u200f500",  # a right-to-left mark before the digits
]


async def test_hostile_amounts_are_explained_and_the_bot_keeps_waiting(quick_bot, tg, qiwi):
    user = tg.user(3001)
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    assert (await tg.wait_call("sendMessage")).params["text"] == texts.ASK_AMOUNT
    for text in HOSTILE_AMOUNTS:
        tg.send_text(user, text)
        reply = await tg.wait_call("sendMessage")
        assert reply.params["chat_id"] == 3001
        assert reply.params["text"] == texts.bad_amount(MIN, MAX), repr(text[:20])
        assert reply.params["text"].startswith("Сумма должна быть целым числом рублей")
        assert button(reply, texts.CANCEL_BUTTON)
    tg.send_text(user, "\u00a0500\u202f")
    confirm = await tg.wait_call("sendMessage")
    assert confirm.params["text"] == "Пополнить баланс на 500 ₽?"
    await tg.assert_no_call("sendMessage", within=0.3)  # no error report to anyone
    assert await db_bills(3001) == []
    assert qiwi.bills == {}


# --- forged and replayed buttons ------------------------------------------------------


def forget_calls(tg) -> None:
    """Everything the bot sent so far is seen: `assert_no_call` looks at what follows."""
    for call in tg.calls:
        call.consumed = True


async def press_and_answer(tg, user, message, data: str):
    """Press a button with `data`; the answerCallbackQuery of exactly that press."""
    query_id = tg.press(user, message, data)["callback_query"]["id"]
    return await tg.wait_call("answerCallbackQuery", lambda p: p["callback_query_id"] == query_id)


@sync_to_async
def ledger_count() -> int:
    return LedgerEntry.objects.count()


async def test_forged_callback_data_gets_a_harmless_answer_and_changes_nothing(quick_bot, tg, qiwi):
    owner, thief = tg.user(3101), tg.user(3102)
    bill_message = tg.message_of(await open_bill(tg, owner, "300"))
    [bill] = await db_bills(3101)
    qiwi.set_status(bill.pk, "PAID")  # a check by the wrong hands would credit it now
    tg.send_text(thief, "/start")
    thief_message = tg.message_of(await tg.wait_call("sendMessage"))
    forget_calls(tg)

    noise = random.Random(64).randbytes(64).decode("latin-1")
    assert "\x00" not in noise  # NUL has a test of its own, below
    forged = [
        "x",
        noise,
        "check:" + noise[:58],
        "check:",
        "check:" + bill.pk.upper(),
        "check:" + bill.pk[:-1],
        "check:%",
        "check:' OR '1'='1",
        f"check:{bill.pk}:extra",
        "confirm:-5",
        "confirm:0",
        "confirm:1e9",
        "confirm:100001",
        "confirm:100000000",
        "confirm:",
        "confirm:٣",
        "topup:extra:fields",
        "cancel:1",
    ]
    for data in forged:
        # A modified client may press anything on a message of its own chat.
        answer = await press_and_answer(tg, thief, thief_message, data)
        assert answer.params.get("text") in (None, texts.BILL_NOT_FOUND), data
    # The owner's bill pressed by someone else, on the owner's message too.
    answer = await press_and_answer(tg, thief, bill_message, f"check:{bill.pk}")
    assert answer.params.get("text") == texts.BILL_NOT_FOUND

    await tg.assert_no_call("sendMessage", within=0.4)
    await tg.assert_no_call("editMessageReplyMarkup", within=0.05)
    assert await db_bills(3102) == []
    assert [b.status for b in await db_bills(3101)] == [Bill.Status.WAITING]
    assert await ledger_count() == 0
    assert (await db_user(3101)).balance == Decimal("0.00")
    assert len(qiwi.bills) == 1


async def test_a_nul_character_in_forged_check_data_gets_a_harmless_answer(quick_bot, tg):
    user = tg.user(3103)
    tg.send_text(user, "/start")
    hello = tg.message_of(await tg.wait_call("sendMessage"))
    query_id = tg.press(user, hello, "check:\x00")["callback_query"]["id"]
    await tg.assert_no_call("sendMessage", within=0.4)
    answer = await tg.wait_call(
        "answerCallbackQuery", lambda p: p["callback_query_id"] == query_id, timeout=1
    )
    assert answer.params.get("text") is None  # not our id's shape: the fallback's answer


async def test_a_paid_bill_pressed_again_and_again_is_credited_once(quick_bot, tg, qiwi):
    owner, thief = tg.user(3201), tg.user(3202)
    bill_call = await open_bill(tg, owner, "250")
    bill_message = tg.message_of(bill_call)
    [bill] = await db_bills(3201)
    check = f"check:{bill.pk}"
    assert button(bill_call, texts.CHECK_BUTTON)["callback_data"] == check
    forget_calls(tg)
    qiwi.set_status(bill.pk, "PAID")

    # Five presses at once (a replayed callback, an impatient thumb): one credit.
    query_ids = [tg.press(owner, bill_message, check)["callback_query"]["id"] for _ in range(5)]
    paid = await tg.wait_call("sendMessage")
    assert paid.params["text"] == texts.bill_paid(Decimal(250), Decimal(250))
    answers = [
        await tg.wait_call("answerCallbackQuery", lambda p, q=q: p["callback_query_id"] == q)
        for q in query_ids
    ]
    texts_seen = sorted(str(a.params.get("text")) for a in answers)
    assert texts_seen == ["None"] + [texts.BILL_ALREADY_PAID] * 4

    # Pressed again later: the same harmless answer, nothing more.
    answer = await press_and_answer(tg, owner, bill_message, check)
    assert answer.params.get("text") == texts.BILL_ALREADY_PAID
    # Someone else replaying the owner's data learns nothing, not even that it is paid.
    answer = await press_and_answer(tg, thief, bill_message, check)
    assert answer.params.get("text") == texts.BILL_NOT_FOUND

    await tg.assert_no_call("sendMessage", within=0.4)
    [entry] = await db_ledger(3201)
    assert entry.bill_id == bill.pk and entry.amount == Decimal("250.00")
    assert (await db_user(3201)).balance == Decimal("250.00")
    assert await db_bills(3202) == []


async def test_a_rejected_bill_paid_late_is_credited_once(quick_bot, tg, qiwi):
    """QIWI said REJECTED, then the payment went through anyway: the money is the
    user's, and it is credited once however often the button is pressed."""
    user = tg.user(3301)
    bill_message = tg.message_of(await open_bill(tg, user, "400"))
    [bill] = await db_bills(3301)
    check = f"check:{bill.pk}"
    qiwi.set_status(bill.pk, "REJECTED")
    tg.press(user, bill_message, check)
    assert (await tg.wait_call("sendMessage")).params["text"] == texts.BILL_REJECTED
    forget_calls(tg)

    answer = await press_and_answer(tg, user, bill_message, check)  # still rejected
    assert answer.params.get("text") == texts.BILL_REJECTED
    await tg.assert_no_call("sendMessage", within=0.3)

    qiwi.set_status(bill.pk, "PAID")
    tg.press(user, bill_message, check)
    paid = await tg.wait_call("sendMessage")
    assert "Платёж прошёл успешно" in paid.params["text"]
    for _ in range(2):
        answer = await press_and_answer(tg, user, bill_message, check)
        assert answer.params.get("text") == texts.BILL_ALREADY_PAID
    assert [b.status for b in await db_bills(3301)] == [Bill.Status.PAID]
    assert len(await db_ledger(3301)) == 1
    assert (await db_user(3301)).balance == Decimal("400.00")


async def test_an_old_check_button_works_for_its_owner_after_a_restart(make_bot, tg, qiwi):
    owner, thief = tg.user(3401), tg.user(3402)
    first = await started(make_bot, tg)
    bill_call = await open_bill(tg, owner, "700")
    bill_message = tg.message_of(bill_call)
    check = button(bill_call, texts.CHECK_BUTTON)["callback_data"]
    [bill] = await db_bills(3401)
    await first.stop()
    await started(make_bot, tg)
    await qiwi.wait_request("GET", bill.pk)  # the poller's first round: still WAITING
    forget_calls(tg)

    answer = await press_and_answer(tg, thief, bill_message, check)
    assert answer.params.get("text") == texts.BILL_NOT_FOUND
    tg.press(owner, bill_message, check)
    waiting = await tg.wait_call("sendMessage")
    assert (waiting.params["chat_id"], waiting.params["text"]) == (3401, texts.BILL_WAITING)

    qiwi.set_status(bill.pk, "PAID")
    tg.press(owner, bill_message, check)
    paid = await tg.wait_call("sendMessage")
    assert paid.params["text"] == texts.bill_paid(Decimal(700), Decimal(700))
    await tg.assert_no_call("sendMessage", within=0.4)
    assert len(await db_ledger(3401)) == 1
    assert await db_bills(3402) == []


# --- first names ----------------------------------------------------------------------


def html_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def greeting(name: str) -> str:
    return (
        f"Привет, {html_escaped(name)}\n"
        "Я - бот для пополнения баланса.\n"
        "Нажмите на кнопку, чтобы пополнить баланс"
    )


NAMES = [
    "<",
    "a < b > c",
    "&",
    "&amp;",  # already looks escaped: must still be escaped once more
    "<script>alert(1)</script>",
    '<a href="tg://user?id=1">admin</a>',
    "🙂",
    "👨‍👩‍👧‍👦",  # a family: four emoji joined by zero-width joiners
    "🇷🇺🏳️‍🌈",
    "Ж" * 64,
    "x" * 63 + "<",
    "😀" * 32,  # 64 UTF-16 code units
    "\u200fمحمد\u200f",  # Arabic between right-to-left marks
    "\u200fדוד\u200e",  # Hebrew, RLM and LRM
    "\u202eevil\u202c",  # right-to-left override
    "Z\u0335\u0321a\u0337l\u0338g\u0336o\u0335",  # combining marks (zalgo)
    "e\u0301\u0301\u0301",
    "a\u200db",  # zero-width joiner between letters
    "\u200d",
]


async def greeted(tg, user_id: int, name: str) -> None:
    tg.send_text(tg.user(user_id, first_name=name), "/start")
    call = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == user_id)
    assert call.params["text"] == greeting(name), repr(name)
    assert call.params["parse_mode"] == "HTML"
    assert button(call, texts.TOP_UP_BUTTON)
    assert (await db_user(user_id)).first_name == name


async def test_odd_first_names_are_greeted_and_escaped(quick_bot, tg):
    for user_id, name in enumerate(NAMES, start=3500):
        await greeted(tg, user_id, name)
    await tg.assert_no_call("sendMessage", within=0.3)


USER_IDS = itertools.count(3600)


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.text(
        # Telegram sends 1–64 characters, never a lone surrogate or NUL.
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        min_size=1,
        max_size=64,
    )
)
async def test_generated_first_names_are_greeted_and_escaped(quick_bot, tg, name):
    await greeted(tg, next(USER_IDS), name)


# --- blocked users --------------------------------------------------------------------


async def test_a_blocked_users_forged_buttons_get_nothing_at_all(quick_bot, tg, qiwi):
    user = tg.user(3701)
    tg.send_text(user, "/start")
    hello_call = await tg.wait_call("sendMessage")
    hello = tg.message_of(hello_call)
    bill_message = tg.message_of(await open_bill(tg, user, "100"))
    [bill] = await db_bills(3701)
    tg.press(user, hello, button(hello_call, texts.TOP_UP_BUTTON)["callback_data"])
    assert (await tg.wait_call("sendMessage")).params["text"] == texts.ASK_AMOUNT
    qiwi.set_status(bill.pk, "PAID")  # a check that ran would credit it
    await block(3701)
    forget_calls(tg)

    tg.press(user, bill_message, f"check:{bill.pk}")
    tg.press(user, hello, "confirm:100")
    tg.press(user, hello, "check:")
    tg.press(user, hello, "x")
    tg.send_text(user, "500")  # the amount prompt was open when the block came
    await tg.assert_no_call("sendMessage", within=0.6)
    await tg.assert_no_call("answerCallbackQuery", within=0.05)
    await tg.assert_no_call("editMessageReplyMarkup", within=0.05)
    assert not tg.updates  # taken from Telegram, just not answered
    assert [(b.pk, b.status) for b in await db_bills(3701)] == [(bill.pk, Bill.Status.WAITING)]
    assert len(qiwi.bills) == 1
    assert await db_ledger(3701) == []
    assert (await db_user(3701)).balance == Decimal("0.00")
