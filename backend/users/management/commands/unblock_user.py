from backend.users.management.commands._blocking import BlockingCommand
from backend.users.services import user_unblock


class Command(BlockingCommand):
    help = "Unblocks a Telegram user."
    service = staticmethod(user_unblock)
    done = "unblocked"
