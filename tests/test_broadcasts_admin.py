"""«Рассылки» in the admin, through Django's client on a real database: the form refuses
what Telegram would refuse, the preview shows the text safely, the buttons start, pause,
resume and cancel, only those who may change broadcasts move them, and each
recipient's outcome is listed and exported."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from backend.broadcasts import services
from backend.broadcasts.models import Broadcast, Delivery
from backend.users.models import TelegramUser

URL = "/admin/broadcasts/broadcast/"


@pytest.fixture
def boss(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


@pytest.fixture
def users(db) -> list[TelegramUser]:
    made = [TelegramUser.objects.create(telegram_id=i, first_name="Ира") for i in (7101, 7102)]
    TelegramUser.objects.create(telegram_id=7103, first_name="Олег", is_blocked=True)
    return made


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_the_form_refuses_what_telegram_would_refuse(boss):
    response = boss.post(f"{URL}add/", {"text": "<div>привет</div>"})
    assert response.status_code == 200
    assert "Telegram не примет текст: &lt;div&gt;" in response.content.decode()
    response = boss.post(f"{URL}add/", {"text": "x", "button_text": "Открыть"})
    assert "У кнопки должны быть и текст, и ссылка." in response.content.decode()
    assert not Broadcast.objects.exists()


def test_a_broadcast_is_written_previewed_started_paused_resumed_and_cancelled(boss, users):
    text = (
        '<b>Акция</b> &lt;до пятницы&gt;\n<a href="https://shop.example/?a=1&amp;b=2">магазин</a>'
    )
    response = boss.post(
        f"{URL}add/",
        {"text": text, "button_text": "Открыть", "button_url": "https://shop.example/"},
    )
    assert response.status_code == 302
    broadcast = Broadcast.objects.get()
    assert broadcast.status == "draft" and broadcast.created_by.username == "boss"
    assert broadcast.text == text.replace("\n", "\r\n") or broadcast.text == text

    html = page(boss, f"{URL}{broadcast.pk}/change/")
    assert '<div class="tg-preview"><b>Акция</b> &lt;до пятницы&gt;' in html
    assert 'href="https://shop.example/?a=1&amp;b=2" target="_blank"' in html
    assert "Начать рассылку" in html and "Отменить рассылку" in html
    assert "Приостановить" not in html and 'http-equiv="refresh"' not in html
    assert 'name="_save"' not in html  # a broadcast made is not edited

    boss.post(f"{URL}{broadcast.pk}/queue/")
    broadcast.refresh_from_db()
    assert (broadcast.status, broadcast.total) == ("queued", 2)  # the blocked one left out
    html = page(boss, f"{URL}{broadcast.pk}/change/")
    assert 'http-equiv="refresh" content="5"' in html  # it moves: the page reloads
    assert "Приостановить" in html and "Начать рассылку" not in html

    boss.post(f"{URL}{broadcast.pk}/pause/")
    assert Broadcast.objects.get().status == "paused"
    boss.post(f"{URL}{broadcast.pk}/resume/")
    assert Broadcast.objects.get().status == "queued"
    boss.post(f"{URL}{broadcast.pk}/cancel/")
    assert Broadcast.objects.get().status == "cancelled"
    refused = boss.post(f"{URL}{broadcast.pk}/resume/", follow=True).content.decode()
    assert "Рассылку в состоянии «отменена» так изменить нельзя." in refused
    assert boss.get(f"{URL}{broadcast.pk}/cancel/").status_code == 405  # POST only


def test_a_preview_cannot_carry_a_script(boss, db):
    """The checked text is re-emitted tag by tag, every text and address escaped."""
    broadcast = services.broadcast_create(
        text='<a href="https://x.example/&quot;onmouseover=&quot;alert(1)">x</a>'
    )
    html = page(boss, f"{URL}{broadcast.pk}/change/")
    assert 'href="https://x.example/&quot;onmouseover=&quot;alert(1)"' in html
    assert 'onmouseover="alert' not in html


def test_only_those_who_may_change_broadcasts_move_them(db, users):
    broadcast = services.broadcast_create(text="x")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_broadcast"))
    client = Client()
    client.force_login(viewer)
    assert "Начать рассылку" not in page(client, f"{URL}{broadcast.pk}/change/")
    assert client.post(f"{URL}{broadcast.pk}/queue/").status_code == 403
    assert Broadcast.objects.get().status == "draft"


def test_each_recipients_outcome_is_listed_filtered_and_exported(boss, users):
    broadcast = services.broadcast_create(text="x")
    services.broadcast_queue(broadcast_id=broadcast.pk)
    first = Delivery.objects.get(user__telegram_id=7101)
    Delivery.objects.filter(pk=first.pk).update(status="bot_blocked")
    listed = page(boss, f"/admin/broadcasts/delivery/?broadcast__id__exact={broadcast.pk}")
    assert "2 доставки" in listed and "пользователь заблокировал бота" in listed
    only_blocked = page(boss, "/admin/broadcasts/delivery/?status__exact=bot_blocked")
    assert "1 доставка" in only_blocked
    response = boss.post(
        "/admin/broadcasts/delivery/",
        {
            "action": "export_csv",
            "_selected_action": list(Delivery.objects.values_list("pk", flat=True)),
        },
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["broadcast", "telegram_id", "username", "status", "sent_at", "error"]
    assert sorted((r[1], r[3]) for r in rows[1:]) == [("7101", "bot_blocked"), ("7102", "pending")]


async def test_send_to_myself_sends_the_message_to_an_admin_id_now(boss_client, tg, settings):
    from asgiref.sync import sync_to_async

    from tests.constants import ADMIN_ID

    settings.ADMIN_TELEGRAM_IDS = [ADMIN_ID]
    broadcast = await sync_to_async(services.broadcast_create)(
        text="<b>Новости</b>", button_text="Открыть", button_url="https://shop.example/"
    )
    page = (await boss_client.get(f"{URL}{broadcast.pk}/change/")).content.decode()
    assert "Отправить себе" in page and f'<option value="{ADMIN_ID}">' in page

    done = await boss_client.post(
        f"{URL}{broadcast.pk}/test/", {"chat_id": str(ADMIN_ID)}, follow=True
    )
    assert f"Отправлено на {ADMIN_ID}: посмотрите в Telegram." in done.content.decode()
    sent = await tg.wait_call("sendMessage")
    assert sent.params["chat_id"] == ADMIN_ID and sent.params["text"] == "<b>Новости</b>"
    assert sent.params["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://shop.example/"
    assert await sync_to_async(lambda: Broadcast.objects.get().status)() == "draft"

    other = await boss_client.post(f"{URL}{broadcast.pk}/test/", {"chat_id": "1"}, follow=True)
    assert "Выберите id из ADMIN_TELEGRAM_IDS." in other.content.decode()
    tg.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    refused = await boss_client.post(
        f"{URL}{broadcast.pk}/test/", {"chat_id": str(ADMIN_ID)}, follow=True
    )
    assert "Telegram отказал: Telegram server says - Bad Request: chat not found" in (
        refused.content.decode()
    )


def test_broadcast_to_the_users_chosen_in_the_list(boss, users):
    """«Разослать выбранным» on the users list (with «select all», its search and
    filters): the broadcast goes to those chosen, minus the blocked, and nobody else."""
    TelegramUser.objects.create(telegram_id=7104, first_name="Анна", username="anna")
    chosen = TelegramUser.objects.filter(telegram_id__in=[7101, 7103, 7104])
    response = boss.post(
        "/admin/users/telegramuser/",
        {"action": "broadcast_to_users", "_selected_action": [u.pk for u in chosen]},
    )
    assert response.status_code == 302
    assert response["Location"] == f"{URL}add/?chosen=1"
    form = page(boss, f"{URL}add/?chosen=1")
    assert "Выбранным в списке пользователям: 3" in form
    assert 'name="only_positive_balance"' not in form

    made = boss.post(f"{URL}add/?chosen=1", {"text": "Только вам"})
    assert made.status_code == 302
    broadcast = Broadcast.objects.get()
    assert broadcast.chosen and broadcast.total == 2  # 7103 is blocked
    boss.post(f"{URL}{broadcast.pk}/queue/")
    broadcast.refresh_from_db()
    assert broadcast.status == "queued" and broadcast.total == 2
    assert sorted(Delivery.objects.values_list("user__telegram_id", flat=True)) == [7101, 7104]
    # The choice was used up: a plain add page is for everyone again.
    assert "Выбранным в списке" not in page(boss, f"{URL}add/?chosen=1")


def test_the_list_offers_it_only_to_those_who_may_write_broadcasts(staff_client, users):
    listed = page(staff_client, "/admin/users/telegramuser/")
    assert "Заблокировать выбранных пользователей" in listed
    assert "Разослать выбранным" not in listed
