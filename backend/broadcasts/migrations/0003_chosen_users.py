# A broadcast made for users chosen in the users list.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('broadcasts', '0002_delivery_status_left'),
    ]

    operations = [
        migrations.AddField(
            model_name='broadcast',
            name='chosen',
            field=models.BooleanField(default=False, verbose_name='chosen users'),
        ),
    ]
