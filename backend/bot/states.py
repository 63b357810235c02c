from aiogram.fsm.state import State, StatesGroup


class TopUpStates(StatesGroup):
    waiting_amount = State()
    # The e-mail or phone for fiscal receipts; the data may hold the top-up waiting for
    # it (`amount`, `provider`).
    waiting_receipt_contact = State()
