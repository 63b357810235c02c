"""The balance becomes whole kopecks in a bigint column (see backend/common/money.py)."""

from decimal import Decimal

from django.db import migrations, models

import backend.common.money
from backend.common.migration_ops import AlterFieldToKopecks

NOT_NEGATIVE = models.CheckConstraint(
    condition=models.Q(("balance__gte", 0)), name="telegram_user_balance_not_negative"
)
WITH_BALANCE = models.Index(
    condition=models.Q(("balance__gt", 0)), fields=["id"], name="telegram_user_with_balance"
)


class Migration(migrations.Migration):
    dependencies = [("users", "0007_filter_indexes")]

    operations = [
        migrations.RemoveConstraint(model_name="telegramuser", name=NOT_NEGATIVE.name),
        migrations.RemoveIndex(model_name="telegramuser", name=WITH_BALANCE.name),
        AlterFieldToKopecks(
            model_name="telegramuser",
            name="balance",
            field=backend.common.money.MoneyField(
                decimal_places=2,
                default=Decimal("0.00"),
                editable=False,
                max_digits=14,
                verbose_name="balance",
            ),
        ),
        migrations.AddConstraint(model_name="telegramuser", constraint=NOT_NEGATIVE),
        migrations.AddIndex(model_name="telegramuser", index=WITH_BALANCE),
    ]
