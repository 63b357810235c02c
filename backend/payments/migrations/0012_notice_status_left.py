# A notice whose user has deleted their account: its own outcome, «left».

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0011_dashboard'),
    ]

    operations = [
        migrations.AlterField(
            model_name='usernotice',
            name='status',
            field=models.CharField(choices=[('pending', 'queued'), ('sending', 'being sent'), ('sent', 'sent'), ('failed', 'not delivered'), ('bot_blocked', 'the user has blocked the bot'), ('left', 'the user has deleted their account'), ('skipped', 'not sent: the user is blocked'), ('unknown', 'unknown: the bot stopped while sending')], default='pending', max_length=16, verbose_name='status'),
        ),
    ]
