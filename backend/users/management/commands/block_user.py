from backend.users.management.commands._blocking import BlockingCommand
from backend.users.services import user_block


class Command(BlockingCommand):
    help = "Blocks a Telegram user: the bot stops reacting to them."
    service = staticmethod(user_block)
    done = "blocked"
