from aiogram.filters.callback_data import CallbackData


class TopUp(CallbackData, prefix="topup"):
    pass


class Cancel(CallbackData, prefix="cancel"):
    pass


class Confirm(CallbackData, prefix="confirm"):
    """Carries the amount, so a confirmation survives a restart of the bot."""

    amount: int


class CheckBill(CallbackData, prefix="check"):
    bill_id: str
